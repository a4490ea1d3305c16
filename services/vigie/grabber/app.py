"""The grabber service: camera streams in, privacy-masked JPEG frames out to Kafka.

Stages, in order (:meth:`GrabberService.run`), one pipeline per camera:

1. open the source (file, RTSP, HTTP or synthetic) and decode it with PyAV in a thread;
2. sample to the camera's fps by PTS and resize to its analysis width;
3. black out its privacy masks, so that no unmasked pixel ever leaves the process;
4. encode JPEG (libjpeg-turbo through simplejpeg);
5. queue a ``Frame`` in the camera's bounded outbox, from which it is published to
   ``frames``, keyed by camera id, with the capture time (:mod:`vigie.grabber.publisher`).

Each camera runs in its own task: a camera that fails (missing file, unreachable
RTSP server, corrupt stream) is reported in ``/healthz`` and the metrics, and never
stops the others. Live sources reconnect with capped exponential back-off
("reconnecting"), or slowly when they refuse the credentials ("unauthorised").
Passwords in camera URLs never appear in ``/healthz``, the logs or the metrics.

While the broker is away the cameras go on: each outbox keeps the newest
``buffer_frames`` frames (the oldest dropped first, counted in
``vigie_grabber_frames_total{stage="buffer_dropped"}``), the grabber reports
``degraded`` with ``publishing: reconnecting``, and publishing resumes, oldest frame
first, as soon as the broker answers again. A camera that fails or reconnects also makes
the grabber ``degraded``, named under ``degraded.cameras`` with its error.

Each camera's state and error also go to the compacted ``camera-status`` topic, on change and every
``heartbeat_s`` (:mod:`vigie.grabber.status`), for the operators' console.

The cameras come from a file (``--cameras``: this grabber runs them all) or from the compacted ``cameras``
topic (``--cameras-topic``): replicas form the consumer group ``vigie-grabber`` and each runs the cameras of
the partitions the broker assigns it (:mod:`vigie.grabber.assignment`), started, held, resumed, restarted
and stopped one by one (:meth:`GrabberService.start_camera`, :meth:`~GrabberService.hold_camera`,
:meth:`~GrabberService.stop_cameras`). Every frame record names its grabber (header ``grabber``: ``host:pid``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from pydantic import Field, model_validator
from prometheus_client import Counter, Gauge

from vigie.contracts.v1 import AuditEntry
from vigie.core.authorisations import Authorisation, Clock, longest_keep_problem, utc_now
from vigie.core.kafka import check_image_retention, longest_keep_ms, require_topics
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.cameras import CameraConfig, CamerasFile, load_cameras
from vigie.core.secrets import redact
from vigie.grabber.errors import SourceError
from vigie.grabber.frames import CameraPipeline, CapturedFrame
from vigie.grabber.publisher import FramePublisher, Outbox, frame_record
from vigie.grabber.status import StatusBeacon, grabber_identity
from vigie.grabber.summaries import authorisation_summary, config_summary

log = logging.getLogger(__name__)

#: Counters of :class:`~vigie.grabber.frames.PipelineStats` exported as ``vigie_grabber_frames{camera,stage}``.
STAGES = ("decoded", "sampled", "corrupt", "skipped_before_keyframe", "dropped", "degenerate", "reencoded",
          "oversize_dropped", "errors", "reconnects", "resolution_changes")


class GrabberSettings(StrictModel):
    """Grabber service settings."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cameras_file: str | None = Field(None, description="Cameras YAML (see `vigie validate`): run all its cameras.")
    cameras_topic: bool = Field(
        False, description="Run the cameras the broker assigns this replica from the compacted cameras topic "
        "(consumer group vigie-grabber; `vigie cameras apply` writes the topic) instead of a file.")
    apply_cameras: str | None = Field(
        None, description="--cameras-topic: at start, before joining the group, write this cameras file to the "
        "topic as `vigie cameras apply --prune` does (an invalid file stops the grabber, exit 2, nothing written).")
    session_timeout_s: float = Field(
        6.0, ge=6, le=300,
        description="--cameras-topic: seconds without a heartbeat before the group hands a replica's cameras to "
        "the others (the broker's group.min.session.timeout.ms, 6 s by default, is the floor); heartbeats go "
        "every session_timeout_s / 6.")
    as_fast_as_possible: bool = Field(False, description="Files: ignore real-time pacing (replays, benchmarks).")
    http_host: str = Field("127.0.0.1", description="Address of /healthz and /metrics.")
    http_port: int = Field(8091, ge=0, le=65535, description="Port of /healthz and /metrics.")
    buffer_frames: int = Field(
        50, ge=1, le=10000,
        description="Frames kept per camera while the broker does not take them (10 s at 5 fps); when full, "
        "the oldest is dropped (counted as buffer_dropped).")
    heartbeat_s: float = Field(
        10.0, ge=0.1, le=300,
        description="Seconds between two statuses of an unchanged camera on the camera-status topic (a change "
        "is published at once); the station calls a camera stale after three heartbeats without one.")

    @model_validator(mode="after")
    def _one_source_of_cameras(self) -> "GrabberSettings":
        if (self.cameras_file is None) == (not self.cameras_topic):
            raise ValueError("give either a cameras file or the cameras topic, not both, not neither")
        if self.apply_cameras and not self.cameras_topic:
            raise ValueError("apply_cameras writes the cameras topic: only with cameras_topic")
        return self


