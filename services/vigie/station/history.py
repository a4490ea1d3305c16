"""The station's history: closed incidents read back from the alerts topic, newest first, page by page.

Closed incidents leave the station's memory (:mod:`vigie.station.store`), but the alerts topic
keeps every revision for 30 days. The history is the closed revisions of the topic, read
backwards on demand by a consumer outside any consumer group (nothing is kept between requests;
read_committed, so aborted transactions never show). A closed incident is not always final: an
anomaly at the same place within its kind's reactivation threshold reopens it
(``vigie.correlator.incidents``), and it may close again later, so one incident can have several
closed revisions; a page shows each incident once, its newest closed revision (the scan meets it
first), and an incident reopened and still open shows at its last closing.

A page is ``limit`` closed incidents, newest closing first (``updated_ns``, the correlator's
clock). Its cursor is exact, not a time: for each partition of the topic, the offset below which
that partition has not been shown yet (``"0:1234,1:1180,2:1302"``). To make a page, each
partition is read backwards from its cursor offset, ``chunk`` records at a time, until it gave
``limit`` closed incidents or reached its first offset; the partitions' lists are then merged by
closing time, each partition taken in offset order, so the next cursor of a partition is just
above its newest closed incident not shown (or the lowest offset read, when all were shown).
The order is by closing time as long as each partition holds its closed revisions in closing
order, which it does: the correlator publishes a revision when it makes it. Every closing shows
once, on one page, even when timestamps of partitions interleave; ids seen twice on a page (a
republished revision, an incident closed again after a reopening) are shown once, at their newest
closing (an older closing of an incident reopened and closed again may show on a later page).
The cost of a page is about ``limit / (share of closed revisions)`` records per partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from vigie.contracts.v1 import Incident
from vigie.core.errors import BrokerUnavailable, MalformedMessage
from vigie.core.kafka import make_consumer, partitions_of
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic


class CursorError(ValueError):
    """A ``before`` cursor that is not one this station made for this topic."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history: ``incidents`` newest closing first; ``next`` the cursor of older ones, or None."""

    incidents: list[Incident]
    next: str | None


@dataclass(frozen=True, slots=True)
class _Found:
    incident: Incident
    offset: int

    @property
    def closed_ns(self) -> int:
        return self.incident.updated_ns or self.incident.last_seen_ns


def parse_cursor(text: str, partitions: list[int]) -> dict[int, int]:
    """``{partition: offset}`` from ``"p:o,p:o"``; raises CursorError unless it names exactly ``partitions``."""
    try:
        positions = {int(p): int(o) for p, o in (item.split(":") for item in text.split(","))}
    except ValueError:
        raise CursorError(f"bad cursor {text[:100]!r}: expected 'partition:offset,...'") from None
    if sorted(positions) != partitions or any(o < 0 for o in positions.values()):
        raise CursorError(f"cursor {text[:100]!r} does not match the alert topic's partitions {partitions}")
    return positions


def format_cursor(positions: dict[int, int]) -> str:
    """The cursor text of ``positions`` (see :func:`parse_cursor`)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


async def closed_page(settings: KafkaSettings, topic: Topic[Incident], before: str | None, limit: int,
                      *, chunk: int = 500, timeout_s: float = 15.0) -> Page:
    """The ``limit`` closed incidents of ``topic`` closed last before cursor ``before`` (None: the newest).

    Raises CursorError for a bad cursor, BrokerUnavailable when the topic cannot be read
    within ``timeout_s`` seconds.
    """
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise BrokerUnavailable(f"topic {topic.name} has no partitions in the cluster metadata")
    cursor = parse_cursor(before, partitions) if before else None
    deadline = time.monotonic() + timeout_s
    try:
        found, lowest, first = await _scan(settings, topic, partitions, cursor, limit, chunk, deadline)
    except KafkaError as exc:
        raise BrokerUnavailable(f"reading {topic.name}: {exc}") from exc
    taken = dict.fromkeys(partitions, 0)
    page: list[Incident] = []
    seen: set[str] = set()
    while len(page) < limit:
        heads = [p for p in partitions if taken[p] < len(found[p])]
        if not heads:
            break
        p = max(heads, key=lambda q: (found[q][taken[q]].closed_ns, found[q][taken[q]].incident.id))
        item = found[p][taken[p]]
        taken[p] += 1
        if item.incident.id not in seen:
            seen.add(item.incident.id)
            page.append(item.incident)
    # Below its newest candidate not shown, a partition has shown every closed incident it read.
    positions = {p: found[p][taken[p]].offset + 1 if taken[p] < len(found[p]) else lowest[p] for p in partitions}
    more = any(positions[p] > first[p] for p in partitions)
    return Page(page, format_cursor(positions) if more else None)


async def _scan(settings: KafkaSettings, topic: Topic[Incident], partitions: list[int], cursor: dict[int, int] | None,
                limit: int, chunk: int, deadline: float
                ) -> tuple[dict[int, list[_Found]], dict[int, int], dict[int, int]]:
    """Per partition: closed incidents below the cursor (newest offset first), the lowest offset read, the
    first offset kept."""
    consumer = make_consumer(settings, group=None, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = {p: TopicPartition(topic.name, p) for p in partitions}
        consumer.assign(list(tps.values()))
        first = await consumer.beginning_offsets(list(tps.values()))
        end = await consumer.end_offsets(list(tps.values()))
        found: dict[int, list[_Found]] = {}
        lowest: dict[int, int] = {}
        for p, tp in tps.items():
            start = end[tp] if cursor is None else max(first[tp], min(cursor[p], end[tp]))
            found[p], lowest[p] = await _scan_back(consumer, topic, tp, start, first[tp], limit, chunk, deadline)
        return found, lowest, {p: first[tp] for p, tp in tps.items()}
    finally:
        await consumer.stop()


async def _scan_back(consumer: AIOKafkaConsumer, topic: Topic[Incident], tp: TopicPartition, position: int,
                     first: int, want: int, chunk: int, deadline: float) -> tuple[list[_Found], int]:
    """Closed incidents of ``tp`` below ``position``, newest offset first, at least ``want`` of them unless the
    partition starts sooner; and the lowest offset read."""
    found: list[_Found] = []
    end = position
    while end > first and len(found) < want:
        start = max(first, end - chunk)
        for record in await _read_range(consumer, tp, start, end, deadline):
            try:
                incident = topic.decode(record.value)
            except MalformedMessage:
                continue  # the live consumer counts it; the history just skips it
            if incident.state == Incident.STATE_CLOSED:
                found.append(_Found(incident, record.offset))
        end = start
    found.sort(key=lambda f: f.offset, reverse=True)
    return found, end


async def _read_range(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int,
                      deadline: float) -> list[ConsumerRecord]:
    """The records of ``tp`` with ``start <= offset < end``. Raises BrokerUnavailable after ``deadline``."""
    consumer.seek(tp, start)
    records: list[ConsumerRecord] = []
    while await consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"reading {tp.topic}[{tp.partition}] offsets {start}-{end} took too long")
        batch = await consumer.getmany(tp, timeout_ms=200, max_records=end - start)
        records.extend(r for r in batch.get(tp, ()) if r.offset < end)
    return records
