"""The auditor's register page in the console: read-only, no image (the register holds none).

Routes, all :attr:`~vigie.station.auth.Access.REGISTER` (roles of
:data:`~vigie.station.auth.REGISTER_ROLES`: the auditor; 403 for everyone else, 401 without a session):

- ``GET /register``: the page (static HTML and JS, within the console's Content-Security-Policy);
- ``GET /api/register?since=&until=&camera=&user=&kind=&after_seq=&limit=``: a page of entries,
  oldest first (``since``/``until`` ISO 8601, naive means UTC; ``limit`` 1 to :data:`PAGE_MAX`,
  default :data:`PAGE_DEFAULT`); ``next`` is the ``after_seq`` of the following page (null at the end);
  each entry has every column, its hashes and ``at`` (its time as ISO 8601 UTC). 400 for a bad filter.
- ``GET /api/register/verify``: the chain's verification (:func:`vigie.register.chain.verify`): ``ok``,
  ``checked``, ``first_bad_seq``, ``entry_id``, ``reason``, ``first_seq``, ``head_seq``, ``verified_at``
  and ``age_s``. One check runs at a time whoever asks, streamed :data:`VERIFY_CHUNK` rows at a time so
  the console's event loop is never held for long, and its result is served for ``cache_s`` seconds.
- ``GET /api/register/export?format=csv|json&<filters>``: every matching entry, hashes included, as a
  download (the code of ``vigie register export``: :func:`vigie.register.query.export_text`).

What is recorded: the auditor's login and logout (like anyone's), and each export as an ``export``
entry (user, client address, format and filters) written before the first byte is sent (503 and no
download when it cannot be written): a copy of the register leaves the system. Browsing and verifying
are not recorded one by one: each read would add an entry that the next read shows, so the register
would mostly record itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.contracts.v1 import AuditEntry
from vigie.register.chain import VerifyResult, verify
from vigie.register.query import EXPORT_FORMATS, KINDS, export_text, iso_of, list_entries, time_ns_of
from vigie.station.auth import SECURITY_HEADERS, SESSION, STATIC, Access, StationAuth

#: Default and largest page of ``/api/register``.
PAGE_DEFAULT, PAGE_MAX = 100, 1000
#: Rows hashed between two returns to the event loop while verifying (about 15 ms of work).
VERIFY_CHUNK = 1000
#: Seconds a verification result is served before the next request runs a new one.
VERIFY_CACHE_S = 10.0
_FILTERS = ("since", "until", "camera", "user", "kind")

#: Writes one audit entry of the logged-in user: ``(kind, request, user, **fields)``; raises KafkaError.
AuditWriter = Callable[..., Awaitable[None]]


def filters_of(query: Any) -> dict[str, Any]:
    """The :func:`~vigie.register.query.list_entries` filters of a request's query; 400 saying which is wrong."""
    unknown = sorted(k for k in query if k not in (*_FILTERS, "after_seq", "limit", "format"))
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown parameter {unknown[0][:40]!r}; accepted: "
                                      f"{', '.join(_FILTERS)}, after_seq, limit (format for the export)")
    filters: dict[str, Any] = {}
    for name in ("since", "until"):
        if query.get(name):
            try:
                filters[f"{name}_ns"] = time_ns_of(query[name])
                if not 0 <= filters[f"{name}_ns"] < 2**63:
                    raise ValueError(f"{query[name][:40]!r}: expected a time from 1970 to 2262")
            except (ValueError, OverflowError, OSError) as exc:
                raise web.HTTPBadRequest(text=f"{name} {exc}") from None
    for name in ("camera", "user", "kind"):
        if query.get(name):
            filters[name] = query[name][:255]
    if filters.get("kind") is not None and filters["kind"] not in KINDS:
        raise web.HTTPBadRequest(text=f"unknown kind {filters['kind'][:40]!r}: expected one of {', '.join(KINDS)}")
    return filters


def _bounded_int(query: Any, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name}: expected an integer from {low} to {high}")
    return value


