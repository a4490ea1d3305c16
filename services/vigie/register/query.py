"""Reading the register: filtered listing (CLI ``show``/``export``, the auditor's page) and verification.

Entries come back as plain dicts with every column (:data:`~vigie.register.models.ENTRY_COLUMNS`),
oldest first (``seq`` order). Paging is by ``seq``: pass the last ``seq`` of a page as
``after_seq`` to get the next one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import kind_name
from vigie.register.chain import PRUNE_KIND, VerifyResult, verify
from vigie.register.models import ENTRY_COLUMNS, entries

#: Formats of :func:`export_text`.
EXPORT_FORMATS = ("csv", "json")

#: Largest page :func:`list_entries` returns.
MAX_LIMIT = 10_000
#: Kind names an entry may have (``view``, ``login_failed``, ...).
KINDS = tuple(sorted({kind_name(k) for k in AuditEntry.Kind.values() if k != AuditEntry.KIND_UNSPECIFIED}
                     | {PRUNE_KIND}))


def time_ns_of(text: str) -> int:
    """ISO 8601 time (naive means UTC; ``Z`` accepted) as ns since the Unix epoch. Raises ValueError."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r}: use ISO 8601, e.g. 2026-11-30T08:00:00Z") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def iso_of(ns: int) -> str:
    """ns since the Unix epoch as ISO 8601 UTC to the millisecond, e.g. ``2026-11-30T08:00:00.000Z``."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def list_entries(engine: AsyncEngine, *, since_ns: int | None = None, until_ns: int | None = None,
                       camera: str | None = None, user: str | None = None, kind: str | None = None,
                       incident: str | None = None, after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Up to ``limit`` entries with ``seq > after_seq``, in ``seq`` order, matching every filter given.

    Args:
        since_ns, until_ns: event time range (ns UTC), ``since_ns <= at_ns < until_ns``.
        camera: camera id; user: the person the entry is about; kind: a name of :data:`KINDS`;
        incident: incident id.
        after_seq: paging cursor (the last seq of the previous page); limit: 1 to :data:`MAX_LIMIT`.

    Returns dicts of every column. Raises ValueError for an unknown kind or a limit out of range.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit {limit}: expected 1 to {MAX_LIMIT}")
    query = select(entries).where(entries.c.seq > after_seq)
    if since_ns is not None:
        query = query.where(entries.c.at_ns >= since_ns)
    if until_ns is not None:
        query = query.where(entries.c.at_ns < until_ns)
    if camera is not None:
        query = query.where(entries.c.camera_id == camera)
    if user is not None:
        query = query.where(entries.c.user == user)
    if kind is not None:
        query = query.where(entries.c.kind == kind)
    if incident is not None:
        query = query.where(entries.c.incident_id == incident)
    async with engine.connect() as connection:
        rows = await connection.execute(query.order_by(entries.c.seq).limit(limit))
        return [dict(row._mapping) for row in rows]


async def iter_entries(engine: AsyncEngine, page: int = 1000, **filters: Any) -> AsyncIterator[dict[str, Any]]:
    """Every entry matching ``filters`` (those of :func:`list_entries`), page by page, in ``seq`` order."""
    after = filters.pop("after_seq", 0)
    while True:
        rows = await list_entries(engine, after_seq=after, limit=page, **filters)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1]["seq"]


def spreadsheet_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text a spreadsheet would run as a formula (it begins with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return: anyone can type such a user name at the login) gets a leading ``'``,
    so it is shown as text (OWASP's advice against CSV injection). Other values are returned unchanged."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def export_text(engine: AsyncEngine, fmt: str, **filters: Any) -> AsyncIterator[str]:
    """Every entry matching ``filters`` (those of :func:`list_entries`) with every column, hashes included, as
    text pieces to write one after the other: ``csv`` (a header line, then one line per entry; cells a
    spreadsheet would take for a formula prefixed with ``'``: :func:`spreadsheet_safe`) or ``json`` (an
    array of objects, one per line, every value exact: the one to recompute hashes from). The CLI's ``export`` and the auditor's page download both use it.

    Raises ValueError for an unknown format, kind or filter (before yielding anything).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if filters.get("kind") is not None and filters["kind"] not in KINDS:
        raise ValueError(f"unknown kind {filters['kind']!r}: expected one of {', '.join(KINDS)}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ENTRY_COLUMNS)

    def csv_line(row: dict[str, Any] | None) -> str:
        writer.writeheader() if row is None else writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield csv_line(None) if fmt == "csv" else "["
    first = True
    async for row in iter_entries(engine, **filters):
        yield csv_line(row) if fmt == "csv" else ("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False)
        first = False
    if fmt == "json":
        yield "\n]\n"


async def verify_chain(engine: AsyncEngine) -> VerifyResult:
    """Verify the whole register (:func:`vigie.register.chain.verify`): ok, entries checked, the first bad one."""
    return await verify(engine)