@dataclass(slots=True)
class CameraStatus:
    """What ``/healthz`` says of one camera: ``state`` is starting, streaming, reconnecting,
    unauthorised (401/403: credentials refused, retried every ``reconnect.unauthorised_s``),
    ended, failed, or refused (no prefectoral authorisation in force: never opened, or stopped
    the day its authorisation expired).

    ``error``: why it failed, or ended without a frame (also its ``last_error``); while
    reconnecting or unauthorised, ``/healthz`` shows the error it retries after. Empty once
    it streams. Passwords of URLs are redacted.
    ``captured``: frames the pipeline gave (masked, encoded) and the camera queued for publishing.
    """

    state: str = "starting"
    error: str = ""
    pipeline: CameraPipeline | None = None
    last_capture_ns: int = 0
    captured: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    #: Streaming as last told to the register (camera started / stopped entries).
    audited_up: bool = False
    #: Why the camera may not film (its authorisation), "" while it may.
    refused: str = ""
    #: Its partition is being handed out again (a rebalance): its frames are dropped, nothing published.
    held: bool = False


@dataclass(slots=True)
class _Running:
    """The tasks of one camera: its pipeline, and the publishing of its outbox until ``closing`` is set."""

    camera: CameraConfig
    task: asyncio.Task
    drain: asyncio.Task
    closing: asyncio.Event


