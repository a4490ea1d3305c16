"""Accounts in the database: create, list, disable, enable, set passwords, assign roles and stations, log in.

Every change writes its ``ACCOUNT_CHANGE`` audit entry into ``audit_outbox`` in the same
transaction as the change itself (:mod:`vigie.accounts.outbox` publishes it): a change is never
without its entry, even when the broker is down. Logins are checked with argon2id; an unknown
name costs one verification against a dummy hash, so the answer's timing does not tell names
apart. After ``lock_after`` failures in a row an account is locked for ``lock_base_s`` seconds,
doubling at every further failure up to ``lock_max_s``; unknown names are locked the same way
(in memory), so the lockout does not tell them apart either.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vigie.accounts.models import MAX_NAME, ROLES, ConsoleSession, OutboxEntry, User
from vigie.accounts.passwords import check_password, hash_password, needs_rehash, verify_dummy, verify_password
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import entry
from vigie.core.errors import ConfigError, VigieError
from vigie.core.topics import station_topic_base

if TYPE_CHECKING:
    from vigie.core.db import DatabaseSettings

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
#: The answer to a wrong password and to an unknown name alike.
BAD_CREDENTIALS = "wrong user name or password"


class AccountError(VigieError):
    """A refused account operation; the message says why (unknown user or role, duplicate, weak password)."""


class UnknownUser(AccountError):
    """No account has this name."""


@dataclass(frozen=True, slots=True)
class Account:
    """What may be shown of an account (never its hash). Times in seconds since the epoch."""

    name: str
    roles: tuple[str, ...]
    stations: tuple[str, ...]
    disabled: bool
    must_change_password: bool
    failed_logins: int
    locked_until: float
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, user: User) -> "Account":
        """The account of a ``users`` row."""
        return cls(user.name, tuple(user.roles), tuple(user.stations), user.disabled, user.must_change_password,
                   user.failed_logins, user.locked_until, user.created_at, user.updated_at)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A login's outcome: ``account`` when accepted; else ``reason`` and, when locked, ``retry_after_s``."""

    account: Account | None
    reason: str = ""
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Failures in a row before a lock, first lock's seconds (doubling at each further failure), longest lock."""

    lock_after: int = 5
    lock_base_s: float = 30.0
    lock_max_s: float = 900.0

    def lock_s(self, failures: int) -> float:
        """Seconds of lock after ``failures`` failures in a row (0 below ``lock_after``)."""
        if failures < self.lock_after:
            return 0.0
        return min(self.lock_max_s, self.lock_base_s * 2 ** min(failures - self.lock_after, 30))


def check_name(name: str) -> str:
    """``name`` when it is a valid user name (letters, digits, '.', '_', '@', '-'; 1-64), else AccountError."""
    if not (0 < len(name) <= MAX_NAME and _NAME_RE.fullmatch(name)):
        raise AccountError(f"user name {name[:80]!r}: 1 to {MAX_NAME} letters, digits, '.', '_', '@' or '-', "
                           "starting with a letter or digit")
    return name


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles, deduplicated in the order of :data:`ROLES`; AccountError naming an unknown one."""
    roles = [r.strip() for r in roles if r.strip()]
    for role in roles:
        if role not in ROLES:
            raise AccountError(f"unknown role {role[:40]!r}: expected one of {', '.join(ROLES)}")
    return [r for r in ROLES if r in roles]


def check_stations(stations: Iterable[str]) -> list[str]:
    """The station ids, deduplicated and sorted; AccountError naming a malformed one."""
    result = sorted({s.strip() for s in stations if s.strip()})
    for station in result:
        try:
            station_topic_base(station)
        except ConfigError as exc:
            raise AccountError(f"station {station[:40]!r}: {exc}") from None
    return result


def record(session: AsyncSession, kind: int, *, service: str, by: str, subject: str, detail: str,
           client: str = "", camera_id: str = "", incident_id: str = "") -> AuditEntry:
    """Add an audit entry to ``audit_outbox`` in ``session``'s transaction (published after the commit)."""
    message = entry(kind, service=service, user=by, subject=subject, detail=detail, client=client,
                    camera_id=camera_id, incident_id=incident_id)
    session.add(OutboxEntry(entry_id=message.id, payload=message.SerializeToString(), created_at=time.time()))
    return message