class ChainCheck:
    """The register's verification, one run at a time, its result kept ``cache_s`` seconds.

    Args:
        cache_s: seconds a result is served before a request starts a new check.
        chunk: rows fetched and hashed between two returns to the event loop.
    """

    def __init__(self, cache_s: float = VERIFY_CACHE_S, chunk: int = VERIFY_CHUNK) -> None:
        self.cache_s, self.chunk = cache_s, chunk
        self._result: tuple[VerifyResult, float, int] | None = None  # result, monotonic and wall time (ns) of its end
        self._running: asyncio.Task | None = None

    async def result(self, engine: AsyncEngine) -> tuple[VerifyResult, float, int]:
        """``(result, monotonic end, ns UTC end)`` of a check ended less than ``cache_s`` ago, or of a new one
        (shared by every request arriving while it runs). Raises SQLAlchemy's errors when the database fails."""
        if self._result is not None and time.monotonic() - self._result[1] < self.cache_s:
            return self._result
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check(engine))
        return await asyncio.shield(self._running)

    async def _check(self, engine: AsyncEngine) -> tuple[VerifyResult, float, int]:
        result = await verify(engine, chunk=self.chunk)
        self._result = (result, time.monotonic(), time.time_ns())
        return self._result


class RegisterPage:
    """The register's routes in the console (see the module's docstring).

    Args:
        auth: the console's access checks (the routes are added with :attr:`Access.REGISTER`).
        audit: the station's audit writer (:meth:`vigie.station.login.ConsoleAccounts.audit`).
        cache_s: seconds a verification result is served.
    """

    def __init__(self, auth: StationAuth, audit: AuditWriter, cache_s: float = VERIFY_CACHE_S) -> None:
        self.auth = auth
        self.audit = audit
        self.check = ChainCheck(cache_s)
        self.engine: AsyncEngine | None = None  # set at start, once the database is open

    def routes(self, app: web.Application) -> None:
        """Add ``/register`` and its three APIs, each with :attr:`Access.REGISTER`."""
        add = self.auth.add
        add(app, "GET", "/register", self._page, Access.REGISTER)
        add(app, "GET", "/api/register", self._list, Access.REGISTER)
        add(app, "GET", "/api/register/verify", self._verify, Access.REGISTER)
        add(app, "GET", "/api/register/export", self._export, Access.REGISTER)

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "register.html")

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        if "format" in query:
            raise web.HTTPBadRequest(text="format: only for /api/register/export")
        filters = filters_of(query)
        after = _bounded_int(query, "after_seq", 0, 0, 2**62)
        limit = _bounded_int(query, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
        rows = await list_entries(self.engine, after_seq=after, limit=limit, **filters)
        for row in rows:
            row["at"] = iso_of(row["at_ns"])
        return web.json_response({"entries": rows, "next": rows[-1]["seq"] if len(rows) == limit else None,
                                  "kinds": list(KINDS)})

    async def _verify(self, _: web.Request) -> web.Response:
        result, ended, ended_ns = await self.check.result(self.engine)
        return web.json_response({**dataclasses.asdict(result), "verified_at": iso_of(ended_ns),
                                  "age_s": round(time.monotonic() - ended, 3)})

    async def _export(self, request: web.Request) -> web.StreamResponse:
        fmt = request.query.get("format", "")
        if fmt not in EXPORT_FORMATS:
            raise web.HTTPBadRequest(text=f"format: expected one of {', '.join(EXPORT_FORMATS)}")
        filters = filters_of(request.query)
        said = " ".join(f"{k}={request.query[k][:100]}" for k in _FILTERS if request.query.get(k))
        try:  # recorded before anything is sent: no entry, no copy of the register
            await self.audit(AuditEntry.KIND_EXPORT, request, request[SESSION].user.name,
                             detail=f"register export {fmt}" + (f": {said}" if said else ""))
        except KafkaError:
            raise web.HTTPServiceUnavailable(text="the export could not be written to the register: "
                                                  "nothing was exported; try again") from None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        response = web.StreamResponse(headers={
            **SECURITY_HEADERS, "Cache-Control": "no-store",
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="register-{stamp}.{fmt}"'})
        await response.prepare(request)
        pieces: list[str] = []
        async for piece in export_text(self.engine, fmt, **filters):
            pieces.append(piece)
            if len(pieces) >= 500:
                await response.write("".join(pieces).encode())
                pieces.clear()
        await response.write("".join(pieces).encode())
        await response.write_eof()
        return response
