"""The register's hash chain: canonical content, hashes and the verification of the whole table.

Canonical content of an entry (stable; changing it is a new chain version):
the JSON object of its 14 content fields ``seq, entry_id, kind, at_ns, appended_ns, user,
station, camera_id, incident_id, record, service, client, subject, detail`` (integers as
JSON numbers, text as JSON strings), keys sorted, no whitespace (separators ``,`` and
``:``), non-ASCII characters written as themselves, encoded in UTF-8.

* ``content_hash`` = hex SHA-256 of the canonical content;
* ``chain_hash`` = hex SHA-256 of the ASCII text ``prev_hash + content_hash`` (128 hex
  characters), where ``prev_hash`` is the previous entry's ``chain_hash``, or
  :data:`GENESIS` (64 zeros) for entry 1.

Because ``seq`` is in the content and each link names the previous chain hash, an entry
edited, removed or moved elsewhere breaks the chain at that entry. :func:`verify` streams
the table in ``seq`` order from the anchor (:mod:`vigie.register.models`: where retention
left the chain, checked against the register's own retention entry) to the head (the last
entry appended, so that a removed tail is seen too) and names the first entry that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.register.models import anchor, entries

#: The chain hash entry 1 follows.
GENESIS = "0" * 64
#: Fields of the canonical content, in the order the table stores them.
CONTENT_FIELDS = ("seq", "entry_id", "kind", "at_ns", "appended_ns", "user", "station", "camera_id",
                  "incident_id", "record", "service", "client", "subject", "detail")
#: The register's own retention entries: kind, service and subject (their detail is JSON: see prune_detail).
PRUNE_KIND, PRUNE_SERVICE, PRUNE_SUBJECT = "purge", "register", "register"
#: The content fields in the canonical (sorted) order.
SORTED_FIELDS = tuple(sorted(CONTENT_FIELDS))
_INTEGERS = frozenset({"seq", "at_ns", "appended_ns"})
# The canonical JSON written directly (the same bytes as json.dumps(..., sort_keys=True, ensure_ascii=False,
# separators=(",", ":")), which the tests check): about three times faster, for verify's million rows.
_TEMPLATE = "{" + ",".join(f'"{name}":%{"d" if name in _INTEGERS else "s"}' for name in SORTED_FIELDS) + "}"
_string = json.encoder.encode_basestring  # the JSON string of a text, non-ASCII kept
_sha256 = hashlib.sha256


def canonical_values(values: Any) -> bytes:
    """The canonical content of an entry from its 14 content values in sorted-name order (:data:`SORTED_FIELDS`)."""
    (appended_ns, at_ns, camera_id, client, detail, entry_id, incident_id, kind, record, seq, service, station,
     subject, user) = values
    s = _string
    return (_TEMPLATE % (appended_ns, at_ns, s(camera_id), s(client), s(detail), s(entry_id), s(incident_id),
                         s(kind), s(record), seq, s(service), s(station), s(subject), s(user))).encode()


def canonical(fields: dict[str, Any] | Any) -> bytes:
    """The canonical content of an entry (a mapping, or a row with the content fields as attributes), UTF-8."""
    get = fields.__getitem__ if isinstance(fields, dict) else fields.__getattribute__
    return canonical_values([get(name) for name in SORTED_FIELDS])


def content_hash(fields: dict[str, Any] | Any) -> str:
    """Hex SHA-256 of :func:`canonical` of ``fields``."""
    return _sha256(canonical(fields)).hexdigest()


def link(prev_hash: str, content: str) -> str:
    """The chain hash of an entry: hex SHA-256 of ``prev_hash + content`` (both hex text)."""
    return _sha256((prev_hash + content).encode("ascii")).hexdigest()


def prune_detail(deleted: int, through_seq: int, through_hash: str, older_than_ns: int) -> str:
    """The ``detail`` of a retention entry: what was deleted, up to which entry and its chain hash (JSON)."""
    return json.dumps({"deleted": deleted, "through_seq": through_seq, "through_hash": through_hash,
                       "older_than_ns": older_than_ns}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    Attributes:
        ok: True when every entry from the anchor to the head is intact.
        checked: entries checked (those present from the anchor on).
        first_bad_seq: seq of the first entry found wrong (or of the first missing one), None when ok.
        entry_id: id of the entry found at (or just after) ``first_bad_seq``, "" when none.
        reason: what is wrong ("edited: ...", "removed: ...", "reordered: ..."), "" when ok.
        first_seq: seq of the first entry the chain holds (retention's anchor).
        head_seq: seq of the last entry appended.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    entry_id: str = ""
    reason: str = ""
    first_seq: int = 1
    head_seq: int = 0


#: Columns verify reads: the content values first, in canonical order (``row[:_N]``), then the rest.
_VERIFY_COLUMNS = [entries.c[name] for name in SORTED_FIELDS] + [entries.c.content_hash, entries.c.prev_hash,
                                                                  entries.c.chain_hash]
_N = len(SORTED_FIELDS)


def _check_row(row: Any, seq: int, prev: str) -> tuple[int, str] | None:
    """(seq, reason) when ``row`` is not the intact entry ``seq`` following chain hash ``prev``, else None."""
    if row.seq != seq:
        last = row.seq - 1
        span = f"seq {seq}" if last == seq else f"seq {seq}..{last}"
        return seq, f"removed: {span} missing before entry {row.seq}"
    if row.prev_hash != prev:
        return seq, ("reordered: its link does not follow the entry before (prev_hash differs from that entry's "
                     "chain hash): entries moved, one before it removed and the rest renumbered, or the entry "
                     "before rewritten with new hashes")
    if _sha256(canonical_values(row[:_N])).hexdigest() != row.content_hash:
        return seq, "edited: its content does not match its content hash"
    if link(prev, row.content_hash) != row.chain_hash:
        return seq, "edited: its chain hash does not match its link"
    return None


def _check_anchor(ends: Any, last_prune: dict[str, Any] | None) -> str:
    """Why the anchor (``ends.first_seq``/``prev_hash``) is not the one the last retention entry states, or ""."""
    if ends.first_seq == 1 and ends.prev_hash == GENESIS and last_prune is None:
        return ""
    if last_prune is None:
        return (f"removed: the chain starts at seq {ends.first_seq} but no retention entry of the register "
                "says that entries before it were deleted")
    if last_prune.get("through_seq") != ends.first_seq - 1 or last_prune.get("through_hash") != ends.prev_hash:
        return (f"removed: the anchor (start at seq {ends.first_seq}) differs from the last retention entry "
                f"(deleted through seq {last_prune.get('through_seq')})")
    return ""


async def _verify_once(engine: AsyncEngine, chunk: int) -> VerifyResult:
    async with engine.connect() as connection:
        ends = (await connection.execute(select(anchor).where(anchor.c.id == 1))).first()
        if ends is None:
            return VerifyResult(False, 0, None, "", "the register_anchor row is missing: the chain's ends are unknown")
        seq, prev, checked, last_prune = ends.first_seq, ends.prev_hash, 0, None
        result = await connection.stream(
            select(*_VERIFY_COLUMNS).where(entries.c.seq <= ends.head_seq).order_by(entries.c.seq)
            .execution_options(yield_per=chunk))
        async for rows in result.partitions():
            for row in rows:
                bad = _check_row(row, seq, prev)
                if bad is not None:
                    await result.close()
                    return VerifyResult(False, checked, bad[0], row.entry_id, bad[1], ends.first_seq, ends.head_seq)
                if row.kind == PRUNE_KIND and row.service == PRUNE_SERVICE and row.subject == PRUNE_SUBJECT:
                    try:
                        last_prune = json.loads(row.detail)
                    except ValueError:
                        last_prune = {}
                    if not isinstance(last_prune, dict):
                        last_prune = {}
                seq, prev, checked = seq + 1, row.chain_hash, checked + 1
    if seq <= ends.head_seq:
        return VerifyResult(False, checked, seq, "", f"removed: seq {seq}..{ends.head_seq} missing at the end of "
                            "the chain (the head says it ends there)", ends.first_seq, ends.head_seq)
    if prev != ends.head_hash:
        return VerifyResult(False, checked, ends.head_seq, "", "edited: the last entry's chain hash differs from "
                            "the head recorded with it", ends.first_seq, ends.head_seq)
    problem = _check_anchor(ends, last_prune)
    if problem:
        return VerifyResult(False, checked, ends.first_seq, "", problem, ends.first_seq, ends.head_seq)
    return VerifyResult(True, checked, first_seq=ends.first_seq, head_seq=ends.head_seq)


async def verify(engine: AsyncEngine, chunk: int = 20_000) -> VerifyResult:
    """Check the whole chain, streaming the table in ``seq`` order ``chunk`` rows at a time (server-side cursor).

    Checks, entry by entry from the anchor: no seq missing (removed), each link follows the
    entry before (reordered), each content hash and chain hash matches (edited); then that the
    chain reaches the head and that the anchor is the one the register's last retention entry
    states. Entries appended after the check began are not looked at. A check that fails while
    retention moved the anchor meanwhile is run again once. Raises SQLAlchemy's errors when the
    database cannot be read (callers turn them into :class:`~vigie.core.db.DatabaseUnavailable`).
    """
    result = await _verify_once(engine, chunk)
    if not result.ok:
        async with engine.connect() as connection:
            first_seq = (await connection.execute(select(anchor.c.first_seq).where(anchor.c.id == 1))).scalar()
        if first_seq is not None and first_seq != result.first_seq:
            return await _verify_once(engine, chunk)
    return result