class AccountStore:
    """Accounts of one database.

    Args:
        engine: async engine of a database migrated by :func:`vigie.core.db.migrate`.
        policy: the lockout policy.
        service: the ``service`` written on audit entries (``users`` for the command line).
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, engine: AsyncEngine, policy: LockoutPolicy = LockoutPolicy(), *, service: str = "users",
                 clock: Callable[[], float] = time.time) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.policy = policy
        self.service = service
        self._clock = clock
        self._unknown: OrderedDict[str, tuple[int, float]] = OrderedDict()  # name -> (failures, locked until)

    async def _user(self, session: AsyncSession, name: str) -> User:
        user = await session.scalar(select(User).where(User.name == name))
        if user is None:
            raise UnknownUser(f"no user named {name[:80]!r}")
        return user

    async def get(self, name: str) -> Account | None:
        """The account named ``name``, or None."""
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.name == name))
            return Account.of(user) if user is not None else None

    async def list(self) -> list[Account]:
        """Every account, by name."""
        async with self.sessions() as session:
            return [Account.of(u) for u in await session.scalars(select(User).order_by(User.name))]

    async def add(self, name: str, password: str, roles: Iterable[str], stations: Iterable[str] = (), *,
                  by: str, must_change: bool = False, client: str = "") -> Account:
        """Create an account. Raises AccountError for a bad name, role or station, a duplicate name, or
        WeakPassword (a ValueError) when the policy refuses the password."""
        check_name(name)
        roles, stations = check_roles(roles), check_stations(stations)
        if not roles:
            raise AccountError(f"give at least one role: {', '.join(ROLES)}")
        check_password(name, password)
        digest = await asyncio.to_thread(hash_password, password)
        now = self._clock()
        try:
            async with self.sessions.begin() as session:
                twin = await session.scalar(select(User.name).where(func.lower(User.name) == name.lower()))
                if twin == name:
                    raise AccountError(f"user {name!r} already exists")
                if twin is not None:  # 'Admin' next to 'admin': two names the register's readers would confuse
                    raise AccountError(f"user {name!r} would be confused with the existing {twin!r} (names differ "
                                       "in case only)")
                user = User(name=name, password_hash=digest, roles=roles, stations=stations, disabled=False,
                            failed_logins=0, locked_until=0.0, must_change_password=must_change, created_at=now,
                            updated_at=now)
                session.add(user)
                record(session, AuditEntry.KIND_ACCOUNT_CHANGE, service=self.service, by=by, subject=name,
                       client=client, detail=f"created: roles={','.join(roles)} stations={','.join(stations)}"
                       + (" one-time password" if must_change else ""))
        except IntegrityError:
            raise AccountError(f"user {name!r} already exists") from None
        return Account.of(user)

    async def set_disabled(self, name: str, disabled: bool, *, by: str, client: str = "") -> Account:
        """Disable (its sessions end) or enable (its lockout is cleared) an account. Raises UnknownUser."""
        async with self.sessions.begin() as session:
            user = await self._user(session, name)
            user.disabled = disabled
            user.updated_at = self._clock()
            if disabled:
                await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
            else:
                user.failed_logins, user.locked_until = 0, 0.0
            record(session, AuditEntry.KIND_ACCOUNT_CHANGE, service=self.service, by=by, subject=name,
                   client=client, detail="disabled" if disabled else "enabled")
        return Account.of(user)

    async def set_password(self, name: str, password: str, *, by: str, must_change: bool = False,
                           client: str = "", keep_session: str = "") -> Account:
        """Set a new password (policy checked: WeakPassword), clear the lockout and end the account's sessions
        but the one whose token hash is ``keep_session``. Raises UnknownUser."""
        check_password(name, password)
        digest = await asyncio.to_thread(hash_password, password)
        async with self.sessions.begin() as session:
            user = await self._user(session, name)
            user.password_hash, user.must_change_password = digest, must_change
            user.failed_logins, user.locked_until, user.updated_at = 0, 0.0, self._clock()
            await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id,
                                                               ConsoleSession.token_sha256 != keep_session))
            record(session, AuditEntry.KIND_ACCOUNT_CHANGE, service=self.service, by=by, subject=name,
                   client=client, detail="password " + ("set, one-time" if must_change else
                                                        "changed" if by == name else "set"))
        return Account.of(user)

    async def assign(self, name: str, *, roles: Iterable[str] | None = None, stations: Iterable[str] | None = None,
                     by: str, client: str = "") -> Account:
        """Replace the roles and/or the stations of an account (sessions see it within seconds).
        Raises UnknownUser, AccountError for an unknown role or a malformed station."""
        new_roles = check_roles(roles) if roles is not None else None
        new_stations = check_stations(stations) if stations is not None else None
        if new_roles is not None and not new_roles:
            raise AccountError(f"give at least one role: {', '.join(ROLES)}")
        async with self.sessions.begin() as session:
            user = await self._user(session, name)
            if new_roles is not None:
                user.roles = new_roles
            if new_stations is not None:
                user.stations = new_stations
            user.updated_at = self._clock()
            record(session, AuditEntry.KIND_ACCOUNT_CHANGE, service=self.service, by=by, subject=name,
                   client=client, detail=f"assigned: roles={','.join(user.roles)} stations={','.join(user.stations)}")
        return Account.of(user)

    async def authenticate(self, name: str, password: str) -> LoginResult:
        """Check a login; see the module's docstring for the lockout. Never raises for a bad name or password."""
        now = self._clock()
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.name == name[:MAX_NAME]))
        if user is None:
            return await self._unknown_login(name[:MAX_NAME], password, now)
        if user.locked_until > now:
            return LoginResult(None, "locked", user.locked_until - now)
        if not await asyncio.to_thread(verify_password, user.password_hash, password):
            async with self.sessions.begin() as session:  # one atomic increment: replicas may count at once
                failures = await session.scalar(update(User).where(User.id == user.id)
                                                .values(failed_logins=User.failed_logins + 1)
                                                .returning(User.failed_logins))
                lock = self.policy.lock_s(failures)
                if lock:
                    await session.execute(update(User).where(User.id == user.id).values(locked_until=now + lock))
            return LoginResult(None, BAD_CREDENTIALS, lock)
        if user.disabled:
            return LoginResult(None, "disabled")
        if user.failed_logins or user.locked_until or needs_rehash(user.password_hash):
            rehash = await asyncio.to_thread(hash_password, password) if needs_rehash(user.password_hash) else None
            async with self.sessions.begin() as session:
                user = await self._user(session, name)
                user.failed_logins, user.locked_until = 0, 0.0
                if rehash:
                    user.password_hash = rehash
        return LoginResult(Account.of(user))

    async def _unknown_login(self, name: str, password: str, now: float) -> LoginResult:
        """A login with an unknown name: the same time and the same lockout as a known name's failure."""
        failures, until = self._unknown.get(name, (0, 0.0))
        if until > now:
            return LoginResult(None, "locked", until - now)
        await asyncio.to_thread(verify_dummy, password)
        lock = self.policy.lock_s(failures + 1)
        self._unknown[name] = (failures + 1, now + lock if lock else 0.0)
        self._unknown.move_to_end(name)
        while len(self._unknown) > 10_000:
            self._unknown.popitem(last=False)
        return LoginResult(None, BAD_CREDENTIALS, lock)


async def provision(database: "DatabaseSettings", name: str, roles: Iterable[str], stations: Iterable[str] = (), *,
                    by: str, password: str | None = None, must_change: bool = False) -> str:
    """Migrate ``database`` and create one account (for tools and tests that run a station of their own);
    returns its password, generated when None. Raises what :meth:`AccountStore.add` raises."""
    from vigie.accounts.passwords import generate_password
    from vigie.core.db import make_engine, migrate

    password = password or generate_password()
    engine = make_engine(database)
    try:
        await migrate(engine, database)
        await AccountStore(engine).add(name, password, roles, stations, by=by, must_change=must_change)
    finally:
        await engine.dispose()
    return password
