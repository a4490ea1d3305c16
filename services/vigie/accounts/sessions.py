"""Console sessions in the database, so that they survive a station restart and are shared by replicas.

The browser holds a random token (cookie); the ``console_sessions`` row holds its SHA-256 and the
session's CSRF token. A session ends at logout, after ``idle_s`` without a request, after
``max_s`` in all, or when its account is disabled or its password set by someone else.

Checks do not hit the database on every request: a session read is kept ``cache_s`` seconds
(2 s by default) by each process, so a logout on another replica or a disabled account takes effect
within that time; a logout on the same process, at once. ``last_seen_at`` is written at most every
``min(30 s, idle_s / 4)``, which bounds how far the idle timeout may be late.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from vigie.accounts.models import VIEWING_ROLES, ConsoleSession, User

#: Most sessions a process keeps in its cache.
CACHE_ITEMS = 10_000


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a session token: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The logged-in person as the console needs them: name, roles, stations, whether a new password is due."""

    name: str
    roles: frozenset[str]
    stations: frozenset[str]
    must_change_password: bool = False

    def views(self, station: str) -> bool:
        """True when this user sees incidents and images of ``station`` (operator or supervisor, assigned)."""
        return bool(self.roles & VIEWING_ROLES) and station in self.stations

    @property
    def supervisor(self) -> bool:
        """True for a supervisor (may act on escalated incidents)."""
        return "supervisor" in self.roles


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session: its token's hash, its user, its CSRF token, when it began and was last used (epoch s)."""

    token_sha256: str
    user: ConsoleUser
    csrf_token: str
    created_at: float
    last_seen_at: float


class SessionStore:
    """Sessions of one database.

    Args:
        engine: async engine of a migrated database.
        idle_s: seconds without a request after which a session ends (default 30 min).
        max_s: seconds after which a session ends whatever its use (default 12 h).
        cache_s: seconds a process trusts a session it read (0: read every time).
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, engine: AsyncEngine, *, idle_s: float = 1800.0, max_s: float = 43200.0, cache_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.idle_s, self.max_s, self.cache_s = idle_s, max_s, cache_s
        self.touch_s = min(30.0, idle_s / 4)
        self._clock = clock
        self._cache: OrderedDict[str, tuple[SessionInfo, float]] = OrderedDict()

    async def create(self, name: str, client: str = "") -> tuple[str, SessionInfo]:
        """A new session for account ``name``: ``(token for the cookie, session)``. Raises LookupError when no
        enabled account has that name."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        async with self.sessions.begin() as session:
            user = await session.scalar(select(User).where(User.name == name, User.disabled.is_(False)))
            if user is None:
                raise LookupError(f"no enabled user named {name[:80]!r}")
            session.add(ConsoleSession(token_sha256=token_hash(token), user_id=user.id, csrf_token=csrf,
                                       client=client[:100], created_at=now, last_seen_at=now))
            info = SessionInfo(token_hash(token), _console_user(user), csrf, now, now)
        self._keep(info)
        return token, info

    async def lookup(self, token: str, *, touch: bool = True) -> SessionInfo | None:
        """The live session of ``token``, or None (unknown, expired, ended, account disabled).

        ``touch=False`` checks without counting as activity (an open event stream is no user action).
        """
        digest = token_hash(token)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[1] < self.cache_s:
            info = cached[0]
        else:
            info = await self._load(digest)
            if info is None:
                self._cache.pop(digest, None)
                return None
        now = self._clock()
        if now - info.created_at > self.max_s or now - info.last_seen_at > self.idle_s:
            await self.end(token)
            return None
        if touch and now - info.last_seen_at > self.touch_s:
            async with self.sessions.begin() as session:
                await session.execute(update(ConsoleSession).where(ConsoleSession.token_sha256 == digest)
                                      .values(last_seen_at=now))
            info = replace(info, last_seen_at=now)
        if cached is None or cached[0] is not info:
            self._keep(info)
        return info

    async def _load(self, digest: str) -> SessionInfo | None:
        async with self.sessions() as session:
            row = (await session.execute(select(ConsoleSession, User).join(User, User.id == ConsoleSession.user_id)
                                         .where(ConsoleSession.token_sha256 == digest))).first()
        if row is None or row.User.disabled:
            return None
        s = row.ConsoleSession
        return SessionInfo(digest, _console_user(row.User), s.csrf_token, s.created_at, s.last_seen_at)

    def _keep(self, info: SessionInfo) -> None:
        self._cache[info.token_sha256] = (info, time.monotonic())
        self._cache.move_to_end(info.token_sha256)
        while len(self._cache) > CACHE_ITEMS:
            self._cache.popitem(last=False)

    def forget_cached(self, digest: str) -> None:
        """Drop one session from this process's cache (its account changed here): the next check reads it again."""
        self._cache.pop(digest, None)

    async def end(self, token: str) -> None:
        """End the session of ``token`` (logout, expiry); safe for a token already ended."""
        digest = token_hash(token)
        self._cache.pop(digest, None)
        async with self.sessions.begin() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == digest))

    async def purge_expired(self) -> int:
        """Delete the sessions past their idle or absolute timeout; returns how many."""
        now = self._clock()
        async with self.sessions.begin() as session:
            done = await session.execute(delete(ConsoleSession).where(or_(
                ConsoleSession.created_at < now - self.max_s, ConsoleSession.last_seen_at < now - self.idle_s))
                .execution_options(synchronize_session=False))
        return done.rowcount or 0


def _console_user(user: User) -> ConsoleUser:
    return ConsoleUser(user.name, frozenset(user.roles), frozenset(user.stations), user.must_change_password)
