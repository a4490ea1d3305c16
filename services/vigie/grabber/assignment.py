"""Which cameras a grabber replica runs, decided by Kafka: consumer group ``vigie-grabber`` on the ``cameras`` topic.

The compacted ``cameras`` topic holds the latest :class:`~vigie.core.camera_records.CameraRecord` per camera,
keyed by camera id (``vigie cameras apply``). Replicas subscribe to it in one consumer group; the broker
hands each partition to one replica, and a replica runs the cameras of its partitions:

1. **assigned** (:meth:`CameraAssignment.assigned`): the replica reads each new partition from its
   beginning (the group never commits offsets) up to the end offset it had then, keeping the latest record
   per camera, and only then starts those cameras (or resumes the ones it held);
2. **updated**: a later record of a camera restarts it with the new configuration (an identical one
   changes nothing); a tombstone (null value) stops it;
3. **revoked** (:meth:`CameraAssignment.revoked`, awaited by the consumer before the rebalance goes on): the
   cameras of the revoked partitions are *held*: their queued frames are published and acknowledged, later
   frames dropped, so that no two replicas publish a camera at once. aiokafka's group protocol is eager
   (every member gives up every partition at each rebalance): a held camera whose partition comes back is
   resumed without reopening its stream; the others are stopped at the assignment.

A record that does not validate (another client wrote it: ``kcat``) is skipped: dead-lettered once per
replica with the reason, counted in ``vigie_grabber_invalid_camera_records_total``, logged, and the camera's
status says so (``failed: invalid camera record: ...``) unless it runs on an earlier valid record; the
replica and its other cameras go on. A record on another partition than its key's (kcat's default partitioner
is not Kafka's murmur2) is skipped the same way, since that partition's replica is not the camera's. A camera's
password is never in the topic (only a reference to a file or a variable), and a dead letter's value is redacted
all the same.

A replica that dies hands its cameras over after ``session_timeout_s`` (heartbeats every sixth of it); one
that stops cleanly leaves the group first, and its cameras move at once. Replicas beyond the topic's
partition count get no camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge

from vigie.core.camera_records import CameraRecord
from vigie.core.errors import MalformedMessage
from vigie.core.kafka import DeadLetters, Rebalance, describe_broker_error, make_consumer, make_producer
from vigie.core.secrets import redact

if TYPE_CHECKING:
    from vigie.grabber.app import GrabberService

log = logging.getLogger(__name__)

#: Consumer group of the grabber replicas (inside the namespace).
GROUP = "vigie-grabber"

_CAMERA_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(slots=True)
class _Partition:
    """An assigned partition: its end offset when assigned (None until asked), and whether it was read that far."""

    end: int | None = None
    loaded: bool = False
    #: While loading: the latest valid record per camera (None: a tombstone).
    latest: dict[str, CameraRecord | None] = field(default_factory=dict)


class CameraAssignment:
    """The consumer of the ``cameras`` topic inside a grabber, and the cameras it runs from it.

    Args:
        grabber: the grabber service, which starts, holds, resumes and stops cameras.
        session_timeout_s: seconds without a heartbeat before the group gives a replica's partitions to the
            others (heartbeats every sixth of it).
    """

    def __init__(self, grabber: "GrabberService", session_timeout_s: float) -> None:
        self.grabber = grabber
        self.topic = grabber.topics.cameras
        self.session_timeout_s = session_timeout_s
        self.partitions: dict[TopicPartition, _Partition] = {}
        #: Cameras run from the topic: camera id -> (its partition, the record it runs).
        self.applied: dict[str, tuple[TopicPartition, CameraRecord]] = {}
        #: Cameras whose latest record is invalid and that do not run: camera id -> (partition, reason).
        self.invalid: dict[str, tuple[TopicPartition, str]] = {}
        self.rebalances = 0
        self._dead_lettered: set[tuple[int, int]] = set()  # (partition, offset): once per replica
        self._lock = asyncio.Lock()
        self._consumer = None
        self._producer = None
        self._dead: DeadLetters | None = None
        registry = grabber.registry
        self.invalid_records = Counter("vigie_grabber_invalid_camera_records", "Records of the cameras topic that "
                                       "did not validate (dead-lettered, skipped)", registry=registry)
        self.owned = Gauge("vigie_grabber_camera_partitions", "Partitions of the cameras topic assigned to this "
                           "replica", registry=registry)

    async def start(self) -> None:
        """Join the group (the assignment arrives in the background). Safe to call twice."""
        if self._consumer is not None:
            return
        kafka = self.grabber.settings.kafka
        self._producer = make_producer(kafka)
        await self._producer.start()
        self._dead = DeadLetters(self._producer, self.grabber.topics.deadletter, self.grabber.name)
        session_ms = int(self.session_timeout_s * 1000)
        self._consumer = make_consumer(kafka, group=GROUP, session_timeout_ms=session_ms,
                                       heartbeat_interval_ms=max(100, session_ms // 6))
        self._consumer.subscribe([self.topic.name], listener=Rebalance(self.revoked, self.assigned))
        await self._consumer.start()

    async def close(self) -> None:
        """Leave the group at once (its partitions go to the others now), then stop the dead-letter producer.
        Safe to call twice; stop the cameras first."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client in (consumer, producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Read the assigned partitions and apply their records until ``stop`` is set. Never raises for a
        record: a bad one is skipped (dead letter, counter, log)."""
        while not stop.is_set():
            try:
                polled = await self._consumer.getmany(timeout_ms=200)
            except KafkaError as exc:  # the broker away: the consumer reconnects by itself
                log.warning("cameras topic not read: %s", describe_broker_error(exc))
                await asyncio.sleep(1.0)
                continue
            async with self._lock:
                for tp, records in polled.items():
                    for record in records:
                        if tp in self.partitions:  # still ours (not revoked since the poll)
                            await self._guarded(self._record(tp, record), f"record {tp.partition}@{record.offset}")
                await self._guarded(self._load(), "loading partitions")

    async def _guarded(self, work: Any, what: str) -> None:
        """Await ``work``; a bug there is logged and counted, never stops the replica's other cameras."""
        try:
            await work
        except Exception:  # noqa: BLE001 - one camera's record must not stop the others
            self.grabber.metrics.errors("camera_record").inc()
            log.exception("cameras topic: %s failed", what)

    async def _record(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """Apply one record (or, while its partition loads, keep it as its camera's latest)."""
        camera_id = record.key.decode(errors="replace") if record.key is not None else ""
        if not _CAMERA_ID.fullmatch(camera_id):
            await self._reject(tp, record, camera_id or None, f"{self.topic.name}: record key {camera_id!r} is not "
                               "a camera id")
            return
        count = len(self._consumer.partitions_for_topic(self.topic.name) or ())  # 0: metadata not known yet
        misplaced = count and self.topic.misplaced(record.key, tp.partition, count)
        if misplaced:  # its camera is another partition's (maybe another replica's): not this one's to run
            await self._reject(tp, record, None, misplaced)
            return
        value = None
        if record.value is not None:
            try:
                value = self.topic.decode(record.value, record.key)
            except MalformedMessage as exc:
                await self._reject(tp, record, camera_id, str(exc))
                return
        state = self.partitions[tp]
        if state.loaded:
            await self._apply(tp, camera_id, value)
        else:
            state.latest[camera_id] = value
            if value is not None:  # a later valid record clears an earlier invalid one
                self._clear_invalid(camera_id)

    async def _load(self) -> None:
        """Partitions read up to their end offset at assignment: start (or resume) their cameras, stop those
        held there whose record is gone."""
        new = [tp for tp, state in self.partitions.items() if state.end is None]
        try:
            if new:  # from the beginning (never committed: a new assignment starts there anyway)
                await self._consumer.seek_to_beginning(*new)
                for tp, end in (await self._consumer.end_offsets(new)).items():
                    self.partitions[tp].end = end
        except (IllegalStateError, KafkaError) as exc:  # revoked meanwhile, or the broker away: next poll
            log.debug("cameras partitions %s not sought: %s", [tp.partition for tp in new], exc)
            return
        for tp, state in list(self.partitions.items()):
            if state.loaded or state.end is None:
                continue
            try:
                if await self._consumer.position(tp) < state.end:
                    continue
            except (IllegalStateError, KafkaError) as exc:  # revoked meanwhile, or the broker away: next poll
                log.debug("partition %s not loaded yet: %s", tp.partition, exc)
                continue
            state.loaded = True
            wanted, state.latest = state.latest, {}
            gone = [c for c, (p, _) in self.applied.items() if p == tp and wanted.get(c, None) is None]
            for camera_id, record in wanted.items():
                if record is not None:
                    await self._apply(tp, camera_id, record)
            for camera_id in gone:
                await self._apply(tp, camera_id, None)
            count = sum(1 for p, _ in self.applied.values() if p == tp)
            log.log(logging.INFO if count else logging.DEBUG, "cameras partition %d loaded: %d camera(s) run from it",
                    tp.partition, count)

    async def _apply(self, tp: TopicPartition, camera_id: str, record: CameraRecord | None) -> None:
        """Run ``camera_id`` as ``record`` says: start, resume, restart with a new configuration, or stop (None)."""
        current = self.applied.get(camera_id)
        if record is not None:
            self._clear_invalid(camera_id)
            if current is not None and record.same_as(current[1]):
                self.grabber.resume_camera(camera_id)
                self.applied[camera_id] = (tp, record)
                return
        if current is not None:
            log.info("camera %s: %s", camera_id, "configuration changed: restarting it" if record else
                     "removed from the cameras topic: stopping it", extra={"camera": camera_id})
            await self.grabber.stop_cameras([camera_id])
            del self.applied[camera_id]
        if record is None:
            self._clear_invalid(camera_id)
            return
        log.info("camera %s: starting it (cameras partition %d)", camera_id, tp.partition, extra={"camera": camera_id})
        self.grabber.start_camera(record.camera, record.authorisation)
        self.applied[camera_id] = (tp, record)

    async def _reject(self, tp: TopicPartition, record: ConsumerRecord, camera_id: str | None, reason: str) -> None:
        """Skip a record that does not validate: dead letter (once per replica), counter, log, camera status."""
        if (tp.partition, record.offset) in self._dead_lettered:
            return
        self._dead_lettered.add((tp.partition, record.offset))
        self.invalid_records.inc()
        self.grabber.metrics.errors("invalid_camera_record").inc()
        log.error("camera record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, reason,
                  extra={"camera": camera_id or ""})
        if record.value is not None:  # a password in it is not copied as it is
            record = dataclasses.replace(record, value=redact(record.value.decode(errors="replace")).encode())
        try:
            await asyncio.wait_for(self._dead.send(record, reason), 10.0)
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.warning("dead letter not sent: %s", describe_broker_error(exc))
        if camera_id is not None and camera_id not in self.applied:  # a camera running on a valid record goes on
            self.invalid[camera_id] = (tp, reason)
            self.grabber.beacon.observe(camera_id, "failed", f"invalid camera record: {reason}", 0)

    def _clear_invalid(self, camera_id: str) -> None:
        if self.invalid.pop(camera_id, None) is not None and camera_id not in self.applied:
            self.grabber.beacon.forget(camera_id)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Start of a rebalance: hold the cameras of ``revoked`` (their frames in flight published first)."""
        async with self._lock:
            held = [c for c, (tp, _) in self.applied.items() if tp in revoked]
            await asyncio.gather(*(self.grabber.hold_camera(c) for c in held))
            for camera_id in [c for c, (tp, _) in self.invalid.items() if tp in revoked]:
                self._clear_invalid(camera_id)
            for tp in revoked:
                self.partitions.pop(tp, None)
            self.owned.set(len(self.partitions))
            if revoked:
                log.info("cameras partitions %s revoked: %d camera(s) held", sorted(tp.partition for tp in revoked),
                         len(held))

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """End of a rebalance: stop the cameras of partitions not handed back; read the new ones from the start."""
        async with self._lock:
            self.rebalances += 1
            lost = [c for c, (tp, _) in self.applied.items() if tp not in assigned]
            await self.grabber.stop_cameras(lost)
            for camera_id in lost:
                del self.applied[camera_id]
            self.partitions = {tp: self.partitions.get(tp) or _Partition() for tp in assigned}
            self.owned.set(len(assigned))
            log.info("cameras partitions %s assigned (%d camera(s) of other partitions stopped)",
                     sorted(tp.partition for tp in assigned), len(lost))

    def invalid_reasons(self) -> dict[str, str]:
        """Camera id -> why its record is skipped, for ``/healthz``."""
        return {camera_id: reason for camera_id, (_, reason) in sorted(self.invalid.items())}

    def health(self) -> dict[str, Any]:
        """The group, the partitions held (and those still loading), the cameras run from them, the rebalances."""
        return {"topic": self.topic.name, "group": self.grabber.settings.kafka.group(GROUP),
                "partitions": sorted(tp.partition for tp in self.partitions),
                "loading": sorted(tp.partition for tp, s in self.partitions.items() if not s.loaded),
                "cameras": sorted(self.applied), "invalid": self.invalid_reasons(), "rebalances": self.rebalances}