class GrabberService(Service):
    """Runs one pipeline per camera and publishes their frames."""

    name = "grabber"

    def __init__(self, settings: GrabberSettings, registry=None, clock: Clock = utc_now) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        #: The time authorisations are checked against (injectable: tests advance it).
        self.clock = clock
        self.camera_frames = Counter("vigie_grabber_frames", "Frames per camera and stage (skipped_before_keyframe: "
                                     "packets; resolution_changes: changes of the source size)",
                                     ["camera", "stage"], registry=self.registry)
        self.camera_up = Gauge("vigie_grabber_camera_up", "1 while the camera streams", ["camera"],
                               registry=self.registry)
        self.camera_refusals = Counter(
            "vigie_grabber_source_failures", "Failed attempts of live sources by reason: unauthorised "
            "(401/403), stalled (no frame within timeout_s)", ["camera", "reason"], registry=self.registry)
        self.buffered = Gauge("vigie_grabber_buffered_frames", "Frames waiting in the camera's outbox for the broker",
                              ["camera"], registry=self.registry)
        self.cameras: list[CameraConfig] = []
        self.cameras_file: CamerasFile | None = None
        self.status: dict[str, CameraStatus] = {}
        self.outboxes: dict[str, Outbox] = {}
        #: Camera id -> the authorisation it films under (None: it names none).
        self.authorisations: dict[str, Authorisation | None] = {}
        self.running: dict[str, _Running] = {}
        self._configs_audited = False
        self._audited: set[str] = set()  # summaries of the authorisations recorded in the register
        self._frames_keep_ms = -1  # how long the frames topic may keep a record (--cameras-topic), ms
        self._applied = False  # --apply-cameras done
        self.publisher = FramePublisher(settings.kafka, self.topics.frames.name, on_published=self._published,
                                        on_failed=self._not_published,
                                        headers=[("grabber", grabber_identity().encode())])
        self.beacon = StatusBeacon(settings.kafka, self.topics.camera_status, settings.heartbeat_s,
                                   on_failed=lambda _: self.metrics.errors("status_publish").inc())
        self.assignment = None
        if settings.cameras_topic:
            from vigie.grabber.assignment import CameraAssignment

            self.assignment = CameraAssignment(self, settings.session_timeout_s)

    async def prepare(self) -> None:
        """Read the cameras file (once). Raises ConfigError naming file, line and field."""
        if not self.cameras and self.settings.cameras_file:
            self.cameras_file = await asyncio.to_thread(load_cameras, self.settings.cameras_file)
            self.cameras = self.cameras_file.cameras

    async def start(self) -> None:
        await self.prepare()
        topics = [self.topics.frames, self.topics.audit, self.topics.camera_status]
        if self.assignment is not None:
            await require_topics(self.settings.kafka, [*topics, self.topics.cameras, self.topics.deadletter])
            self._frames_keep_ms = await longest_keep_ms(self.settings.kafka, self.topics.frames)
        else:
            await require_topics(self.settings.kafka, topics)
            await check_image_retention(self.settings.kafka, self.topics.frames, self.cameras_file.authorisations)
        await self.publisher.start()
        if self.assignment is not None:
            if self.settings.apply_cameras and not self._applied:
                from vigie.grabber.cameras_cli import apply_file

                for line in await apply_file(self.settings.kafka, self.settings.apply_cameras):
                    log.info("%s", line)
                self._applied = True
            await self.assignment.start()
            return
        if not self._configs_audited:  # once, however often a start is retried
            self._configs_audited = True
            for authorisation in self.cameras_file.authorisations:
                self.audit_event(AuditEntry.KIND_AUTHORISATION, detail=authorisation_summary(
                    authorisation, [c.id for c in self.cameras if c.authorisation == authorisation.id]))
            for camera in self.cameras:
                self.audit_event(AuditEntry.KIND_CAMERA_CONFIG, camera_id=camera.id, detail=config_summary(camera))
        # the file's cameras start here, last, so that /healthz lists every one of them from the moment the
        # service reports running (the cameras topic's come and go with the assignment)
        for camera in self.cameras:
            if camera.id not in self.running:
                self.start_camera(camera, self.cameras_file.authorisation_of(camera.id), audit=False)

    async def run(self, stop: asyncio.Event) -> None:
        feed = asyncio.create_task(self.assignment.run(stop), name="cameras-topic") if self.assignment else None
        tick_s = min(1.0, self.settings.heartbeat_s / 2)  # a heartbeat goes out within 1.5 of them at worst
        while not stop.is_set():
            self._check_authorisations()
            self._sync_metrics()
            self._report_status()
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except asyncio.TimeoutError:
                pass
        if feed is not None:
            await feed
        await self.stop_cameras(list(self.running), forget=False)
        if self.assignment is not None:  # leave the group now: the others take the cameras at once
            await self.assignment.close()
        self._sync_metrics()

    def start_camera(self, camera: CameraConfig, authorisation: Authorisation | None, *, audit: bool = True) -> None:
        """Start running ``camera`` (its pipeline and the publishing of its frames), filming under
        ``authorisation``; with ``audit``, its configuration (and a new authorisation) go to the register."""
        self.status[camera.id] = CameraStatus()
        self.outboxes[camera.id] = Outbox(self.settings.buffer_frames)
        self.authorisations[camera.id] = authorisation
        if audit:
            if authorisation is not None:
                summary = authorisation_summary(authorisation, [camera.id])
                if summary not in self._audited:
                    self._audited.add(summary)
                    self.audit_event(AuditEntry.KIND_AUTHORISATION, detail=summary)
            self.audit_event(AuditEntry.KIND_CAMERA_CONFIG, camera_id=camera.id, detail=config_summary(camera))
        closing = asyncio.Event()
        self.running[camera.id] = _Running(
            camera, asyncio.create_task(self._camera(camera), name=f"camera.{camera.id}"),
            asyncio.create_task(self.publisher.drain(camera.id, self.outboxes[camera.id], closing),
                                name=f"publish.{camera.id}"), closing)

    async def stop_cameras(self, camera_ids: list[str], *, forget: bool = True, timeout_s: float = 10.0) -> None:
        """Stop ``camera_ids`` cleanly: close their pipelines, publish what they queued and wait for the broker's
        acknowledgements (``timeout_s`` for each stage at most); with ``forget``, drop their state, metrics and
        statuses (another grabber runs them now, or they were removed)."""
        running = [self.running.pop(c) for c in camera_ids if c in self.running]
        for r in running:
            if (pipeline := self.status[r.camera.id].pipeline) is not None:
                pipeline.close()
        for stage in ("task", "drain"):  # the cameras first, then what they queued
            group = [getattr(r, stage) for r in running]
            if stage == "drain":
                for r in running:
                    r.closing.set()
            if group:
                _, pending = await asyncio.wait(group, timeout=timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*group, return_exceptions=True)
        left = {r.camera.id: len(self.outboxes[r.camera.id]) for r in running if len(self.outboxes[r.camera.id])}
        if left:
            log.warning("stopping with %d frame(s) not published (the broker did not take them): %s",
                        sum(left.values()), left)
        await self.publisher.flush()
        if forget:
            self._sync_metrics()
            for r in running:
                camera_id = r.camera.id
                self.status.pop(camera_id, None)
                self.outboxes.pop(camera_id, None)
                self.authorisations.pop(camera_id, None)
                self.beacon.forget(camera_id)
                # every series of the camera goes: a counter left constant here would read as a camera without
                # frames (VigieCameraNoFrames) while another replica runs it, or after it was removed
                for metric in (self.camera_up, self.buffered, self.camera_frames, self.camera_refusals):
                    metric.remove_by_labels({"camera": camera_id})

    async def hold_camera(self, camera_id: str, timeout_s: float = 10.0) -> None:
        """Stop publishing ``camera_id`` while its partition is handed out again: frames from now on are dropped,
        those queued are published and acknowledged first (``timeout_s`` at most). Its pipeline keeps running."""
        status = self.status.get(camera_id)
        if status is None or camera_id not in self.running:
            return
        status.held = True
        self.beacon.forget(camera_id)
        outbox = self.outboxes[camera_id]
        deadline = time.monotonic() + timeout_s
        while (len(outbox) or outbox.in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def resume_camera(self, camera_id: str) -> None:
        """Publish ``camera_id``'s frames again after :meth:`hold_camera` (its partition came back)."""
        if (status := self.status.get(camera_id)) is not None:
            status.held = False

    def _sync_metrics(self) -> None:
        """Per-camera gauges and counters from the pipelines' statistics (decode threads keep those)."""
        for camera_id, status in self.status.items():
            self.buffered.labels(camera_id).set(len(self.outboxes[camera_id]))
            pipeline = status.pipeline
            if pipeline is None:
                continue
            stats = pipeline.stats
            up = status.state == "streaming" and stats.failures == 0
            self.camera_up.labels(camera_id).set(1 if up else 0)
            self._audit_streaming(camera_id, status, up)
            for stage in STAGES:
                value, seen = getattr(stats, stage), status.counted.get(stage, 0)
                if value > seen:
                    self.camera_frames.labels(camera_id, stage).inc(value - seen)
                    if stage == "reconnects":
                        self.metrics.errors("source").inc(value - seen)
                    status.counted[stage] = value
            for stage, reason in (("auth_failures", "unauthorised"), ("stalls", "stalled")):
                value, seen = getattr(stats, stage), status.counted.get(stage, 0)
                if value > seen:
                    self.camera_refusals.labels(camera_id, reason).inc(value - seen)
                    self.metrics.errors(reason).inc(value - seen)
                    status.counted[stage] = value

    def _report_status(self) -> None:
        """Hand every camera's state and error (as ``/healthz`` shows them) to the camera-status beacon."""
        for camera_id, status in self.status.items():
            if status.held:  # its next owner reports it
                continue
            state, error = self._camera_state(status, self._camera_stats(status))
            self.beacon.observe(camera_id, state, error, status.last_capture_ns)
        self.beacon.tick()

    def _audit_streaming(self, camera_id: str, status: CameraStatus, up: bool) -> None:
        """Tell the register when a camera starts or stops streaming (checked once a second)."""
        if up == status.audited_up:
            return
        status.audited_up = up
        if up:
            self.audit_event(AuditEntry.KIND_CAMERA_STARTED, camera_id=camera_id, detail="streaming")
        else:
            state, error = self._camera_state(status, self._camera_stats(status))
            self.audit_event(AuditEntry.KIND_CAMERA_STOPPED, camera_id=camera_id,
                             detail=f"{state}: {error}" if error else state)

    def authorisation_problem(self, camera_id: str) -> str:
        """Why camera ``camera_id`` may not film now (:attr:`clock`), or "" when its authorisation is in force
        (and, for a camera of the cameras topic, allows the frames topic's retention)."""
        authorisation = self.authorisations.get(camera_id)
        if authorisation is None:
            return f"camera {camera_id} has no authorisation: it is not opened (name its prefectoral order)"
        problem = authorisation.problem(self.clock())
        if not problem and self._frames_keep_ms >= 0:
            problem = longest_keep_problem(f"topic {self.topics.frames.name}", self._frames_keep_ms, [authorisation])
        return f"camera {camera_id}: {problem}" if problem else ""

    def _refuse(self, camera_id: str, reason: str) -> None:
        """Mark a camera refused (not opened, or closed now), log and record it once."""
        status = self.status[camera_id]
        if status.refused:
            return
        status.refused, status.state, status.error = reason, "refused", reason
        if status.pipeline is not None:
            status.pipeline.close()
        log.error("%s", reason, extra={"camera": camera_id})
        if not status.audited_up:  # a streaming camera's stop is recorded by _audit_streaming, with the reason
            self.audit_event(AuditEntry.KIND_CAMERA_REFUSED, camera_id=camera_id, detail=reason)

    def _check_authorisations(self) -> None:
        """Stop the cameras whose authorisation is no longer in force (checked once a second)."""
        for camera_id, status in self.status.items():
            if not status.refused and (problem := self.authorisation_problem(camera_id)):
                self._refuse(camera_id, problem)

    async def _camera(self, camera: CameraConfig) -> None:
        status = self.status[camera.id]
        self.camera_up.labels(camera.id).set(0)
        if problem := self.authorisation_problem(camera.id):
            self._refuse(camera.id, problem)
            return
        pipeline = CameraPipeline(camera, self.settings.as_fast_as_possible)
        status.pipeline = pipeline
        try:
            async for frame in pipeline.frames():
                if status.refused:  # its authorisation ended while the frame was decoded: never sent
                    break
                if status.state != "streaming":
                    status.state, status.error = "streaming", ""
                    self.camera_up.labels(camera.id).set(1)
                self._enqueue(camera, frame)
                status.captured += 1
                status.last_capture_ns = frame.capture_ns
            status.state = "refused" if status.refused else "ended"
            stats = pipeline.stats
            if status.refused:
                status.error = status.refused
            elif status.captured == 0 and stats.corrupt > 0:
                status.error = stats.last_error = (
                    f"camera {camera.id}: stream ended without a single frame: every frame was corrupt "
                    f"({stats.corrupt} corrupt)")
                log.warning("camera %s: stream ended without a single frame: every frame was corrupt",
                            camera.id, extra={"camera": camera.id, **stats.snapshot()})
            else:
                log.info("camera %s: stream ended", camera.id, extra={"camera": camera.id, **stats.snapshot()})
        except SourceError as exc:
            status.state, status.error = "failed", redact(str(exc))
            pipeline.stats.last_error = status.error
            self.metrics.errors("source").inc()
            log.error("%s", exc, extra={"camera": camera.id})
        except Exception as exc:  # noqa: BLE001 - one camera's bug must not stop the others
            status.state, status.error = "failed", redact(f"{type(exc).__name__}: {exc}")
            pipeline.stats.last_error = status.error
            self.metrics.errors("camera_crash").inc()
            log.exception("camera %s crashed", camera.id)
        finally:
            self.camera_up.labels(camera.id).set(0)
            status.stats = pipeline.stats.snapshot()

    def _enqueue(self, camera: CameraConfig, frame: CapturedFrame) -> None:
        """Queue ``frame`` in its camera's outbox (never waits: a full outbox drops its oldest frame); a held
        camera's frame is dropped (counted as ``held_dropped``)."""
        if self.status[camera.id].held:
            self.camera_frames.labels(camera.id, "held_dropped").inc()
            return
        if self.outboxes[camera.id].put(frame_record(self.topics.frames, camera, frame)):
            self.camera_frames.labels(camera.id, "buffer_dropped").inc()

    def _published(self, camera_id: str, capture_ns: int) -> None:
        self.camera_frames.labels(camera_id, "published").inc()
        self.metrics.records_out(self.topics.frames.name).inc()
        self.metrics.end_to_end_seconds.observe(max(0.0, (time.time_ns() - capture_ns) / 1e9))

    def _not_published(self, camera_id: str, kind: str) -> None:
        self.camera_frames.labels(camera_id, kind).inc()
        self.metrics.errors("publish").inc()

    async def stop(self) -> None:
        if self.assignment is not None:
            await self.assignment.close()
        await self.beacon.close()
        await self.publisher.close()

    def _camera_state(self, status: CameraStatus, stats: dict[str, Any]) -> tuple[str, str]:
        """The state and error ``/healthz`` shows for a camera: a live source whose credentials are refused
        shows ``unauthorised``, one retrying after a failure (connected or not, no frame since) ``reconnecting``."""
        if status.held:
            return "held", "its partition is being handed out (a rebalance of the grabbers' group)"
        if status.state in ("starting", "streaming") and stats.get("unauthorised"):
            return "unauthorised", str(stats.get("last_error", ""))
        if status.state in ("starting", "streaming") and stats.get("failures", 0) > 0:
            return "reconnecting", str(stats.get("last_error", ""))  # what it is retrying after
        return status.state, status.error

    def _camera_stats(self, status: CameraStatus) -> dict[str, Any]:
        return status.pipeline.stats.snapshot() if status.pipeline is not None else status.stats

    def health(self) -> dict[str, Any]:
        cameras = {}
        for camera_id, status in self.status.items():
            stats = self._camera_stats(status)
            state, error = self._camera_state(status, stats)
            cameras[camera_id] = {"state": state, "captured": status.captured, "last_capture_ns": status.last_capture_ns,
                                  **stats, **self.outboxes[camera_id].snapshot(), "error": error}
        body = {"publishing": self.publisher.health(), "cameras": cameras}
        if self.assignment is not None:
            body["assignment"] = self.assignment.health()
        return body

    def degraded(self) -> dict[str, Any]:
        """Cameras that fail or reconnect (not those starting, streaming or at the end of their file),
        and publishing while frames do not get through to the broker."""
        problems: dict[str, Any] = {}
        failing = {}
        for camera_id, status in self.status.items():
            state, error = self._camera_state(status, self._camera_stats(status))
            if state not in ("starting", "streaming", "ended", "held"):
                failing[camera_id] = f"{state}: {error}" if error else state
        if failing:
            problems["cameras"] = failing
        if self.publisher.trouble:
            problems["publishing"] = self.publisher.health()
        if self.assignment is not None and self.assignment.invalid:
            problems["invalid_camera_records"] = self.assignment.invalid_reasons()
        return problems
