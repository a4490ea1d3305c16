"""A known set of events as anomalies, fed at a steady rate, and the tally of incidents they gave.

Each event is one place on one camera: ``per_event`` anomalies of one kind whose regions
overlap (a little jitter, as a real detector gives), spaced ``spacing_s`` apart in stream time.
Events of one camera sit in cells of a grid that never overlap, so each must become exactly
one incident. Anomaly ids are ``chaos-e<event>-a<n>``: the tally maps every incident back to
its event through ``opened_by`` and the camera and place of its regions.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from vigie.contracts.v1 import Anomaly, Incident, RecordRef, Region
from vigie.core.kafka import MAX_RECORD_BYTES
from vigie.core.kafka_security import client_options
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

log = logging.getLogger(__name__)

#: Frame size the events' regions are drawn in, pixels.
FRAME = (640, 360)
#: Grid of places on one camera (columns, rows): events of a camera never share a cell.
GRID = (4, 3)


@dataclass(frozen=True, slots=True)
class ChaosEvent:
    """One event: ``camera`` raises ``kind`` at cell ``cell`` from stream time ``start_ns`` on."""

    index: int
    camera: str
    cell: int
    kind: str
    start_ns: int

    def box(self) -> tuple[int, int, int, int]:
        """The event's region ``(x, y, w, h)`` in :data:`FRAME` pixels."""
        cols, rows = GRID
        cw, ch = FRAME[0] // cols, FRAME[1] // rows
        x, y = (self.cell % cols) * cw, (self.cell // cols) * ch
        return x + cw // 4, y + ch // 4, cw // 2, ch // 2


def make_events(count: int, cameras: int, seed: int = 7) -> list[ChaosEvent]:
    """``count`` events spread round-robin over ``cameras`` cameras, each in its own cell.

    Raises:
        ValueError: more events per camera than cells in :data:`GRID`.
    """
    per_camera = -(-count // cameras)
    if per_camera > GRID[0] * GRID[1]:
        raise ValueError(f"{count} events on {cameras} cameras: at most {GRID[0] * GRID[1]} per camera")
    rng = random.Random(seed)
    t0 = time.time_ns()
    cells = {c: rng.sample(range(GRID[0] * GRID[1]), per_camera) for c in range(cameras)}
    return [ChaosEvent(index=e, camera=f"chaos-cam-{e % cameras:02d}", cell=cells[e % cameras][e // cameras],
                       kind="intrusion", start_ns=t0 + e * 1_000_000_000) for e in range(count)]


def anomalies_of(events: list[ChaosEvent], per_event: int, spacing_s: float, seed: int = 11) -> list[Anomaly]:
    """Every anomaly of ``events``, ordered as a detector would publish them (by stream time)."""
    rng = random.Random(seed)
    out = []
    for event in events:
        x, y, w, h = event.box()
        for n in range(per_event):
            dx, dy = rng.randint(-3, 3), rng.randint(-3, 3)
            out.append(Anomaly(
                id=f"chaos-e{event.index}-a{n}", camera_id=event.camera, kind=event.kind, score=0.9,
                regions=[Region(x=x + dx, y=y + dy, w=w, h=h)],
                capture_ns=event.start_ns + int(n * spacing_s * 1e9),
                frame=RecordRef(topic="frames", partition=0, offset=event.index * per_event + n),
                frame_width=FRAME[0], frame_height=FRAME[1], detector="vigie.chaos", detector_version="0",
                track_id=f"chaos-{event.index}", attributes={"zone": 0.0}))
    out.sort(key=lambda a: a.capture_ns)
    return out


def event_of(anomaly_id: str) -> int | None:
    """The event index in a chaos anomaly id (``chaos-e12-a3`` → 12), or None."""
    if not anomaly_id.startswith("chaos-e"):
        return None
    head = anomaly_id[len("chaos-e"):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


@dataclass
class Feeder:
    """Publishes anomalies to the ``anomalies`` topic at ``rate`` per second, surviving broker outages.

    A send that fails (broker away) is retried with the same record until acknowledged, with
    a new producer after each failure: the record may then reach the topic twice (an
    at-least-once producer, as the detector is across a crash), never zero times.
    """

    kafka: KafkaSettings
    rate: float
    sent: int = 0
    retries: int = 0
    sent_at: list[float] = field(default_factory=list)

    async def run(self, anomalies: list[Anomaly]) -> None:
        """Send every anomaly; returns once the last is acknowledged."""
        topic = Topics(self.kafka.namespace).anomalies
        producer = None
        started = time.monotonic()
        for n, anomaly in enumerate(anomalies):
            await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            while True:
                try:
                    if producer is None:
                        producer = AIOKafkaProducer(**client_options(self.kafka), acks="all",
                                                    enable_idempotence=True, request_timeout_ms=5000,
                                                    max_request_size=MAX_RECORD_BYTES)
                        await producer.start()
                    await producer.send_and_wait(topic.name, topic.encode(anomaly), key=topic.key(anomaly.camera_id))
                    break
                except Exception as exc:  # noqa: BLE001 - the broker is away: retry, it is the point of the run
                    self.retries += 1
                    log.info("feeder: send failed (%s), retrying", type(exc).__name__)
                    if producer is not None:
                        await _quietly(producer.stop())
                        producer = None
                    await asyncio.sleep(0.5)
            self.sent += 1
            self.sent_at.append(time.time())
        if producer is not None:
            await producer.stop()


async def _quietly(coro) -> None:  # noqa: ANN001
    try:
        await asyncio.wait_for(coro, 10)
    except Exception:  # noqa: BLE001 - closing a producer whose broker is gone
        pass


@dataclass(frozen=True, slots=True)
class Tally:
    """Incidents per event: ``events`` in, distinct ``incidents`` out, ``lost`` and ``duplicated`` events.

    ``duplicated`` counts the extra incidents (an event with three incidents adds two);
    ``strays`` are incidents no event explains.
    """

    events: int
    incidents: int
    lost: int
    duplicated: int
    strays: int
    per_event: dict[int, int]


def tally(events: list[int], incidents: list[Incident], which: Callable[[Incident], int | None]) -> Tally:
    """Count the distinct incident ids of every event; ``which`` names an incident's event (None: none)."""
    ids: dict[str, int | None] = {}
    for incident in incidents:
        ids.setdefault(incident.id, which(incident))
    per_event = Counter(e for e in ids.values() if e is not None)
    counts = {e: per_event.get(e, 0) for e in events}
    return Tally(events=len(events), incidents=len(ids), lost=sum(1 for n in counts.values() if n == 0),
                 duplicated=sum(max(0, n - 1) for n in counts.values()),
                 strays=sum(1 for e in ids.values() if e is None or e not in counts), per_event=counts)


def opened_by_event(incident: Incident) -> int | None:
    """The chaos event of an incident, from the anomaly that opened it."""
    return event_of(incident.opened_by)


async def read_incidents(kafka: KafkaSettings, done: Callable[[list[Incident]], bool], settle_s: float,
                         timeout_s: float) -> list[Incident]:
    """Every incident revision on the ``incidents`` topic, read from the beginning until ``done(incidents)``
    holds and nothing new came for ``settle_s`` seconds (or ``timeout_s`` passed)."""
    topic = Topics(kafka.namespace).incidents
    consumer = AIOKafkaConsumer(topic.name, **client_options(kafka), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    incidents: list[Incident] = []
    try:
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    incidents.append(topic.decode(record.value))
                    last_new = time.monotonic()
            if time.monotonic() - last_new >= settle_s and done(incidents):
                break
    finally:
        await consumer.stop()
    return incidents


async def every_partition_resumed(kafka: KafkaSettings, since_s: float, idle_s: float = 3.0) -> float | None:
    """When (s since the epoch) the last partition of the correlator's incident table got its first write at
    or after ``since_s``: the moment every camera's anomalies were processed again. None if none did."""
    changelog = f"{kafka.namespace}vigie-correlator-incidents-changelog"
    consumer = AIOKafkaConsumer(changelog, **client_options(kafka), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    first: dict[int, int] = {}
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, records in batch.items():
                last = time.monotonic()
                for record in records:
                    if record.timestamp >= since_s * 1000:
                        first[tp.partition] = min(first.get(tp.partition, record.timestamp), record.timestamp)
    finally:
        await consumer.stop()
    return max(first.values()) / 1000 if first else None
