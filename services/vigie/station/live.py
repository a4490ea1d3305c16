"""Live video of a camera in the operator's browser, over WebRTC (aiortc).

Routes, for operators and supervisors of the station only (:attr:`~vigie.station.auth.Access.VIEWER`):

- ``GET /live?camera=<id>&incident=<id>``: the live page (``static/live.html``, ``static/live.js``);
- ``POST /api/cameras/{id}/live`` ``{"type": "offer", "sdp": "...", "incident": "<id>"}``: the browser's SDP
  offer (receive-only video, and a data channel) -> ``{"type": "answer", "sdp": "..."}``. Same origin and
  CSRF token, as every change. Its viewer check is made by the handler (the route is
  :attr:`~vigie.station.auth.Access.USER`), so that a refusal is written to the register too.

Which cameras: only a camera with an incident this station holds (open, or closed within ``keep_closed_s``;
:class:`~vigie.station.store.IncidentStore`): the station receives that camera's incidents, so its operators
may look at it while they handle them. Any other camera, or a user who does not see the station's incidents,
is a 403, and the refusal is written to the register (``AuditEntry.KIND_VIEW_REFUSED``, detail ``live: why``).

A live view is an image view: an ``AuditEntry.KIND_VIEW`` entry (detail ``live``, the user, the station, the
client's address, the camera and the incident) is in the ``audit`` topic before the answer is sent, hence
before any frame (503 and no stream when it cannot be written); a second one (``live ended after 42.3 s``)
is written when the view ends. A view ends when the browser leaves (peer connection or data channel closed),
when its session ends (logout, expiry, disabled account: checked every ``SESSION_CHECK_S``), or when the
station stops. At most ``max_views`` views at a time per station (503 beyond).

Frames: each view reads the camera's partition of the ``frames`` topic from its end (no consumer group,
other cameras' records skipped by key), keeps only the latest frame, and hands it to the encoder when aiortc
asks for the next one: a slow browser or encoder skips frames, it never falls behind. The frames are the
grabber's, privacy masks already blacked out. Each frame sent is also described on the data channel
(``{"seq", "capture_ns", "sent_ns", "pts"}``) so the page shows how far behind capture it is.

Metrics: ``vigie_station_live_views`` (open), ``vigie_station_live_frames_sent_total``,
``vigie_station_live_delay_seconds`` (capture to encoder, histogram).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import av
import simplejpeg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from vigie.contracts.v1 import AuditEntry, Frame
from vigie.core.errors import BrokerUnavailable
from vigie.core.kafka import make_consumer, partitions_of
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic
from vigie.evidence.clip import partition_of
from vigie.station.auth import SESSION, STATIC, Access, StationAuth
from vigie.station.login import read_json
from vigie.station.store import IncidentStore

log = logging.getLogger(__name__)
#: Seconds between two checks that a live view's session still lives (as the event stream's).
SESSION_CHECK_S = 2.0
#: RTP clock of video, Hz.
VIDEO_CLOCK = 90_000
#: Delay histogram buckets, seconds.
DELAY_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class LiveMetrics:
    """The live views' Prometheus metrics in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.views = Gauge("vigie_station_live_views", "Live views open", registry=registry)
        self.frames = Counter("vigie_station_live_frames_sent", "Frames handed to the live views' encoders",
                              registry=registry)
        self.delay = Histogram("vigie_station_live_delay_seconds", "Capture of a frame to its hand-over to a live "
                               "view's encoder, seconds", buckets=DELAY_BUCKETS, registry=registry)


