"""Offset continuity of the correlator's inputs: a record skipped by the consumer is processed, not lost.

faust's consumer may hand an agent, right after a rebalance, a record beyond the one its
table says comes next: a record prefetched past the committed offset (faust treats the
offsets in between as a gap of a compacted topic and acknowledges them:
``faust/transport/consumer.py``, ``_drain_messages`` and ``_add_gap``; faust-streaming issues
216 and 221), or a record whose predecessor the previous owner processed and committed while
the new owner was already restoring the table (its last table write then came after the
restore). On ``anomalies`` and ``actions``, never compacted and written without transactions,
consecutive records have consecutive offsets: a gap means records whose effect is not in the
table, and their offsets would be committed as done.

:class:`OffsetGuard` keeps, for every input partition, the next offset to process in the
incident table itself (key ``\x00next:<topic>:<partition>``; the table's changelog write goes
to the same partition as the record, so the value moves with the partition at a rebalance and
survives a crash). When a record comes beyond it, the missing records are read again from the
broker by a consumer of the guard's own (outside any group; faust's consumer is not sought,
which would race its fetcher) and handed to the agent first, in order; processing is
idempotent by id, so one the table already had changes nothing. Gaps are logged and counted
(``vigie_correlator_offset_gaps_total``, records in ``vigie_correlator_offset_gap_records_total``).
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from vigie.core.kafka import MAX_RECORD_BYTES
from vigie.core.kafka_security import client_options
from vigie.core.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Prefix of the guard's keys in the incident table: no camera id can start with it.
KEY_PREFIX = b"\x00next:"


def is_guard_key(key: bytes) -> bool:
    """True for the guard's own table keys (not a camera's incidents)."""
    return key.startswith(KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class Refetched:
    """A record read again by the guard, shaped like the faust event the agent handles
    (``key``, ``value``, and ``message`` with topic, partition, offset, key and value)."""

    key: bytes | None
    value: bytes | None
    message: ConsumerRecord


class OffsetGuard:
    """Checks each input record's offset against the next one expected for its partition.

    Args:
        kafka: the broker the missing records are read from.
        table: the incident table (``bytes`` keys and values) that keeps the expected offsets.
        registry: where the gap counters are registered.
        topics: the input topics, whose counters are exported at 0 from the start.
        timeout_s: longest wait for the missing records of one gap.
    """

    def __init__(self, kafka: KafkaSettings, table: faust.Table, registry: CollectorRegistry,
                 topics: tuple[str, ...] = (), timeout_s: float = 30.0) -> None:
        self.kafka = kafka
        self.table = table
        self.timeout_s = timeout_s
        self.gaps = Counter("vigie_correlator_offset_gaps", "Gaps found between an input record and the next "
                            "one the table expected", ["topic"], registry=registry)
        self.gap_records = Counter("vigie_correlator_offset_gap_records", "Input records read again to fill gaps",
                                   ["topic"], registry=registry)
        self.unfilled = Counter("vigie_correlator_offset_gap_unread", "Records of a gap that could not be read "
                                "again (lost)", ["topic"], registry=registry)
        for topic in topics:  # exported at 0 from the start, so that a rate() or an alert rule sees them
            for counter in (self.gaps, self.gap_records, self.unfilled):
                counter.labels(topic)

    @staticmethod
    def key(topic: str, partition: int) -> bytes:
        """The table key holding the next offset of ``topic``'s ``partition``."""
        return KEY_PREFIX + f"{topic}:{partition}".encode()

    def expected(self, topic: str, partition: int) -> int | None:
        """The next offset to process in this partition, or None before its first record."""
        raw = self.table.get(self.key(topic, partition))
        return struct.unpack(">q", raw)[0] if raw and len(raw) == 8 else None

    async def missing(self, event: faust.EventT) -> list[Refetched]:
        """The records between the partition's expected offset and ``event``'s, read again from the
        broker, in order (empty when there is no gap). Records that cannot be read within
        ``timeout_s`` are logged and counted as lost."""
        msg = event.message
        expected = self.expected(msg.topic, msg.partition)
        if expected is None or msg.offset <= expected:
            return []
        self.gaps.labels(msg.topic).inc()
        log.warning("%s[%d]: record %d arrived while %d was expected: reading the %d record(s) in between again",
                    msg.topic, msg.partition, msg.offset, expected, msg.offset - expected)
        records = await self._read(msg.topic, msg.partition, expected, msg.offset)
        self.gap_records.labels(msg.topic).inc(len(records))
        if len(records) < msg.offset - expected:
            self.unfilled.labels(msg.topic).inc(msg.offset - expected - len(records))
            log.error("%s[%d]: only %d of the records %d..%d could be read again", msg.topic, msg.partition,
                      len(records), expected, msg.offset - 1)
        return [Refetched(r.key, r.value, r) for r in records]

    async def _read(self, topic: str, partition: int, start: int, end: int) -> list[ConsumerRecord]:
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(**client_options(self.kafka), group_id=None, enable_auto_commit=False,
                                    max_partition_fetch_bytes=MAX_RECORD_BYTES)
        out: list[ConsumerRecord] = []
        try:
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, start)
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline and (not out or out[-1].offset < end - 1):
                batch = await consumer.getmany(tp, timeout_ms=500)
                out.extend(r for r in batch.get(tp, []) if start <= r.offset < end)
        except Exception as exc:  # noqa: BLE001 - reported as unread records by the caller
            log.error("%s[%d]: cannot read records %d..%d again: %s", topic, partition, start, end - 1, exc)
        finally:
            await consumer.stop()
        return out

    def done(self, event: faust.EventT | Refetched) -> None:
        """Record that ``event`` was processed: its partition's next offset is the one after it."""
        msg = event.message
        current = self.expected(msg.topic, msg.partition)
        if current is None or msg.offset + 1 > current:
            self.table[self.key(msg.topic, msg.partition)] = struct.pack(">q", msg.offset + 1)
