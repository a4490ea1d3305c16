"""Logging in and out of the console, who am I, changing one's password; the station's audit writer.

Routes (their access rules in :mod:`vigie.station.auth`):

- ``GET /login``: the login page (public, static HTML and JS);
- ``POST /login`` ``{"user", "password"}``: 200 with what ``/api/me`` gives and the session cookie;
  401 wrong name or password (the same answer, in the same time, for an unknown name), 403 disabled
  account, 429 locked (``Retry-After``), 503 when the login cannot be written to the register;
- ``POST /logout``: ends the session, clears the cookie;
- ``GET /api/me``: ``{"user", "roles", "stations", "station", "views", "supervisor", "csrf",
  "mustChangePassword", "register"}`` (``register``: reads the register);
- ``POST /api/password`` ``{"current", "new"}``: sets a new password (the policy's refusal is a 400
  that says why); required before anything else for an account with a one-time password.

Every login, refused login (the name tried and the client's address, never the password) and
logout is written once to the ``audit`` topic.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.accounts.outbox import flush_outbox
from vigie.accounts.passwords import WeakPassword
from vigie.accounts.sessions import SessionInfo
from vigie.accounts.store import BAD_CREDENTIALS, AccountStore, LockoutPolicy
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import AuditLog, entry
from vigie.station.auth import COOKIE, SESSION, STATIC, Access, StationAuth, reads_register

log = logging.getLogger(__name__)


def _valid_text(value: object) -> bool:
    """True when every string in ``value`` (a parsed JSON document) is valid Unicode (no lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_valid_text(k) and _valid_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid_text(v) for v in value)
    return True


async def read_json(request: web.Request, expected: str) -> object:
    """The request's JSON body. 400 with ``expected`` for anything that is not JSON, is nested too deep for
    the parser, or carries a string that is not valid Unicode (e.g. a lone surrogate escape)."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        raise web.HTTPBadRequest(text=expected) from None
    if not _valid_text(body):
        raise web.HTTPBadRequest(text=f"{expected} (strings must be valid Unicode)")
    return body


async def json_fields(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The request's JSON object with exactly the string fields ``names``; 400 saying what is expected."""
    expected = "expected JSON {" + ", ".join(f'"{n}": "..."' for n in names) + "}"
    body = await read_json(request, expected)
    if not isinstance(body, dict) or set(body) != set(names) or not all(isinstance(body[n], str) for n in names):
        raise web.HTTPBadRequest(text=expected)
    return body


