"""Offset continuity of the correlator's inputs: a record skipped by the consumer is read again, not lost.

faust's consumer may hand an agent, right after a rebalance, a record prefetched beyond the
partition's committed offset; it then treats the offsets in between as a gap of a compacted
topic and acknowledges them (``faust/transport/consumer.py``: ``_drain_messages`` and
``_add_gap``; faust-streaming issues 216 and 221). On ``anomalies`` and ``actions``, which are
never compacted and written without transactions, consecutive records have consecutive
offsets: a gap means records nobody processed, and its offsets would be committed as done.

:class:`OffsetGuard` keeps, for every input partition, the next offset to process in the
incident table itself (key ``\\x00next:<topic>:<partition>``; the table's changelog write goes
to the same partition as the record, so the value moves with the partition at a rebalance
and survives a crash). A record beyond that offset is not processed: the consumer is sought
back to the expected offset, and the records come again (processing is idempotent by id, so
those delivered twice change nothing). Gaps are logged and counted
(``vigie_correlator_offset_gaps_total``).
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

import faust
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

#: Prefix of the guard's keys in the incident table: no camera id can start with it.
KEY_PREFIX = b"\x00next:"
#: Seconds after which a seek that brought no record is issued again (a rebalance may have voided it).
RESEEK_AFTER_S = 5.0


def is_guard_key(key: bytes) -> bool:
    """True for the guard's own table keys (not a camera's incidents)."""
    return key.startswith(KEY_PREFIX)


@dataclass(slots=True)
class _Seek:
    offset: int
    at: float


class OffsetGuard:
    """Checks each input record's offset against the next one expected for its partition.

    Args:
        app: the faust app (its consumer seeks).
        table: the incident table (``bytes`` keys and values) that keeps the expected offsets.
        registry: where ``vigie_correlator_offset_gaps_total{topic}`` is registered.
    """

    def __init__(self, app: faust.App, table: faust.Table, registry: CollectorRegistry) -> None:
        self.app = app
        self.table = table
        self.gaps = Counter("vigie_correlator_offset_gaps", "Input records found skipped by the consumer and "
                            "read again", ["topic"], registry=registry)
        self._seeking: dict[tuple[str, int], _Seek] = {}

    @staticmethod
    def key(topic: str, partition: int) -> bytes:
        """The table key holding the next offset of ``topic``'s ``partition``."""
        return KEY_PREFIX + f"{topic}:{partition}".encode()

    def expected(self, topic: str, partition: int) -> int | None:
        """The next offset to process in this partition, or None before its first record."""
        raw = self.table.get(self.key(topic, partition))
        return struct.unpack(">q", raw)[0] if raw and len(raw) == 8 else None

    async def admit(self, event: faust.EventT) -> bool:
        """True when ``event`` is to be processed; False when records before it were skipped (the
        consumer is then sought back to the first of them, and ``event`` will come again)."""
        msg = event.message
        where = (msg.topic, msg.partition)
        seek = self._seeking.get(where)
        if seek is not None:
            if msg.offset <= seek.offset:  # the seek took effect
                del self._seeking[where]
                return True
            if time.monotonic() - seek.at > RESEEK_AFTER_S:
                await self._seek(msg, seek.offset)
            return False
        expected = self.expected(*where)
        if expected is None or msg.offset <= expected:
            return True
        skipped = msg.offset - expected
        self.gaps.labels(msg.topic).inc()
        log.warning("%s[%d]: record %d arrived while %d was expected: %d record(s) skipped by the consumer; "
                    "reading them again", msg.topic, msg.partition, msg.offset, expected, skipped)
        await self._seek(msg, expected)
        return False

    async def _seek(self, msg: faust.types.Message, offset: int) -> None:
        self._seeking[(msg.topic, msg.partition)] = _Seek(offset, time.monotonic())
        await self.app.consumer.seek(msg.tp, offset)

    def done(self, event: faust.EventT) -> None:
        """Record that ``event`` was processed: its partition's next offset is the one after it."""
        msg = event.message
        current = self.expected(msg.topic, msg.partition)
        if current is None or msg.offset + 1 > current:
            self.table[self.key(msg.topic, msg.partition)] = struct.pack(">q", msg.offset + 1)
