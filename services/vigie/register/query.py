"""Reading the register: filtered listing (CLI ``show``/``export``, the auditor's page) and verification.

Entries come back as plain dicts with every column (:data:`~vigie.register.models.ENTRY_COLUMNS`),
oldest first (``seq`` order). Paging is by ``seq``: pass the last ``seq`` of a page as
``after_seq`` to get the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import kind_name
from vigie.register.chain import PRUNE_KIND, VerifyResult, verify
from vigie.register.models import entries

#: Largest page :func:`list_entries` returns.
MAX_LIMIT = 10_000
#: Kind names an entry may have (``view``, ``login_failed``, ...).
KINDS = tuple(sorted({kind_name(k) for k in AuditEntry.Kind.values() if k != AuditEntry.KIND_UNSPECIFIED}
                     | {PRUNE_KIND}))


async def list_entries(engine: AsyncEngine, *, since_ns: int | None = None, until_ns: int | None = None,
                       camera: str | None = None, user: str | None = None, kind: str | None = None,
                       after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Up to ``limit`` entries with ``seq > after_seq``, in ``seq`` order, matching every filter given.

    Args:
        since_ns, until_ns: event time range (ns UTC), ``since_ns <= at_ns < until_ns``.
        camera: camera id; user: the person the entry is about; kind: a name of :data:`KINDS`.
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


async def verify_chain(engine: AsyncEngine) -> VerifyResult:
    """Verify the whole register (:func:`vigie.register.chain.verify`): ok, entries checked, the first bad one."""
    return await verify(engine)
