"""The grabber service: camera streams in, privacy-masked JPEG frames out to Kafka.

Stages, in order (:meth:`GrabberService.run`), one pipeline per camera:

1. open the source (file, RTSP, HTTP or synthetic) and decode it with PyAV in a thread;
2. sample to the camera's fps by PTS and resize to its analysis width;
3. black out its privacy masks, so that no unmasked pixel ever leaves the process;
4. encode JPEG (libjpeg-turbo through simplejpeg);
5. publish a ``Frame`` to ``frames``, keyed by camera id, with the capture time.

Each camera runs in its own task: a camera that fails (missing file, unreachable
RTSP server, corrupt stream) is reported in ``/healthz`` and the metrics, and never
stops the others. Live sources reconnect with capped exponential back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from pydantic import Field
from prometheus_client import Counter, Gauge

from vigie.contracts.v1 import Frame
from vigie.core.kafka import make_producer
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.cameras import CameraConfig, load_cameras
from vigie.grabber.errors import SourceError
from vigie.grabber.frames import CameraPipeline, CapturedFrame

log = logging.getLogger(__name__)

#: Counters of :class:`~vigie.grabber.frames.PipelineStats` exported as ``vigie_grabber_frames{camera,stage}``.
STAGES = ("decoded", "sampled", "corrupt", "skipped_before_keyframe", "dropped", "degenerate", "reencoded",
          "oversize_dropped", "errors", "reconnects", "resolution_changes")


class GrabberSettings(StrictModel):
    """Grabber service settings."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cameras_file: str = Field(description="Cameras YAML (see `vigie validate`).")
    as_fast_as_possible: bool = Field(False, description="Files: ignore real-time pacing (replays, benchmarks).")
    http_host: str = Field("127.0.0.1", description="Address of /healthz and /metrics.")
    http_port: int = Field(8091, ge=0, le=65535, description="Port of /healthz and /metrics.")


@dataclass(slots=True)
class CameraStatus:
    """What ``/healthz`` says of one camera: ``state`` is starting, streaming, reconnecting, ended or failed.

    ``error``: why it failed, or ended without a frame (also its ``last_error``); while
    reconnecting, ``/healthz`` shows the error it retries after. Empty once it streams.
    """

    state: str = "starting"
    error: str = ""
    pipeline: CameraPipeline | None = None
    last_capture_ns: int = 0
    published: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)


