"""The detector service: analytics on batched frames, anomalies out.

Stages, in order (:meth:`DetectorService.run`):

1. poll the ``frames`` topic as consumer group ``vigie-detector`` (up to ``max_batch`` records);
2. parse each record and decode its JPEG; a record that fails goes to ``deadletter``
   with its reason and the detector goes on;
3. form batches in which each camera appears at most once, in capture order;
4. run every enabled analytic on the batch (torch, on CUDA when present, else CPU),
   in a worker thread so the event loop keeps serving health and metrics;
   An analytic that raises is run again frame by frame; the frame it fails on goes to
   ``deadletter`` with the analytic's kind and the exception, is counted in
   ``vigie_errors{kind="analytic_<kind>"}``, that camera's state in that analytic is dropped,
   and the other analytics and cameras go on (:meth:`AnalyticsPlan.process`);
5. publish each detection to ``anomalies`` with its regions, score and a reference
   (topic, partition, offset) to the frame; the object-class verdicts that analytics left for
   after publishing are made in the background and may withdraw an anomaly (:mod:`.verdicts`);
6. commit the offsets only once the anomalies are acknowledged by the broker, so a
   crash replays frames rather than losing an alert.

Rebalances (:meth:`DetectorService.partitions_revoked` and ``partitions_assigned``): a detector joining,
leaving or dying moves partitions of ``frames`` between the detectors of the group. On revocation the batch
in progress is finished and committed first; offsets are committed only for partitions the consumer
still owns, and a commit refused because the group has moved on (``CommitFailedError``)
means "not committed, the new owner replays those frames": counted in
``vigie_errors{kind="commit_failed"}``, never fatal. The cameras of partitions that are not
handed back lose their analytic state here; cameras gained start cold, and ``/healthz``
says which are ``warming`` (:mod:`vigie.detector.ownership`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import torch
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError
from prometheus_client import Counter, Gauge
from pydantic import Field

from vigie.contracts.v1 import AuditEntry
from vigie.core.cameras import load_cameras
from vigie.core.options import resolve_device
from vigie.core.kafka import (DeadLetters, Rebalance, check_image_retention, describe_broker_error, make_consumer,
                              make_producer, require_topics, retriable, retry_delays, total_lag)
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.detector.analytics.episodes import RUN_ID
from vigie.detector.objects import ObjectDetector
from vigie.detector.ownership import Ownership
from vigie.detector.pipeline import Analyser, decode_records, rounds, to_anomaly
from vigie.detector.plan import AnalyticsPlan, Failure, Refusal, analytics_problems, authorised_sections
from vigie.detector.verdicts import Verdicts

log = logging.getLogger(__name__)
GROUP = "vigie-detector"
#: Kinds run by default on every camera (the others need zones or an operator's query).
DEFAULT_KINDS = ("abandoned_object", "crowd_movement")


class DetectorSettings(StrictModel):
    """Detector service settings."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    device: str = Field("auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    max_batch: int = Field(32, ge=1, le=1024, description="Most frames polled and analysed together.")
    threads: int = Field(1, ge=1, le=64, description="CPU threads torch may use.")
    work_width: int = Field(160, ge=32, le=1920, description="Width of the analytics' working resolution, pixels.")
    work_height: int = Field(120, ge=32, le=1080, description="Height of the analytics' working resolution, pixels.")
    analytics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        description="Kinds run on every camera unless its `analytics` section in the cameras file says otherwise.",
    )
    cameras_file: str | None = Field(None, description="Cameras YAML: per-camera analytics, zones and thresholds.")
    object_classes: bool = Field(
        True, description="Offer the object-class stage (SSD-MobileNet-v2 COCO) to analytics that ask for it; "
        "it loads on first use and runs only on their candidates.")
    object_verdict: Literal["after", "before"] = Field(
        "after", description="'after': anomalies the object-class stage may reject are published at once and "
        "withdrawn when its verdict rejects them (vigie.detector.verdicts); 'before': the analytics wait for it.")
    http_host: str = Field("127.0.0.1", description="Address of /healthz and /metrics.")
    http_port: int = Field(8092, ge=0, le=65535, description="Port of /healthz and /metrics.")

    def torch_device(self) -> torch.device:
        """The device to run on; 'auto' picks CUDA when torch sees a GPU.

        Raises:
            ConfigError: not a device, or CUDA that this machine lacks (:func:`~vigie.core.options.resolve_device`).
        """
        return resolve_device(self.device)