class LatestFrame:
    """Follows one camera in the ``frames`` topic and keeps its latest frame (older ones are dropped).

    Args:
        kafka: the broker.
        topic: the ``frames`` topic.
        camera_id: the camera followed; the records of other cameras of its partition are skipped.
    """

    def __init__(self, kafka: KafkaSettings, topic: Topic[Frame], camera_id: str) -> None:
        self.kafka, self.topic, self.camera_id = kafka, topic, camera_id
        self._key = topic.key(camera_id)
        self.frame: Frame | None = None
        self.received = 0
        self._new = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Assign the camera's partition, from its end. Raises BrokerUnavailable or KafkaError."""
        partition = partition_of(self.camera_id, await partitions_of(self.kafka, self.topic))
        consumer = make_consumer(self.kafka, group=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            tp = TopicPartition(self.topic.name, partition)
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500)
                except KafkaError as exc:
                    log.warning("live view of %s: frames not read, retrying: %s", self.camera_id, exc)
                    await asyncio.sleep(1.0)
                    continue
                for records in batches.values():
                    for record in reversed(records):  # the latest of the batch only
                        if record.key == self._key:
                            self.frame = self.topic.decode(record.value)
                            self.received += 1
                            self._new.set()
                            break
        finally:
            await consumer.stop()

    async def next(self, after: Frame | None) -> Frame:
        """The latest frame, once it is not ``after`` (waits for a newer one)."""
        while self.frame is None or self.frame is after:
            self._new.clear()
            await self._new.wait()
        return self.frame

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class CameraTrack(MediaStreamTrack):
    """The video track of a live view: the camera's latest JPEG frame decoded into an ``av.VideoFrame``, its
    timestamp the wall time since the view started (real time, whatever the frames' rate).

    ``on_sent(frame, sent_ns, pts)`` is called for each frame handed to the encoder (``pts`` in
    1/:data:`VIDEO_CLOCK` s: the RTP timestamp of the frame, less the sender's random origin).
    """

    kind = "video"

    def __init__(self, feed: LatestFrame, on_sent: Callable[[Frame, int, int], None]) -> None:
        super().__init__()
        self.feed = feed
        self.on_sent = on_sent
        self._last: Frame | None = None
        self._started: float | None = None

    async def recv(self) -> av.VideoFrame:
        """The next frame to encode; raises MediaStreamError once the track has ended."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self.feed.next(self._last)
            self._last = frame
            try:
                image = simplejpeg.decode_jpeg(frame.data, colorspace="RGB")
            except ValueError:
                continue
            break
        video = av.VideoFrame.from_ndarray(image, format="rgb24")
        now = time.monotonic()
        if self._started is None:
            self._started = now
        video.pts = int((now - self._started) * VIDEO_CLOCK)
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.on_sent(frame, time.time_ns(), video.pts)
        return video


class LiveView:
    """One browser's live view: its peer connection, frame feed, track and data channel."""

    def __init__(self, camera_id: str, incident_id: str, user: str, request: web.Request,
                 feed: LatestFrame, pc: RTCPeerConnection) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.camera_id, self.incident_id, self.user, self.request = camera_id, incident_id, user, request
        self.feed, self.pc = feed, pc
        self.channel: Any = None
        self.started = time.monotonic()
        self.sent = 0
        self.ended = asyncio.Event()

    def describe(self, frame: Frame, sent_ns: int, pts: int) -> None:
        """Tell the page which frame went to the encoder (when its data channel is open)."""
        self.sent += 1
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps({"seq": frame.seq, "capture_ns": frame.capture_ns, "sent_ns": sent_ns,
                                          "pts": pts}))