class GrabberService(Service):
    """Runs one pipeline per camera and publishes their frames."""

    name = "grabber"

    def __init__(self, settings: GrabberSettings, registry=None) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.camera_frames = Counter("vigie_grabber_frames", "Frames per camera and stage (skipped_before_keyframe: "
                                     "packets; resolution_changes: changes of the source size)",
                                     ["camera", "stage"], registry=self.registry)
        self.camera_up = Gauge("vigie_grabber_camera_up", "1 while the camera streams", ["camera"],
                               registry=self.registry)
        self.cameras: list[CameraConfig] = []
        self.status: dict[str, CameraStatus] = {}
        self._producer = None
        self._pending: set[asyncio.Future] = set()

    async def prepare(self) -> None:
        """Read the cameras file (once). Raises ConfigError naming file, line and field."""
        if not self.cameras:
            self.cameras = (await asyncio.to_thread(load_cameras, self.settings.cameras_file)).cameras
            self.status = {c.id: CameraStatus() for c in self.cameras}

    async def start(self) -> None:
        if self._producer is not None:
            return
        await self.prepare()
        self._producer = make_producer(self.settings.kafka, linger_ms=5)
        await self._producer.start()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._camera(c), name=f"camera.{c.id}") for c in self.cameras]
        while not stop.is_set():
            self._sync_metrics()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        for status in self.status.values():
            if status.pipeline is not None:
                status.pipeline.close()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._sync_metrics()
        await self._flush()

    def _sync_metrics(self) -> None:
        """Per-camera gauges and counters from the pipelines' statistics (decode threads keep those)."""
        for camera_id, status in self.status.items():
            pipeline = status.pipeline
            if pipeline is None:
                continue
            stats = pipeline.stats
            self.camera_up.labels(camera_id).set(1 if status.state == "streaming" and stats.failures == 0 else 0)
            for stage in STAGES:
                value, seen = getattr(stats, stage), status.counted.get(stage, 0)
                if value > seen:
                    self.camera_frames.labels(camera_id, stage).inc(value - seen)
                    if stage == "reconnects":
                        self.metrics.errors("source").inc(value - seen)
                    status.counted[stage] = value

    async def _camera(self, camera: CameraConfig) -> None:
        status = self.status[camera.id]
        self.camera_up.labels(camera.id).set(0)
        pipeline = CameraPipeline(camera, self.settings.as_fast_as_possible)
        status.pipeline = pipeline
        try:
            async for frame in pipeline.frames():
                if status.state != "streaming":
                    status.state, status.error = "streaming", ""
                    self.camera_up.labels(camera.id).set(1)
                try:
                    await self._publish(camera, frame)
                except MessageSizeTooLargeError as exc:  # the pipeline keeps a margin: not expected
                    pipeline.stats.oversize_dropped += 1
                    log.error("camera %s: frame %d dropped: %s", camera.id, frame.seq, exc, extra={"camera": camera.id})
                    continue
                status.published += 1
                status.last_capture_ns = frame.capture_ns
            status.state = "ended"
            stats = pipeline.stats
            if status.published == 0 and stats.corrupt > 0:
                status.error = stats.last_error = (
                    f"camera {camera.id}: stream ended without a single frame: every frame was corrupt "
                    f"({stats.corrupt} corrupt)")
                log.warning("camera %s: stream ended without a single frame: every frame was corrupt",
                            camera.id, extra={"camera": camera.id, **stats.snapshot()})
            else:
                log.info("camera %s: stream ended", camera.id, extra={"camera": camera.id, **stats.snapshot()})
        except SourceError as exc:
            status.state, status.error = "failed", str(exc)
            pipeline.stats.last_error = status.error
            self.metrics.errors("source").inc()
            log.error("%s", exc, extra={"camera": camera.id})
        except Exception as exc:  # noqa: BLE001 - one camera's bug must not stop the others
            status.state, status.error = "failed", f"{type(exc).__name__}: {exc}"
            pipeline.stats.last_error = status.error
            self.metrics.errors("camera_crash").inc()
            log.exception("camera %s crashed", camera.id)
        finally:
            self.camera_up.labels(camera.id).set(0)
            status.stats = pipeline.stats.snapshot()

    async def _publish(self, camera: CameraConfig, frame: CapturedFrame) -> None:
        topic = self.topics.frames
        message = Frame(
            camera_id=frame.camera_id, seq=frame.seq, capture_ns=frame.capture_ns, pts=frame.pts,
            width=frame.width, height=frame.height, encoding=Frame.ENCODING_JPEG, data=frame.jpeg,
            privacy_masks=frame.masks_applied, fps=camera.fps,
        )
        # send() returns once the record is queued; the broker's acknowledgement is awaited in the
        # background so that one slow acknowledgement does not hold the camera back.
        future = await self._producer.send(topic.name, topic.encode(message), key=topic.key(camera.id))
        self._pending.add(future)
        future.add_done_callback(self._acked)
        self.camera_frames.labels(camera.id, "published").inc()
        self.metrics.records_out(topic.name).inc()
        self.metrics.end_to_end_seconds.observe(max(0.0, (time.time_ns() - frame.capture_ns) / 1e9))

    def _acked(self, future: asyncio.Future) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.metrics.errors("publish").inc()
            log.error("frame not acknowledged by the broker: %s", future.exception())

    async def _flush(self) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=15.0)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._flush()
            await self._producer.stop()
            self._producer = None

    def health(self) -> dict[str, Any]:
        cameras = {}
        for camera_id, status in self.status.items():
            stats = status.pipeline.stats.snapshot() if status.pipeline is not None else status.stats
            state = status.state
            error = status.error
            if state in ("starting", "streaming") and stats.get("failures", 0) > 0 and not stats.get("connected"):
                state, error = "reconnecting", str(stats.get("last_error", ""))  # what it is retrying after
            cameras[camera_id] = {"state": state, "published": status.published,
                                  "last_capture_ns": status.last_capture_ns, **stats, "error": error}
        return {"cameras": cameras}
