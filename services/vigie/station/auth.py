"""Who may use the console: sessions, the access rule of every route, CSRF and origin checks.

Every request goes through :meth:`StationAuth.middleware`:

1. Paths in :data:`PUBLIC_PATHS` (health, metrics, the login page and its two assets) need no
   session. This allowlist is the only place that says so.
2. Any other path needs a session: the ``vigie_session`` cookie (HttpOnly, SameSite=Strict, Secure
   over HTTPS), or, in trusted-proxy mode, the user name header of a request coming from one of the
   configured proxy addresses (a session is then opened for it). Without one: 401.
3. A state-changing request (POST, PUT, PATCH, DELETE) must carry an ``Origin`` equal to the
   console's own (403), the session's CSRF token in ``X-CSRF-Token`` (403) and, JSON being the only
   body the console sends, ``Content-Type: application/json`` (415). The login form has no session
   yet: it is held to the origin and content-type checks.
4. The route's access rule (:class:`Access`, declared with the route by :meth:`StationAuth.add`)
   decides (the register's routes: :data:`REGISTER_ROLES` only); a route without a rule answers 403 to everyone, so a route added without thinking of
   access is closed, never open. A session whose password change is due only reaches
   :attr:`Access.SESSION` routes (who am I, change password, log out).
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from pydantic import Field, field_validator
from sqlalchemy.exc import DBAPIError, OperationalError

from vigie.accounts.sessions import SessionInfo, SessionStore
from vigie.core.settings import StrictModel

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COOKIE = "vigie_session"
CSRF_HEADER = "X-CSRF-Token"
#: Paths served without a session. Nothing else is public.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/metrics", "/login", "/static/login.js", "/static/station.css"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Key of the request's :class:`SessionInfo` once checked.
SESSION = web.RequestKey("session", SessionInfo)
#: Key of the token of a session opened for this request (trusted proxy): its cookie is set on the answer.
NEW_TOKEN = web.RequestKey("new_token", str)
_LOGIN_REDIRECT = ('<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/login">'
                   '<title>Log in</title><p>Log in first: <a href="/login">/login</a></p>')
_CHANGE_FIRST = ('<!doctype html><meta charset="utf-8"><title>Change your password</title>'
                 '<p>Your password must be changed first: log in again at <a href="/login">/login</a> to change it.</p>')
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
}


class Access(enum.Enum):
    """Who may use a route (besides needing a session)."""

    #: Any session, even one whose password change is due: who am I, change password, log out.
    SESSION = "session"
    #: Any logged-in user with a current password: the console page and its assets.
    USER = "user"
    #: Operators and supervisors assigned this station: incidents, events, snapshots, actions.
    VIEWER = "viewer"
    #: Holders of a role of :data:`REGISTER_ROLES`, whatever their stations: the register's page and APIs.
    REGISTER = "register"
    #: Supervisors assigned this station: its false-alarm rates (:mod:`vigie.station.rates_page`).
    SUPERVISOR = "supervisor"


#: Roles that read the register (:mod:`vigie.station.register_page`). The auditor only: the register says
#: which member of staff looked at which camera, when and from where, and records the admin's own account
#: changes; an admin who must read it is given the auditor role, itself an account change in the register.
REGISTER_ROLES = frozenset({"auditor"})


def reads_register(user: object) -> bool:
    """True when ``user`` (a :class:`~vigie.accounts.sessions.ConsoleUser`) may read the register."""
    return bool(user.roles & REGISTER_ROLES)


class AuthSettings(StrictModel):
    """Sessions, HTTPS and the optional trusted reverse proxy of one console."""

    session_idle_s: float = Field(1800.0, gt=0, le=7 * 86400, description="Seconds without a request after "
                                  "which a console session ends (default 30 min).")
    session_max_s: float = Field(43200.0, gt=0, le=30 * 86400, description="Seconds after which a console "
                                 "session ends whatever its use (default 12 h).")
    session_cache_s: float = Field(2.0, ge=0, le=30, description="Seconds a console process trusts a session it "
                                   "read from the database: a logout elsewhere or a disabled account takes "
                                   "effect within this time.")
    lock_after: int = Field(5, ge=1, le=100, description="Failed logins in a row before an account is locked.")
    lock_base_s: float = Field(30.0, gt=0, le=3600, description="Seconds of the first lock; each further failure "
                               "doubles it.")
    lock_max_s: float = Field(900.0, gt=0, le=86400, description="Longest lock, seconds.")
    tls_cert: str = Field("", description="PEM certificate chain: serve HTTPS (with tls_key).")
    tls_key: str = Field("", description="PEM private key of tls_cert.")
    trusted_proxies: tuple[str, ...] = Field((), description="Addresses (CIDR) of reverse proxies trusted to "
                                             "name the user (proxy_user_header) and the scheme and client "
                                             "(X-Forwarded-Proto, X-Forwarded-For).")
    proxy_user_header: str = Field("", description="Header in which a trusted proxy names the logged-in user "
                                   "(single sign-on), e.g. X-Remote-User. Ignored from other addresses.")

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or CIDR network") from None
        return value

    def model_post_init(self, _: object) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")


class StationAuth:
    """Sessions and access checks of one station's console.

    Args:
        settings: sessions, HTTPS, trusted proxy.
        station: the station this console shows (operators must be assigned it).
    """

    def __init__(self, settings: AuthSettings, station: str) -> None:
        self.settings = settings
        self.station = station
        self.sessions: SessionStore | None = None  # set at start, once the database is open
        self.access: dict[web.AbstractRoute, Access] = {}
        self._proxies = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]
        #: Opens a session for a user named by a trusted proxy; set by the login routes.
        self.proxy_login: Callable[[web.Request, str], Awaitable[tuple[str, SessionInfo] | None]] | None = None

    def add(self, app: web.Application, method: str, path: str, handler: Callable, access: Access) -> None:
        """Add a route with its access rule; a page (GET outside ``/api/``) also answers HEAD."""
        self.access[app.router.add_route(method, path, handler)] = access
        if method == "GET" and not path.startswith("/api/"):
            self.access[app.router.add_route("HEAD", path, handler)] = access

    def add_static(self, app: web.Application, prefix: str, folder: Path, access: Access) -> None:
        """Serve ``folder`` under ``prefix`` with an access rule (the public assets are in PUBLIC_PATHS)."""
        for route in app.router.add_static(prefix, folder):
            self.access[route] = access

    # -- where the request comes from --------------------------------------------------------------

    def from_trusted_proxy(self, request: web.Request) -> bool:
        """True when the peer address is one of ``trusted_proxies``."""
        if not self._proxies or not request.remote:
            return False
        try:
            peer = ipaddress.ip_address(request.remote)
        except ValueError:
            return False
        return any(peer in net for net in self._proxies)

    def client(self, request: web.Request) -> str:
        """The client's address: the last X-Forwarded-For hop when a trusted proxy sent it, else the peer."""
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded and self.from_trusted_proxy(request):
            return forwarded.split(",")[-1].strip()[:100]
        return (request.remote or "")[:100]

    def secure(self, request: web.Request) -> bool:
        """True over HTTPS: TLS here, or a trusted proxy saying ``X-Forwarded-Proto: https``."""
        return request.secure or (self.from_trusted_proxy(request)
                                  and request.headers.get("X-Forwarded-Proto", "").lower() == "https")

    def origin(self, request: web.Request) -> str:
        """The console's own origin for this request (scheme and host as the browser sees them)."""
        host = request.headers.get("X-Forwarded-Host") if self.from_trusted_proxy(request) else None
        return f"{'https' if self.secure(request) else 'http'}://{host or request.host}"

    # -- checks ------------------------------------------------------------------------------------

    def check_form(self, request: web.Request) -> None:
        """A state-changing request: same origin (else 403) and a JSON body (else 415)."""
        if request.headers.get("Origin") != self.origin(request):
            raise web.HTTPForbidden(text="cross-origin request refused: Origin must be the console's own")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="expected Content-Type: application/json")

    async def session_of(self, request: web.Request, *, touch: bool = True) -> SessionInfo | None:
        """The request's live session (cookie, or trusted proxy's user header), or None; ``touch`` counts
        the request as activity (see :meth:`SessionStore.lookup`)."""
        token = request.cookies.get(COOKIE)
        info = await self.sessions.lookup(token, touch=touch) if token else None
        header = self.settings.proxy_user_header
        if header and self.from_trusted_proxy(request) and request.headers.get(header):
            name = request.headers[header].strip()
            if info is None or info.user.name != name:
                opened = await self.proxy_login(request, name)
                if opened is None:
                    return None
                request[NEW_TOKEN], info = opened
        return info

    def set_cookie(self, request: web.Request, response: web.StreamResponse, token: str) -> None:
        """Give the browser its session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS)."""
        response.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Strict", secure=self.secure(request))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Apply the checks of the module's docstring, then the handler; add the security headers.
        A database that does not answer is a 503 (its error is logged by type only: no URL, no SQL)."""
        try:
            return await self._checked(request, handler)
        except web.HTTPException as exc:  # 401, 403, 404...: the same headers as a page
            self._headers(exc, request)
            raise
        except (OperationalError, DBAPIError) as exc:
            log.warning("%s %s: the accounts database does not answer: %s", request.method, request.path,
                        type(exc).__name__)
            raise self._headers(web.HTTPServiceUnavailable(
                text="the accounts database does not answer; try again"), request) from None
        except Exception:  # noqa: BLE001 - logged with its traceback; the client gets no detail
            log.exception("%s %s failed", request.method, request.path)
            raise self._headers(web.HTTPInternalServerError(text="internal error (logged)"), request) from None

    async def _checked(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            if request.method in STATE_CHANGING:
                self.check_form(request)
            return self._headers(await handler(request), request)
        info = await self.session_of(request)
        if info is None:
            if _is_page(request):  # a browser opening a page is sent to the login page
                raise web.HTTPUnauthorized(text=_LOGIN_REDIRECT, content_type="text/html")
            raise web.HTTPUnauthorized(text="log in first (POST /login)")
        request[SESSION] = info
        if request.method in STATE_CHANGING:
            self.check_form(request)
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), info.csrf_token.encode()):
                raise web.HTTPForbidden(text=f"missing or wrong {CSRF_HEADER} header (GET /api/me gives it)")
        route = request.match_info.route
        access = self.access.get(route)
        if access is None:
            if request.match_info.http_exception is not None:
                raise request.match_info.http_exception  # 404, 405 for a logged-in user
            raise web.HTTPForbidden(text="this route has no access rule")
        if info.user.must_change_password and access is not Access.SESSION:
            if _is_page(request):
                raise web.HTTPForbidden(text=_CHANGE_FIRST, content_type="text/html")
            raise web.HTTPForbidden(text="change your password first (POST /api/password)")
        if access is Access.VIEWER and not info.user.views(self.station):
            raise web.HTTPForbidden(text=f"{info.user.name} does not see station {self.station}'s incidents")
        if access is Access.SUPERVISOR and not (info.user.supervisor and info.user.views(self.station)):
            raise web.HTTPForbidden(text=f"{info.user.name} is not a supervisor of station {self.station}")
        if access is Access.REGISTER and not reads_register(info.user):
            raise web.HTTPForbidden(text=f"{info.user.name} does not read the register (role "
                                         f"{' or '.join(sorted(REGISTER_ROLES))} needed)")
        response = self._headers(await handler(request), request)
        if NEW_TOKEN in request and not response.prepared:
            self.set_cookie(request, response, request[NEW_TOKEN])
        return response

    @staticmethod
    def _headers(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
        """Add :data:`SECURITY_HEADERS` and, but for the static assets, ``Cache-Control: no-store`` (incidents,
        the register and images are never kept by a browser or a shared cache)."""
        if not response.prepared:
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            if not request.path.startswith("/static/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response


def _is_page(request: web.Request) -> bool:
    """True for a page opened in a browser (a GET or HEAD outside ``/api/`` and ``/static/``)."""
    return request.method in ("GET", "HEAD") and not request.path.startswith(("/api/", "/static/"))