class ConsoleAccounts:
    """The login routes and the station's audit writer (:meth:`open` once the database and producer are up)."""

    def __init__(self, auth: StationAuth, station: str, policy: LockoutPolicy) -> None:
        self.auth = auth
        self.station = station
        self.policy = policy
        self.accounts: AccountStore | None = None
        self.audit_log: AuditLog | None = None
        self._engine: AsyncEngine | None = None
        auth.proxy_login = self._proxy_login

    def open(self, engine: AsyncEngine, audit_log: AuditLog) -> None:
        """Use ``engine`` for accounts and ``audit_log`` for the register."""
        self._engine = engine
        self.accounts = AccountStore(engine, self.policy, service="station")
        self.audit_log = audit_log

    def routes(self, app: web.Application) -> None:
        """Add ``/login``, ``/logout``, ``/api/me`` and ``/api/password``."""
        add = self.auth.add
        add(app, "GET", "/login", self._page, Access.SESSION)
        add(app, "POST", "/login", self._login, Access.SESSION)
        add(app, "POST", "/logout", self._logout, Access.SESSION)
        add(app, "GET", "/api/me", self._me, Access.SESSION)
        add(app, "POST", "/api/password", self._password, Access.SESSION)

    async def publish_outbox(self, what: str) -> None:
        """Publish the audit outbox now (entries written with a change in the database); when the broker does
        not take them they wait there for the next publication (the register's, every few seconds)."""
        try:
            await flush_outbox(self._engine, self.audit_log)
        except KafkaError as exc:
            log.warning("%s: its audit entry waits in the outbox (%s)", what, type(exc).__name__)

    async def audit(self, kind: int, request: web.Request, user: str, **fields: object) -> None:
        """Write one entry (service ``station``, this station, the client's address) and wait for the broker.

        Raises KafkaError when the broker does not take it.
        """
        await self.audit_log.write(entry(kind, service="station", user=user, station=self.station,
                                         client=self.auth.client(request), **fields))

    async def _audit_or_log(self, kind: int, request: web.Request, user: str, detail: str) -> None:
        try:
            await self.audit(kind, request, user, detail=detail)
        except KafkaError as exc:
            log.error("audit entry %s not written: %s", AuditEntry.Kind.Name(kind), type(exc).__name__)

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "login.html")

    def _me_body(self, info: SessionInfo) -> dict[str, object]:
        user = info.user
        return {"user": user.name, "roles": sorted(user.roles), "stations": sorted(user.stations),
                "station": self.station, "views": user.views(self.station), "supervisor": user.supervisor,
                "csrf": info.csrf_token, "mustChangePassword": user.must_change_password,
                "register": reads_register(user)}

    async def _open_session(self, request: web.Request, name: str, how: str) -> tuple[str, SessionInfo]:
        """A new session and its LOGIN entry; 503 (and no session) when the entry cannot be written."""
        token, info = await self.auth.sessions.create(name, self.auth.client(request))
        try:
            await self.audit(AuditEntry.KIND_LOGIN, request, name, detail=how)
        except KafkaError:
            await self.auth.sessions.end(token)
            raise web.HTTPServiceUnavailable(text="the login could not be written to the register; try again")
        return token, info

    async def _login(self, request: web.Request) -> web.Response:
        body = await json_fields(request, ("user", "password"))
        name = body["user"].strip()[:64]
        result = await self.accounts.authenticate(name, body["password"])
        if result.account is None:
            await self._audit_or_log(AuditEntry.KIND_LOGIN_FAILED, request, name, result.reason)
            if result.reason == "locked":
                wait = math.ceil(result.retry_after_s)
                raise web.HTTPTooManyRequests(text=f"too many failed logins: try again in {wait} s",
                                              headers={"Retry-After": str(wait)})
            if result.reason == "disabled":
                raise web.HTTPForbidden(text="this account is disabled")
            raise web.HTTPUnauthorized(text=BAD_CREDENTIALS)
        old = request.cookies.get(COOKIE)
        if old:
            await self.auth.sessions.end(old)
        token, info = await self._open_session(request, name, "password")
        response = web.json_response(self._me_body(info))
        self.auth.set_cookie(request, response, token)
        return response

    async def _proxy_login(self, request: web.Request, name: str) -> tuple[str, SessionInfo] | None:
        account = await self.accounts.get(name[:64])
        if account is None or account.disabled:
            await self._audit_or_log(AuditEntry.KIND_LOGIN_FAILED, request, name[:64],
                                     "single sign-on: no enabled account of this name")
            return None
        return await self._open_session(request, account.name, "single sign-on (trusted proxy)")

    async def _logout(self, request: web.Request) -> web.Response:
        info = request[SESSION]
        token = request.cookies.get(COOKIE)
        if token:
            await self.auth.sessions.end(token)
        await self._audit_or_log(AuditEntry.KIND_LOGOUT, request, info.user.name, "logout")
        response = web.json_response({"user": info.user.name, "loggedOut": True})
        response.del_cookie(COOKIE, path="/")
        return response

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response(self._me_body(request[SESSION]))

    async def _password(self, request: web.Request) -> web.Response:
        info = request[SESSION]
        body = await json_fields(request, ("current", "new"))
        name = info.user.name
        result = await self.accounts.authenticate(name, body["current"])
        if result.account is None:
            await self._audit_or_log(AuditEntry.KIND_LOGIN_FAILED, request, name,
                                     "password change: current password " + result.reason)
            raise web.HTTPForbidden(text="the current password is wrong" if result.reason != "locked" else
                                    f"too many failed attempts: try again in {math.ceil(result.retry_after_s)} s")
        if body["new"] == body["current"]:
            raise web.HTTPBadRequest(text="choose a password different from the current one")
        try:
            await self.accounts.set_password(name, body["new"], by=name, client=self.auth.client(request),
                                             keep_session=info.token_sha256)
        except WeakPassword as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        self.auth.sessions.forget_cached(info.token_sha256)
        await self.publish_outbox(f"password change of {name}")
        fresh = await self.auth.sessions.lookup(request.cookies.get(COOKIE, "")) or info
        return web.json_response(self._me_body(fresh))
