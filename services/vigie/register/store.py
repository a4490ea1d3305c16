"""Writing the register: append audit entries once each, in one transaction per batch; retention.

The register service is the only writer. :func:`append` takes a batch of entries (from
:func:`entry_fields`), leaves out the ids already present (so replaying the ``audit`` topic
adds nothing), numbers the new ones after the head, chains them (:mod:`vigie.register.chain`)
and inserts them with the head's new position, all in ONE transaction: after a crash either
the whole batch is in the table or none of it. Two writers by mistake cannot fork the chain:
the head row is locked (PostgreSQL) and ``seq`` is the primary key; the loser retries.

:func:`prune` deletes the oldest entries (a prefix in ``seq`` order) and, in the same
transaction, moves the anchor and appends a retention entry saying what was deleted.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import kind_name
from vigie.core.errors import MalformedMessage
from vigie.register.chain import PRUNE_KIND, PRUNE_SERVICE, PRUNE_SUBJECT, content_hash, link, prune_detail
from vigie.register.models import anchor, entries

#: Longest text of each bounded column (``detail`` is unbounded text); longer entries are malformed.
LIMITS = {"entry_id": 64, "user": 255, "station": 255, "camera_id": 255, "incident_id": 255, "record": 512,
          "service": 64, "client": 255, "subject": 255}
#: Ids looked up per query when leaving out duplicates (below every driver's parameter limit).
LOOKUP_CHUNK = 500
#: Attempts of a batch that lost a race with another writer (seq taken) before giving up.
CONFLICT_ATTEMPTS = 5


class ChainConflict(RuntimeError):
    """Another writer appended at the same time (the head moved or a seq was taken); the batch was rolled back."""


@dataclass(frozen=True)
class AppendResult:
    """What one :func:`append` did: entries appended, duplicates left out, the head's seq after it."""

    appended: int
    duplicates: int
    head_seq: int


def entry_fields(message: AuditEntry) -> dict[str, Any]:
    """The register's fields of an audit entry (no seq, time of append or hashes yet).

    Raises MalformedMessage, with the reason, for an entry without id, an unknown kind, no
    event time, text longer than its column or holding a NUL character.
    """
    if not message.id:
        raise MalformedMessage("audit entry without id")
    try:
        kind = kind_name(message.kind)
    except ValueError:
        raise MalformedMessage(f"audit entry {message.id[:64]!r}: unknown kind {message.kind}") from None
    if message.kind == AuditEntry.KIND_UNSPECIFIED:
        raise MalformedMessage(f"audit entry {message.id[:64]!r}: kind unspecified")
    if message.at_ns <= 0:
        raise MalformedMessage(f"audit entry {message.id[:64]!r}: no event time (at_ns)")
    ref = message.record
    fields = {
        "entry_id": message.id, "kind": kind, "at_ns": message.at_ns, "user": message.operator,
        "station": message.station, "camera_id": message.camera_id, "incident_id": message.incident_id,
        "record": f"{ref.topic}/{ref.partition}/{ref.offset}" if message.HasField("record") and ref.topic else "",
        "service": message.service, "client": message.client, "subject": message.subject, "detail": message.detail,
    }
    for name, value in fields.items():
        if isinstance(value, str):
            if len(value) > LIMITS.get(name, 1 << 20):
                raise MalformedMessage(f"audit entry {message.id[:64]!r}: {name} longer than {LIMITS.get(name)}")
            if "\x00" in value:
                raise MalformedMessage(f"audit entry {message.id[:64]!r}: {name} holds a NUL character")
    return fields


async def _present(connection: AsyncConnection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start:start + LOOKUP_CHUNK]
        found.update((await connection.execute(select(entries.c.entry_id).where(entries.c.entry_id.in_(chunk))))
                     .scalars())
    return found