class DetectorService(Service):
    """Consumes frames, runs the analytics, publishes anomalies."""

    name = "detector"

    def __init__(self, settings: DetectorSettings, registry=None) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.device = settings.torch_device()
        self.plan: AnalyticsPlan | None = None
        self.analyser: Analyser | None = None
        self.verdicts: Verdicts | None = None
        self.ownership: Ownership | None = None
        self._consumer = None
        self._producer = None
        self._dead: DeadLetters | None = None
        self._sections: dict[str, Any] | None = None
        #: Kinds not run on a camera for want of a justifying purpose (its authorisation).
        self.refusals: list[Refusal] = []
        self._authorisations: list = []
        self._frame_sizes: dict[str, tuple[int, int]] = {}
        self._zones_warned: set[tuple[str, str, str]] = set()
        self._busy = asyncio.Lock()  # held while a batch is analysed and committed; a revocation waits for it
        self._uncommitted: dict[TopicPartition, int] = {}  # finished, commit not accepted yet
        self.frames_done = 0
        self.commits_failed = 0
        self._publish_error = ""  # why the broker does not take our records now (empty: it does)
        self._rebalances = Counter("vigie_detector_rebalances", "Partition assignments received from the group",
                                   registry=self.registry)
        self._owned = Gauge("vigie_detector_partitions", "Partitions of the frames topic owned", registry=self.registry)
        self._warming = Gauge("vigie_detector_cameras_warming", "Cameras whose analytics are still warming up",
                              registry=self.registry)
        self._lighting = Counter("vigie_detector_lighting_steps", "Sudden global lighting changes, after which the "
                                 "camera's background analytics relearn its scene", ["camera"], registry=self.registry)

    async def prepare(self) -> None:
        """Read the cameras file and check its analytics sections. Raises ConfigError (file:line: field)."""
        if self._sections is not None:
            return
        sections = {}
        if self.settings.cameras_file:
            cameras = await asyncio.to_thread(load_cameras, self.settings.cameras_file, analytics_problems)
            sections, self.refusals = authorised_sections(cameras, self.settings.analytics)
            self._authorisations = list(cameras.authorisations)
            for refusal in self.refusals:
                log.log(logging.ERROR if refusal.asked else logging.INFO, "%s", refusal.reason,
                        extra={"camera": refusal.camera_id})
                self.audit_event(AuditEntry.KIND_ANALYTIC_REFUSED, camera_id=refusal.camera_id, detail=refusal.reason)
        self._sections = sections

    async def start(self) -> None:
        if self._consumer is not None:
            return
        torch.set_num_threads(self.settings.threads)
        await self.prepare()
        # Given a cameras file, a camera absent from it runs nothing: no authorisation says what may run there.
        self.plan = AnalyticsPlan(self._sections, self.settings.analytics, self.device,
                                  unknown_cameras=not self.settings.cameras_file)
        self.plan.on_lighting_step = lambda camera_id: self._lighting.labels(camera_id).inc()
        self.ownership = Ownership(self.plan.warmup_s)
        objects = ObjectDetector() if self.settings.object_classes else None
        if objects is not None:  # load and run it once now, not on the frame that raises the first alarm
            await asyncio.to_thread(objects.warm_up)
        later = objects is not None and self.settings.object_verdict == "after"
        if later:  # its verdicts run beside the analytics: as many threads as they have, not every core
            import cv2

            cv2.setNumThreads(self.settings.threads)
        self.verdicts = Verdicts(objects) if later else None
        self.analyser = Analyser(self.plan, (self.settings.work_width, self.settings.work_height), self.device, objects,
                                 objects_later=later)
        log.info("analytics %s on %s, run %s (the prefix of this run's track ids)",
                 self.plan.kinds, self.device, RUN_ID)
        await require_topics(self.settings.kafka, [self.topics.frames, self.topics.anomalies, self.topics.deadletter])
        await check_image_retention(self.settings.kafka, self.topics.frames, self._authorisations)
        self._producer = make_producer(self.settings.kafka)
        await self._producer.start()
        self._dead = DeadLetters(self._producer, self.topics.deadletter, self.name)
        self._consumer = make_consumer(self.settings.kafka, group=GROUP, max_poll_records=self.settings.max_batch)
        self._consumer.subscribe([self.topics.frames.name],
                                 listener=Rebalance(self.partitions_revoked, self.partitions_assigned))
        await self._consumer.start()

    async def run(self, stop: asyncio.Event) -> None:
        last_lag = 0.0
        judge = asyncio.create_task(self.verdicts.run()) if self.verdicts is not None else None
        try:
            while not stop.is_set():
                polled = await self._consumer.getmany(timeout_ms=100, max_records=self.settings.max_batch)
                async with self._busy:
                    await self.withdraw()
                    # a partition revoked since the poll is no longer ours: its new owner reads those records
                    records = [r for tp in sorted(polled, key=lambda t: t.partition) if self.ownership.owns(tp)
                               for r in polled[tp]]
                    if records:
                        await self.process(records)
                if time.monotonic() - last_lag > 2.0:
                    try:
                        self.metrics.consumer_lag.set(await total_lag(self._consumer))
                    except IllegalStateError:  # the assignment changed under it: next time
                        pass
                    last_lag = time.monotonic()
        finally:
            if judge is not None:
                judge.cancel()

    async def withdraw(self) -> None:
        """Publish the withdrawals the object-class stage's verdicts made (:mod:`.verdicts`) and tell the analytics,
        between two batches."""
        withdrawals = self.verdicts.take() if self.verdicts is not None else []
        for anomaly in withdrawals:
            self.plan.withdraw(anomaly.camera_id, anomaly.kind, anomaly.track_id)
        if withdrawals:
            await self._until_sent(lambda: self._publish(withdrawals))
            self.metrics.records_out(self.topics.anomalies.name).inc(len(withdrawals))

    async def process(self, records: list[ConsumerRecord]) -> None:
        """Decode, analyse and publish ``records``, then commit their offsets (those of owned partitions).

        A frame an analytic fails on is dead-lettered with the analytic's kind and the reason,
        and its offset is committed like the others': a restarted detector does not replay it.
        """
        for record in records:
            self.metrics.records_in(record.topic).inc()
        items, bad = await asyncio.to_thread(decode_records, self.topics.frames, records)
        for item in items:
            self.metrics.stage_seconds("decode", item.frame.camera_id).observe(item.decode_s)
        for record, reason in bad:
            self.metrics.errors("malformed_frame").inc()
            await self._until_sent(lambda: self._dead.send(record, reason))
        self.check_zones(items)
        anomalies, owed = [], []
        for batch in rounds(items):
            started = time.perf_counter()
            failures: list[Failure] = []
            detections = await asyncio.to_thread(self.analyser.analyse, batch, failures)
            self.metrics.stage_seconds("analytics").observe(time.perf_counter() - started)
            failed = {id(batch[f.index]) for f in failures}
            for failure in failures:
                await self._dead_letter(batch[failure.index], failure)
            for item in batch:
                if id(item) not in failed:
                    self.ownership.seen(item.frame.camera_id, TopicPartition(item.record.topic, item.record.partition),
                                        item.frame.pts)
            for d in detections:
                anomalies.append(to_anomaly(batch[d.index], d))
                if d.check is not None and self.verdicts is not None:
                    owed.append((anomalies[-1], batch[d.index].image, d.check))
        await self._until_sent(lambda: self._publish(anomalies))
        for anomaly, image, check in owed:  # published: the verdict may now withdraw it
            self.verdicts.submit(anomaly, image, check)
        self.metrics.records_out(self.topics.anomalies.name).inc(len(anomalies))
        now = time.time_ns()
        for item in items:
            self.metrics.end_to_end_seconds.observe(max(0.0, (now - item.frame.capture_ns) / 1e9))
        self.frames_done += len(items)
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._uncommitted[tp] = max(self._uncommitted.get(tp, 0), record.offset + 1)
        await self.commit()
        self._warming.set(len(self.ownership.warming()))

    async def _publish(self, anomalies: list[Any]) -> None:
        """Send ``anomalies`` and return once the broker acknowledged every one."""
        topic = self.topics.anomalies
        sends = [await self._producer.send(topic.name, topic.encode(a), key=topic.key(a.camera_id)) for a in anomalies]
        for future in sends:
            await future

    async def _until_sent(self, send: Callable[[], Awaitable[None]]) -> None:
        """Run ``send`` until the broker acknowledges, retrying with capped back-off while it is away.

        The analytics have already seen the frames: only the publishing is retried, never the
        analysis (which would advance the cameras' state twice). A record sent twice is harmless:
        the correlator applies each anomaly id once. Meanwhile ``/healthz`` says ``degraded``.
        """
        delays = retry_delays(self.settings.kafka)
        while True:
            try:
                await send()
                if self._publish_error:
                    log.info("publishing again after: %s", self._publish_error)
                self._publish_error = ""
                return
            except KafkaError as exc:
                if not retriable(exc) and not isinstance(exc, KafkaTimeoutError):
                    raise
                if not self._publish_error:
                    log.warning("the broker does not take the detector's records (%s): retrying",
                                describe_broker_error(exc))
                self._publish_error = describe_broker_error(exc)
                self.metrics.errors("publish").inc()
                await asyncio.sleep(next(delays))

    def degraded(self) -> dict[str, Any]:
        """Publishing that fails now (the broker does not acknowledge anomalies or dead letters)."""
        problems: dict[str, Any] = {"publishing": self._publish_error} if self._publish_error else {}
        asked = [r.reason for r in self.refusals if r.asked]
        if asked:  # the cameras file asks for analytics their authorisations do not justify
            problems["refused"] = asked
        return problems

    async def _dead_letter(self, item: Any, failure: Failure) -> None:
        """Send ``item``'s frame record to the dead-letter topic with ``failure``'s kind and reason; count it
        in ``vigie_errors{kind="analytic_<kind>"}`` (``kind="preprocess"`` for the conversion stage)."""
        analytic = failure.stage == "analytic"
        self.metrics.errors(f"analytic_{failure.kind}" if analytic else failure.kind).inc()
        log.error("camera %s: %s (frame #%d, %s[%d]@%d): frame dead-lettered%s", failure.camera_id, failure.reason,
                  item.frame.seq, item.record.topic, item.record.partition, item.record.offset,
                  f", the camera's {failure.kind} state starts again cold" if analytic else "",
                  extra={"camera": failure.camera_id})
        reason = f"{failure.reason} (frame {item.frame.camera_id}#{item.frame.seq})"
        await self._until_sent(lambda: self._dead.send(item.record, reason))
        if analytic:
            self.ownership.reset(failure.camera_id)

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commit the finished offsets of ``partitions`` (default: all) that the consumer still owns.

        Offsets of partitions it no longer owns are dropped, never committed: their new owner
        replays them. A commit the group refuses because it has rebalanced meanwhile
        (``CommitFailedError``, ``IllegalStateError``), or that fails because the broker is away, is
        logged and counted in ``vigie_errors{kind="commit_failed"}``; it is not fatal (the records are
        replayed: at least once).
        """
        owned = set(self._consumer.assignment()) & self.ownership.partitions
        offsets = {tp: o for tp, o in self._uncommitted.items() if (partitions is None or tp in partitions)}
        for tp in [tp for tp in offsets if tp not in owned]:
            del offsets[tp], self._uncommitted[tp]
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:  # a rebalance, or the broker away
            self.commits_failed += 1
            self.metrics.errors("commit_failed").inc()
            log.warning("offsets %s not committed (%s): their next owner replays them",
                        {f"{tp.topic}[{tp.partition}]": o for tp, o in offsets.items()}, exc)
        for tp in offsets:
            self._uncommitted.pop(tp, None)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Start of a rebalance: finish the batch in progress, commit what is finished, give the partitions up."""
        async with self._busy:
            if self.ownership is None:
                return
            await self.commit(set(revoked))
            self.ownership.revoked(revoked)
            if revoked:
                log.info("partitions %s revoked", sorted(tp.partition for tp in revoked))

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """End of a rebalance: own ``assigned``; the cameras of partitions not handed back are forgotten."""
        async with self._busy:
            if self.ownership is None:
                return
            lost = self.ownership.assigned(assigned)
            for camera_id in lost:
                self.plan.forget(camera_id)
            self._rebalances.inc()
            self._owned.set(len(assigned))
            self._warming.set(len(self.ownership.warming()))
            log.info("partitions %s assigned%s", sorted(tp.partition for tp in assigned),
                     f"; cameras {', '.join(lost)} moved to another detector" if lost else "")

    def check_zones(self, items: list[Any]) -> None:
        """Warn once per camera, kind and zone of zones lying entirely outside the camera's frames.

        Checked when a camera's frame size (``item.frame.width``/``height``, pixels) is
        first seen or changes; such a zone never matches, which is worth a log line but
        does not stop the detector.
        """
        for item in items:
            camera_id, size = item.frame.camera_id, (item.frame.width, item.frame.height)
            if self._frame_sizes.get(camera_id) == size or min(size) <= 0:
                continue
            self._frame_sizes[camera_id] = size
            for kind, zone in self.plan.zones_outside(camera_id, size):
                if (camera_id, kind, zone) not in self._zones_warned:
                    self._zones_warned.add((camera_id, kind, zone))
                    log.warning("camera %s: %s zone %r lies entirely outside its %dx%d frames: it never matches "
                                "(zones are in pixels of the published frames)", camera_id, kind, zone, *size,
                                extra={"camera": camera_id})

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def health(self) -> dict[str, Any]:
        """Device, analytics, frames analysed, the run id of the track ids, commits refused by a rebalance,
        the object-class verdicts made after publishing (waiting, made, withdrawn; None when the analytics wait
        for the stage), and :meth:`Ownership.health`: partitions owned and each camera's warm-up (``warming``/``warm``)."""
        kinds = self.plan.kinds if self.plan else []
        owned = self.ownership.health() if self.ownership else {"partitions": [], "rebalances": 0, "cameras": {}}
        refused = {f"{r.camera_id}.{r.kind}": r.reason for r in self.refusals}
        verdicts = self.verdicts
        later = {"waiting": verdicts.waiting, "made": verdicts.checked, "withdrawn": verdicts.withdrawn} if verdicts else None
        return {"device": str(self.device), "analytics": kinds, "refused": refused, "frames": self.frames_done, "run": RUN_ID,
                "commits_failed": self.commits_failed, "object_verdicts": later, **owned}
