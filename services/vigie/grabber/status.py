"""The grabber's beacon: each camera's status on the compacted ``camera-status`` topic, keyed by camera id.

The grabber's once-a-second loop calls :meth:`StatusBeacon.observe` for every camera with the
state and error of ``/healthz``, then :meth:`StatusBeacon.tick`. A camera's status is published
when its state or error changes (within one tick) and again every ``heartbeat_s`` seconds, so the
station tells a live camera from one whose grabber is gone: no status for more than three
heartbeats means nobody watches that camera any more.

Publishing never stops a camera and never holds up the loop: it runs in one background task at a
time; a status that could not be published (broker away, no producer yet) is logged once per
streak of failures, counted, and published again at the next tick. Errors are redacted
(:func:`vigie.core.secrets.redact`) before they are put in a record: a camera URL's password never
reaches the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from vigie.contracts.v1 import CameraStatus
from vigie.core.kafka import describe_broker_error, make_producer, retriable
from vigie.core.secrets import redact
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

log = logging.getLogger(__name__)

#: Longest wait, seconds, for a producer to start or for the acknowledgements of one round of statuses.
SEND_TIMEOUT_S = 5.0


def grabber_identity() -> str:
    """``host:pid`` of this process, as the ``grabber`` field of its statuses."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class _Camera:
    state: str = ""
    error: str = ""
    since_ns: int = 0
    last_capture_ns: int = 0
    #: When its status was last acknowledged by the broker (ns since the epoch), 0: never.
    sent_ns: int = 0
    #: Its state or error changed since the last status acknowledged.
    changed: bool = True


class StatusBeacon:
    """Publishes the status of a grabber's cameras to ``topic``: on change and every ``heartbeat_s`` seconds.

    Args:
        settings: the cluster.
        topic: the ``camera-status`` topic.
        heartbeat_s: seconds between two statuses of an unchanged camera (> 0).
        on_failed: called with the reason each time a round of statuses is not published (for a counter).
    """

    def __init__(self, settings: KafkaSettings, topic: Topic[CameraStatus], heartbeat_s: float,
                 on_failed: Callable[[str], None] = lambda _: None) -> None:
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        self.settings = settings
        self.topic = topic
        self.heartbeat_s = heartbeat_s
        self.grabber = grabber_identity()
        #: Rounds of statuses not published since the start.
        self.failures = 0
        self._on_failed = on_failed
        self._cameras: dict[str, _Camera] = {}
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task | None = None
        self._failing = False

    def observe(self, camera_id: str, state: str, error: str, last_capture_ns: int, now_ns: int | None = None) -> None:
        """Record what camera ``camera_id`` is doing now (``error`` is redacted here); a new state or error
        starts a new ``since_ns`` and has the status published at the next :meth:`tick`."""
        now_ns = now_ns or time.time_ns()
        camera = self._cameras.setdefault(camera_id, _Camera())
        error = redact(error)
        if (state, error) != (camera.state, camera.error):
            camera.state, camera.error, camera.since_ns, camera.changed = state, error, now_ns, True
        camera.last_capture_ns = last_capture_ns

    def forget(self, camera_id: str) -> None:
        """Publish no more statuses of ``camera_id`` (another grabber runs it now, or it was removed)."""
        self._cameras.pop(camera_id, None)

    def tick(self, now_ns: int | None = None) -> None:
        """Start publishing the statuses due (changed, or unsent for a heartbeat), unless a round is still
        in flight (they are then due at the next tick). Never waits, never raises."""
        if self._task is not None and not self._task.done():
            return
        now_ns = now_ns or time.time_ns()
        heartbeat_ns = int(self.heartbeat_s * 1e9)
        due = {camera_id: self._message(camera_id, camera, now_ns) for camera_id, camera in self._cameras.items()
               if camera.changed or now_ns - camera.sent_ns >= heartbeat_ns}
        if due:
            self._task = asyncio.create_task(self._publish(due), name="camera-status")

    def _message(self, camera_id: str, camera: _Camera, now_ns: int) -> CameraStatus:
        return CameraStatus(camera_id=camera_id, state=camera.state, since_ns=camera.since_ns, error=camera.error,
                            updated_ns=now_ns, grabber=self.grabber, last_capture_ns=camera.last_capture_ns,
                            heartbeat_s=self.heartbeat_s)

    async def _publish(self, due: dict[str, CameraStatus]) -> None:
        """Send ``due`` and wait for the acknowledgements; on failure they stay due. Never raises."""
        try:
            if self._producer is None:
                producer = make_producer(self.settings, linger_ms=5)
                try:
                    await asyncio.wait_for(producer.start(), SEND_TIMEOUT_S)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(producer.stop(), 1.0)
                    raise
                self._producer = producer
            futures = [await asyncio.wait_for(self._producer.send(self.topic.name, self.topic.encode(message),
                                                                  key=self.topic.key(camera_id)), SEND_TIMEOUT_S)
                       for camera_id, message in due.items()]
            await asyncio.wait_for(asyncio.gather(*futures), SEND_TIMEOUT_S)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            self.failures += 1
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else describe_broker_error(exc)
            self._on_failed(reason)
            if isinstance(exc, KafkaError) and not retriable(exc):  # failed for good: a new producer next tick
                await self._drop_producer()
            if not self._failing:
                log.warning("camera statuses not published, retrying every tick: %s", reason)
            self._failing = True
            return
        if self._failing:
            log.info("camera statuses published again")
        self._failing = False
        for camera_id, message in due.items():
            camera = self._cameras.get(camera_id)
            if camera is None:  # forgotten meanwhile
                continue
            camera.sent_ns = message.updated_ns
            if (camera.state, camera.error) == (message.state, message.error):  # not changed again meanwhile
                camera.changed = False

    async def settle(self, timeout_s: float = SEND_TIMEOUT_S) -> None:
        """Wait up to ``timeout_s`` seconds for the round of statuses in flight, if any, to end (never raises)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)

    async def close(self) -> None:
        """Wait a little for the round in flight, then stop the producer (bounded; safe to call twice)."""
        await self.settle()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._drop_producer()

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), SEND_TIMEOUT_S)