async def _append_rows(connection: AsyncConnection, new: list[dict[str, Any]], now_ns: int) -> int:
    """Number, chain and insert ``new`` after the head, and move the head; returns the new head's seq."""
    head = (await connection.execute(select(anchor.c.head_seq, anchor.c.head_hash).where(anchor.c.id == 1)
                                     .with_for_update())).one()
    seq, prev = head.head_seq, head.head_hash
    rows = []
    for fields in new:
        seq += 1
        row = {**fields, "seq": seq, "appended_ns": now_ns}
        row["content_hash"] = content_hash(row)
        row["prev_hash"] = prev
        row["chain_hash"] = prev = link(prev, row["content_hash"])
        rows.append(row)
    await connection.execute(insert(entries), rows)
    moved = await connection.execute(update(anchor).where(anchor.c.id == 1, anchor.c.head_seq == head.head_seq)
                                     .values(head_seq=seq, head_hash=prev))
    if moved.rowcount != 1:
        raise ChainConflict(f"the register's head moved from seq {head.head_seq} meanwhile")
    return seq


async def append(engine: AsyncEngine, batch: list[dict[str, Any]], now_ns: int | None = None) -> AppendResult:
    """Append the entries of ``batch`` (from :func:`entry_fields`) whose ids are not in the register yet.

    One transaction: all new entries or none. ``appended_ns`` is ``now_ns`` (default: now).
    A batch that loses a race with another writer is tried again (up to :data:`CONFLICT_ATTEMPTS`).

    Raises:
        ChainConflict: still racing after the last attempt.
        sqlalchemy.exc.DBAPIError (OperationalError, ...): the database is unreachable, read-only, full...
    """
    unique: dict[str, dict[str, Any]] = {}
    for fields in batch:
        unique.setdefault(fields["entry_id"], fields)
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            async with engine.begin() as connection:
                present = await _present(connection, list(unique))
                new = [f for i, f in unique.items() if i not in present]
                head = await _append_rows(connection, new, now_ns or time.time_ns()) if new else None
        except (IntegrityError, ChainConflict):
            if attempt == CONFLICT_ATTEMPTS - 1:
                raise ChainConflict("another writer keeps appending to the register at the same time") from None
            continue
        if head is None:
            async with engine.connect() as connection:
                head = (await connection.execute(select(anchor.c.head_seq).where(anchor.c.id == 1))).scalar_one()
        return AppendResult(len(new), len(batch) - len(new), head)
    raise AssertionError("unreachable")


async def prune(engine: AsyncEngine, older_than_ns: int, now_ns: int | None = None) -> int:
    """Delete the oldest entries whose event time is before ``older_than_ns``; returns how many.

    Only a prefix of the chain is deleted: up to the entry before the first one at or after
    ``older_than_ns`` (an old entry appended after a younger one waits for it). In the same
    transaction the anchor moves to the first entry left, and a retention entry (kind
    ``purge``, service and subject ``register``, detail from :func:`~vigie.register.chain.prune_detail`)
    is appended, so that :func:`~vigie.register.chain.verify` checks the anchor against it.
    Raises SQLAlchemy's errors like :func:`append`.
    """
    now_ns = now_ns or time.time_ns()
    async with engine.begin() as connection:
        ends = (await connection.execute(select(anchor).where(anchor.c.id == 1).with_for_update())).one()
        young = (await connection.execute(
            select(entries.c.seq).where(entries.c.seq >= ends.first_seq, entries.c.at_ns >= older_than_ns)
            .order_by(entries.c.seq).limit(1))).scalar()
        through = ends.head_seq if young is None else young - 1
        if through < ends.first_seq:
            return 0
        through_hash = (await connection.execute(select(entries.c.chain_hash).where(entries.c.seq == through))).scalar()
        if through_hash is None:
            raise ChainConflict(f"entry seq {through} is missing: not pruning a broken chain (run vigie register verify)")
        deleted = (await connection.execute(delete(entries).where(entries.c.seq <= through))).rowcount
        await connection.execute(update(anchor).where(anchor.c.id == 1).values(
            first_seq=through + 1, prev_hash=through_hash, pruned=ends.pruned + deleted, pruned_at_ns=now_ns))
        note = {"entry_id": uuid.uuid4().hex, "kind": PRUNE_KIND, "at_ns": now_ns, "user": "", "station": "",
                "camera_id": "", "incident_id": "", "record": "", "service": PRUNE_SERVICE, "client": "",
                "subject": PRUNE_SUBJECT, "detail": prune_detail(deleted, through, through_hash, older_than_ns)}
        await _append_rows(connection, [note], now_ns)
    return deleted
