"""Camera health in the console: which cameras stream and which are blind, from the ``camera-status`` topic.

Each grabber publishes the status of its cameras to the compacted ``camera-status`` topic, keyed by
camera id, when a camera's state changes and every heartbeat (:mod:`vigie.grabber.status`). The station
reads it outside any consumer group, from the beginning (like its alerts), and keeps the latest status
per camera. A camera is **stale** when no status of it came for more than :data:`STALE_HEARTBEATS`
heartbeats (its grabber's own ``heartbeat_s``), judged both by the record's ``updated_ns`` (the grabber's
clock: hosts keep time by NTP) and by when the station received it: its grabber is gone, nobody watches
that camera, it is blind whatever its last state said.

Which cameras: the station does not know which cameras are routed to it (the correlator's routing), so it
shows every camera that reports a status; a station started with a cameras file (``--cameras``) shows
the cameras of that file only, those without any status yet as state ``unknown``, stale.

Route (:attr:`~vigie.station.auth.Access.VIEWER`: operators and supervisors of the station):

- ``GET /api/cameras``: ``{"cameras": [item, ...]}``, worst first (stale, then failed, unauthorised,
  refused, stalled, reconnecting, unknown, ended, starting, streaming; the oldest trouble first within a
  state). An item: ``{"cameraId", "state", "sinceNs", "error", "updatedNs", "lastCaptureNs", "stale"}``,
  times in ns since the Unix epoch (0: never), ``error`` redacted by the grabber (no password).

Server-sent events: ``event: camera`` with an item, whenever a camera's state, error, ``sinceNs`` or
staleness changes (not at every heartbeat), also when it turns stale; every camera again after a
``resync``. Metrics: ``vigie_station_cameras{state}``, the cameras shown per state, stale ones under
``state="stale"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from vigie.contracts.v1 import CameraStatus
from vigie.core.errors import MalformedMessage
from vigie.core.kafka import describe_broker_error, make_consumer, retriable
from vigie.core.metrics import ServiceMetrics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic
from vigie.station.auth import Access, StationAuth
from vigie.station.events import sse

log = logging.getLogger(__name__)

#: Heartbeats without a status after which a camera is stale (its grabber is gone).
STALE_HEARTBEATS = 3
#: Seconds between two checks for cameras turned stale while no status comes.
CHECK_S = 0.5
#: States from worst to best; a state not listed ranks with ``unknown``.
STATE_ORDER = ("failed", "unauthorised", "refused", "stalled", "reconnecting", "unknown", "ended", "starting",
               "streaming")
_RANK = {state: rank for rank, state in enumerate(STATE_ORDER)}
NS = 1_000_000_000


def _tally(items: list[dict[str, Any]]) -> dict[str, int]:
    """Items per state, stale ones under ``stale``."""
    counts: dict[str, int] = {}
    for item in items:
        state = "stale" if item["stale"] else item["state"]
        counts[state] = counts.get(state, 0) + 1
    return counts


class CamerasPage:
    """The latest status of each camera shown, the ``/api/cameras`` route and the ``camera`` events.

    Args:
        auth: the station's access rules.
        kafka: the cluster.
        topic: the ``camera-status`` topic.
        publish: queues one SSE text for every console (:meth:`vigie.station.events.EventHub.publish`).
        metrics: the station's service metrics (records in, decode errors); its registry gets the gauge.

    ``only``: the camera ids to show (a cameras file), None for every camera that reports.
    """

    def __init__(self, auth: StationAuth, kafka: KafkaSettings, topic: Topic[CameraStatus],
                 publish: Callable[[str], None], metrics: ServiceMetrics) -> None:
        self.auth = auth
        self.kafka = kafka
        self.topic = topic
        self.only: set[str] | None = None
        self._publish = publish
        self._metrics = metrics
        self._statuses: dict[str, CameraStatus] = {}
        self._received: dict[str, float] = {}  # camera id -> time.monotonic() of its last status
        self._shown: dict[str, tuple] = {}  # camera id -> what its last event said
        self._gauge = Gauge("vigie_station_cameras", "Cameras shown by the console per state (stale: no status "
                            "for 3 heartbeats, whatever the last said)", ["state"], registry=metrics.registry)
        self._gauge_states: set[str] = set()
        self._consumer = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start reading the topic from the beginning (no consumer group). Raises KafkaError when it cannot."""
        self._consumer = make_consumer(self.kafka, self.topic, group=None)
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow(), name="camera-status")

    async def stop(self) -> None:
        """Stop reading (safe to call twice)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    async def _follow(self) -> None:
        """Apply the statuses as they come and look for stale cameras every :data:`CHECK_S`; a broker away is
        waited out (aiokafka reconnects), and no error ends the loop: cameras then turn stale, as they should."""
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=int(CHECK_S * 1000))
            except KafkaError as exc:
                if not retriable(exc):
                    log.error("camera statuses not read: %s", describe_broker_error(exc))
                await asyncio.sleep(1.0)
                batches = {}
            except Exception:  # noqa: BLE001 - a bug here must not end the console's view of the cameras
                log.exception("camera statuses not read")
                await asyncio.sleep(1.0)
                batches = {}
            for records in batches.values():
                for record in records:
                    self.put(record)
            self.refresh()

    def put(self, record: ConsumerRecord) -> None:
        """Keep a record's status as its camera's latest (a tombstone forgets the camera)."""
        self._metrics.records_in(self.topic.name).inc()
        if record.value is None:
            camera_id = (record.key or b"").decode(errors="replace")
            self._statuses.pop(camera_id, None)
            self._received.pop(camera_id, None)
            return
        try:
            status = self.topic.decode(record.value)
        except MalformedMessage as exc:
            self._metrics.errors("decode").inc()
            log.warning("skipping camera status: %s", exc)
            return
        if self.only is not None and status.camera_id not in self.only:
            return
        known = self._statuses.get(status.camera_id)
        if known is None or status.updated_ns >= known.updated_ns:
            self._statuses[status.camera_id] = status
            self._received[status.camera_id] = time.monotonic()

    def item(self, camera_id: str, now_ns: int | None = None, now: float | None = None) -> dict[str, Any]:
        """The console's view of one camera (see the module's docstring)."""
        status = self._statuses.get(camera_id)
        if status is None:
            return {"cameraId": camera_id, "state": "unknown", "sinceNs": 0, "error": "", "updatedNs": 0,
                    "lastCaptureNs": 0, "stale": True}
        limit_s = STALE_HEARTBEATS * max(status.heartbeat_s, 0.1)
        wall_age_s = ((now_ns or time.time_ns()) - status.updated_ns) / NS
        received_age_s = (now or time.monotonic()) - self._received[camera_id]
        return {"cameraId": camera_id, "state": status.state, "sinceNs": status.since_ns, "error": status.error,
                "updatedNs": status.updated_ns, "lastCaptureNs": status.last_capture_ns,
                "stale": wall_age_s > limit_s or received_age_s > limit_s}

    def items(self) -> list[dict[str, Any]]:
        """Every camera shown, worst first."""
        now_ns, now = time.time_ns(), time.monotonic()
        ids = self.only if self.only is not None else self._statuses
        items = [self.item(camera_id, now_ns, now) for camera_id in ids]
        return sorted(items, key=lambda i: (not i["stale"], _RANK.get(i["state"], _RANK["unknown"]),
                                            i["sinceNs"], i["cameraId"]))

    def refresh(self) -> None:
        """Publish a ``camera`` event for each camera whose state, error, since or staleness changed; set the
        gauge. Never raises."""
        items = self.items()
        for item in items:
            key = (item["state"], item["error"], item["sinceNs"], item["stale"])
            if self._shown.get(item["cameraId"]) != key:
                self._shown[item["cameraId"]] = key
                self._publish(sse("camera", item))
        counts = _tally(items)
        self._gauge_states |= counts.keys()
        for state in self._gauge_states:
            self._gauge.labels(state).set(counts.get(state, 0))

    def counts(self) -> dict[str, int]:
        """Cameras shown per state (stale ones under ``stale``), for ``/healthz``."""
        return _tally(self.items())

    def routes(self, app: web.Application) -> None:
        """``GET /api/cameras``, for the operators and supervisors of the station."""
        self.auth.add(app, "GET", "/api/cameras", self._list, Access.VIEWER)

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response({"cameras": self.items()}, headers={"Cache-Control": "no-store"})