class LivePage:
    """The live-view routes of one station's console (see the module's docstring).

    Args:
        auth: the console's access checks.
        station: the station's id.
        kafka: the broker (frames are read from it).
        frames: the ``frames`` topic.
        incidents: the station's incidents (which cameras may be viewed).
        audit: the station's audit writer (:meth:`vigie.station.login.ConsoleAccounts.audit`).
        still_allowed: ``request -> bool``: the request's session still lives and still sees the station.
        registry: where the metrics go.
        max_views: most live views at a time (503 beyond).
    """

    def __init__(self, auth: StationAuth, station: str, kafka: KafkaSettings, frames: Topic[Frame],
                 incidents: IncidentStore, audit: Callable[..., Awaitable[None]],
                 still_allowed: Callable[[web.Request], Awaitable[bool]], registry: CollectorRegistry,
                 max_views: int = 8) -> None:
        self.auth, self.station, self.kafka, self.frames = auth, station, kafka, frames
        self.incidents, self.audit, self.still_allowed = incidents, audit, still_allowed
        self.max_views = max_views
        self.metrics = LiveMetrics(registry)
        self.views: dict[str, LiveView] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        self._opening = 0  # views past the capacity check, not in self.views yet

    def routes(self, app: web.Application) -> None:
        add = self.auth.add
        add(app, "GET", "/live", self._page, Access.VIEWER)
        add(app, "POST", "/api/cameras/{id}/live", self._offer, Access.USER)  # viewers: checked by _offer

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "live.html")

    def _incident_of(self, camera_id: str, wanted: str) -> str | None:
        """The incident (``wanted`` when it is one of the camera's) that lets this station see ``camera_id``,
        or None when the station holds no incident of that camera."""
        ids = [i.id for i in self.incidents.live() if i.camera_id == camera_id]
        if not ids:
            return None
        return wanted if wanted in ids else ids[-1]

    async def _offer(self, request: web.Request) -> web.Response:
        """The SDP answer of a new live view: 400 bad offer, 403 camera not seen here (recorded), 503 too many
        views or the view not recorded."""
        camera_id = request.match_info["id"][:63]
        user = request[SESSION].user.name
        if not request[SESSION].user.views(self.station):
            await self._refuse(request, camera_id, f"{user} does not see station {self.station}'s incidents")
        expected = 'expected JSON {"type": "offer", "sdp": "...", "incident": "<id> (optional)"}'
        body = await read_json(request, expected)
        if (not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str)
                or not isinstance(body.get("incident", ""), str)):
            raise web.HTTPBadRequest(text=expected)
        incident_id = self._incident_of(camera_id, body.get("incident", ""))
        if incident_id is None:
            await self._refuse(request, camera_id, f"camera {camera_id} has no incident at station {self.station}")
        try:
            if not any(m.kind == "video" for m in SessionDescription.parse(body["sdp"]).media):
                raise ValueError("no video")
        except (ValueError, KeyError, IndexError):
            raise web.HTTPBadRequest(text="unusable SDP offer: expected one that receives video") from None
        if self._closing or len(self.views) + self._opening >= self.max_views:
            raise web.HTTPServiceUnavailable(text=f"{len(self.views)} live views are open at this station, the "
                                                  f"most allowed ({self.max_views}): close one and try again")
        offer = RTCSessionDescription(sdp=body["sdp"], type="offer")
        self._opening += 1
        try:
            try:  # recorded before anything is shown
                await self.audit(AuditEntry.KIND_VIEW, request, user, camera_id=camera_id, incident_id=incident_id,
                                 detail="live")
            except KafkaError:
                raise web.HTTPServiceUnavailable(text="the live view could not be written to the register: "
                                                      "it is not shown; try again") from None
            return await self._open(request, camera_id, incident_id, user, offer)
        finally:
            self._opening -= 1

    async def _refuse(self, request: web.Request, camera_id: str, why: str) -> None:
        """Write the refusal to the register (logged when it cannot be), then raise 403 saying ``why``."""
        user = request[SESSION].user.name
        try:
            await self.audit(AuditEntry.KIND_VIEW_REFUSED, request, user, camera_id=camera_id, detail=f"live: {why}")
        except KafkaError as exc:
            log.error("refused live view of %s by %s not written to the register: %s", camera_id, user,
                      type(exc).__name__)
        raise web.HTTPForbidden(text=f"{why}: the live view is not shown")

    async def _open(self, request: web.Request, camera_id: str, incident_id: str, user: str,
                    offer: RTCSessionDescription) -> web.Response:
        feed = LatestFrame(self.kafka, self.frames, camera_id)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates: the console's own network
        view = LiveView(camera_id, incident_id, user, request, feed, pc)
        self.views[view.id] = view
        if self._closing:  # the station began stopping during the audit write
            view.ended.set()
        self.metrics.views.set(len(self.views))
        task = asyncio.create_task(self._watch(view))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await feed.start()

            def sent(frame: Frame, sent_ns: int, pts: int) -> None:
                self.metrics.frames.inc()
                self.metrics.delay.observe(max(0.0, (sent_ns - frame.capture_ns) / 1e9))
                view.describe(frame, sent_ns, pts)

            @pc.on("datachannel")
            def on_channel(channel: Any) -> None:
                view.channel = channel
                channel.on("close", view.ended.set)

            @pc.on("connectionstatechange")
            def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    view.ended.set()

            await pc.setRemoteDescription(offer)
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.direction = "sendonly"
                    pc.addTrack(CameraTrack(feed, sent))
                    break
            else:
                raise web.HTTPBadRequest(text="the offer asks for no video")
            await pc.setLocalDescription(await pc.createAnswer())
        except ValueError as exc:
            view.ended.set()
            raise web.HTTPBadRequest(text=f"unusable SDP offer: {str(exc)[:200]}") from None
        except (BrokerUnavailable, KafkaError) as exc:
            view.ended.set()
            raise web.HTTPServiceUnavailable(text=f"the camera's frames cannot be read now: {exc}") from None
        except BaseException:
            view.ended.set()
            raise
        log.info("live view %s of camera %s opened by %s", view.id, camera_id, user)
        return web.json_response({"type": pc.localDescription.type, "sdp": pc.localDescription.sdp,
                                  "view": view.id, "incident": incident_id})

    async def _watch(self, view: LiveView) -> None:
        """Wait for the view's end (browser gone, session over, the station holding no incident of the camera any
        more, station stopping), close it, record its length."""
        try:
            while not view.ended.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(view.ended.wait(), SESSION_CHECK_S)
                if not view.ended.is_set() and not await self._allowed(view):
                    log.info("live view %s closed: the session of %s ended", view.id, view.user)
                    break
                if not view.ended.is_set() and self._incident_of(view.camera_id, view.incident_id) is None:
                    log.info("live view %s closed: the station holds no incident of camera %s any more",
                             view.id, view.camera_id)
                    break
        finally:
            await self._close(view)

    async def _allowed(self, view: LiveView) -> bool:
        try:
            return await self.still_allowed(view.request)
        except Exception:  # noqa: BLE001 - a database that does not answer: the view goes on until it does
            log.warning("live view %s: session not checked", view.id, exc_info=True)
            return True

    async def _close(self, view: LiveView) -> None:
        self.views.pop(view.id, None)
        self.metrics.views.set(len(self.views))
        seconds = time.monotonic() - view.started
        with contextlib.suppress(Exception):
            await view.pc.close()
        await view.feed.stop()
        try:
            await self.audit(AuditEntry.KIND_VIEW, view.request, view.user, camera_id=view.camera_id,
                             incident_id=view.incident_id, detail=f"live ended after {seconds:.1f} s")
        except KafkaError as exc:
            log.error("end of live view %s not written to the register: %s", view.id, type(exc).__name__)
        log.info("live view %s of camera %s closed after %.1f s, %d frames sent", view.id, view.camera_id,
                 seconds, view.sent)

    async def close(self) -> None:
        """End every live view (their end entries written) and refuse new ones; for the station's stop."""
        self._closing = True
        for view in list(self.views.values()):
            view.ended.set()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stats(self) -> dict[str, object]:
        """For /healthz (public: counts only, never who watches which camera): open views and the limit."""
        return {"open": len(self.views), "max": self.max_views}
