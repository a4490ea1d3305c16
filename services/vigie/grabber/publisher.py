"""Publishing the grabber's frames: a bounded outbox per camera and one producer that survives the broker.

While the broker answers, a frame spends microseconds in its camera's :class:`Outbox`. When
it does not, aiokafka's ``send()`` first queues a few records, then blocks (its accumulator
holds one batch per partition) and, with an idempotent producer, retries what it holds until
the broker is back (``_can_retry`` in aiokafka's sender: idempotent batches never expire). So
the grabber keeps the frames itself: each camera's outbox holds at most ``capacity`` frames,
the oldest dropped first and counted, and the camera never waits for the broker. One
:meth:`FramePublisher.drain` task per camera hands its outbox to the producer in order, one
frame at a time, giving up a ``send()`` that blocks longer than ``send_timeout_s`` and trying
again with back-off; a producer that failed for good (fenced, closed, an error aiokafka does
not retry) is closed and a new one started. Frames that reached the producer are acknowledged
once the broker is back; one whose acknowledgement fails is counted as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (InvalidMessageError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError,
                             RecordListTooLargeError)

from vigie.contracts.v1 import Frame
from vigie.core.cameras import CameraConfig
from vigie.core.kafka import describe_broker_error, make_producer, retriable, retry_delays
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

if TYPE_CHECKING:
    from .frames import CapturedFrame

log = logging.getLogger(__name__)

#: Errors that concern one record only: it is dropped (counted), the producer goes on.
RECORD_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidMessageError)


@dataclass(slots=True)
class Outgoing:
    """One encoded frame waiting for the broker: record key and value, capture time (ns UTC)."""

    key: bytes
    value: bytes
    capture_ns: int


def frame_record(topic: Topic[Frame], camera: CameraConfig, frame: CapturedFrame) -> Outgoing:
    """The record of ``frame``, a frame of ``camera``, for ``topic``: key, serialised ``Frame``, capture time."""
    message = Frame(
        camera_id=frame.camera_id, seq=frame.seq, capture_ns=frame.capture_ns, pts=frame.pts,
        width=frame.width, height=frame.height, encoding=Frame.ENCODING_JPEG, data=frame.jpeg,
        privacy_masks=frame.masks_applied, fps=camera.fps, source_width=frame.source_width,
        source_height=frame.source_height,
    )
    return Outgoing(topic.key(camera.id), topic.encode(message), frame.capture_ns)


@dataclass(slots=True)
class Outbox:
    """Frames of one camera waiting to be handed to the producer: at most ``capacity``, oldest dropped first.

    Counters, all since start: ``queued`` frames put, ``dropped`` frames dropped because the
    outbox was full, ``sent`` frames handed to the producer, ``published`` acknowledged by the
    broker, ``lost`` whose acknowledgement failed, ``rejected`` refused by the producer for
    themselves (too large). At any time ``queued == len(outbox) + dropped + sent + rejected``
    and ``sent == published + lost + in flight``.
    """

    capacity: int
    queued: int = 0
    dropped: int = 0
    sent: int = 0
    published: int = 0
    lost: int = 0
    rejected: int = 0
    last_ack_ns: int = 0
    _items: deque = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: Outgoing) -> bool:
        """Queue ``item``; returns True when the oldest frame was dropped to make room."""
        dropped = len(self._items) >= self.capacity
        if dropped:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.queued += 1
        self._ready.set()
        return dropped

    def __len__(self) -> int:
        return len(self._items)

    def first(self) -> Outgoing:
        """The oldest frame, left in place. Raises IndexError when empty."""
        return self._items[0]

    def take(self) -> Outgoing:
        """Remove and return the oldest frame. Raises IndexError when empty."""
        return self._items.popleft()

    @property
    def in_flight(self) -> int:
        """Frames handed to the producer and not acknowledged (nor failed) yet."""
        return self.sent - self.published - self.lost

    async def wait(self, closing: asyncio.Event) -> None:
        """Return once a frame is queued or ``closing`` is set."""
        self._ready.clear()
        if self._items or closing.is_set():
            return
        waiters = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(closing.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def snapshot(self) -> dict[str, int]:
        """The counters and the frames buffered now, for ``/healthz``."""
        return {"buffered": len(self._items), "buffer_dropped": self.dropped, "sent": self.sent,
                "published": self.published, "in_flight": self.in_flight, "lost": self.lost,
                "rejected": self.rejected, "last_ack_ns": self.last_ack_ns}


class FramePublisher:
    """Hands the outboxes of the grabber's cameras to one Kafka producer and keeps it alive.

    Args:
        settings: the cluster; ``retry_initial_s`` and ``retry_max_s`` pace the retries.
        topic: name of the topic written.
        on_published: called with ``(camera_id, capture_ns)`` for every acknowledged frame.
        on_failed: called with ``(camera_id, kind)`` for every frame lost (``kind`` is ``lost``,
            its acknowledgement failed, or ``rejected``, refused for itself).
        send_timeout_s: longest wait for room in the producer before the attempt is given up
            and the broker reported unreachable.
        linger_ms: producer linger.
        headers: record headers of every frame (the grabber names itself: ``grabber`` = ``host:pid``).

    ``trouble`` says why publishing stalls (empty while it works) and ``trouble_since_ns`` since
    when; they clear at the first acknowledgement after the broker is back.
    """

    def __init__(self, settings: KafkaSettings, topic: str, *, on_published: Callable[[str, int], None],
                 on_failed: Callable[[str, str], None], send_timeout_s: float = 2.0, linger_ms: int = 5,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        self.settings = settings
        self.headers = headers or None
        self.topic = topic
        self.send_timeout_s = send_timeout_s
        self.linger_ms = linger_ms
        self.trouble = ""
        self.trouble_since_ns = 0
        self.renewals = 0
        self._on_published = on_published
        self._on_failed = on_failed
        self._producer: AIOKafkaProducer | None = None
        self._broken = False
        self._renewing = asyncio.Lock()
        self._pending: set[asyncio.Future] = set()

    async def start(self) -> None:
        """Start the producer. Raises aiokafka's KafkaConnectionError when no broker answers."""
        if self._producer is not None:
            return
        producer = make_producer(self.settings, linger_ms=self.linger_ms)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self._broken = False

    def health(self) -> dict[str, object]:
        """``state`` (``ok`` or ``reconnecting``), why and since when, producer renewals, for ``/healthz``."""
        if not self.trouble:
            return {"state": "ok", "producer_renewals": self.renewals}
        return {"state": "reconnecting", "error": self.trouble, "since_ns": self.trouble_since_ns,
                "producer_renewals": self.renewals}

    def _stalled(self, reason: str) -> None:
        if not self.trouble:
            self.trouble_since_ns = time.time_ns()
            log.warning("frames are not getting through to the broker, buffering them: %s", reason)
        self.trouble = reason

    async def _ready_producer(self, closing: asyncio.Event) -> AIOKafkaProducer | None:
        """The producer, renewed first when it failed for good; None when ``closing`` is set before one starts."""
        async with self._renewing:
            delays = retry_delays(self.settings)
            while self._producer is None or self._broken:
                if self._producer is not None:
                    old, self._producer = self._producer, None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(old.stop(), 5.0)
                    self.renewals += 1
                    log.info("closed the failed producer, starting a new one")
                try:
                    await self.start()
                except Exception as exc:  # noqa: BLE001 - broker away: retried with back-off
                    self._stalled(f"no producer: {describe_broker_error(exc)}")
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(closing.wait(), next(delays))
                    if closing.is_set():
                        return None
            return self._producer

    async def drain(self, camera_id: str, outbox: Outbox, closing: asyncio.Event) -> None:
        """Hand ``outbox``'s frames to the producer in order until ``closing`` is set and it is empty.

        Never raises for a broker problem: a send that finds no room within ``send_timeout_s``
        or fails for a retriable reason is retried with back-off, the frame staying first in
        the outbox. Returns early, frames left in the outbox, when ``closing`` is set while
        the broker is away. Cancel it to stop at once.
        """
        delays = None
        while True:
            if not outbox:
                if closing.is_set():
                    return
                await outbox.wait(closing)
                continue
            producer = await self._ready_producer(closing)
            if producer is None:
                return
            item = outbox.first()
            try:
                future = await asyncio.wait_for(
                    producer.send(self.topic, item.value, key=item.key, headers=self.headers), self.send_timeout_s)
            except RECORD_ERRORS as exc:
                outbox.take()
                outbox.rejected += 1
                self._on_failed(camera_id, "rejected")
                log.error("camera %s: frame refused by the producer, dropped: %s", camera_id,
                          describe_broker_error(exc), extra={"camera": camera_id})
                continue
            except (KafkaError, asyncio.TimeoutError) as exc:
                if isinstance(exc, asyncio.TimeoutError):
                    reason = f"no room in the producer for {self.send_timeout_s:.0f} s: the broker does not answer"
                else:
                    reason = describe_broker_error(exc)
                    if not retriable(exc):
                        self._failed_for_good(producer)
                self._stalled(reason)
                delays = delays or retry_delays(self.settings)
                # After a timeout the attempt itself waited: retry at once; else back off.
                if not isinstance(exc, asyncio.TimeoutError):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(closing.wait(), next(delays))
                if closing.is_set():
                    return  # shutting down while the broker is away: what is left stays unsent
                continue
            delays = None
            outbox.take()
            outbox.sent += 1
            self._pending.add(future)
            future.add_done_callback(lambda f, c=camera_id, o=outbox, i=item, p=producer: self._acked(f, c, o, i, p))

    def _failed_for_good(self, producer: AIOKafkaProducer) -> None:
        """Have ``producer`` replaced before the next send, unless it was replaced already."""
        if producer is self._producer:
            self._broken = True

    def _acked(self, future: asyncio.Future, camera_id: str, outbox: Outbox, item: Outgoing,
               producer: AIOKafkaProducer) -> None:
        self._pending.discard(future)
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            outbox.lost += 1
            self._on_failed(camera_id, "lost")
            reason = describe_broker_error(error) if error is not None else "cancelled"
            if error is not None and not isinstance(error, KafkaTimeoutError) and not retriable(error):
                self._failed_for_good(producer)
            self._stalled(f"frame not acknowledged: {reason}")
            log.error("camera %s: frame not acknowledged by the broker: %s", camera_id, reason,
                      extra={"camera": camera_id})
            return
        outbox.published += 1
        outbox.last_ack_ns = time.time_ns()
        if self.trouble:
            log.info("frames get through to the broker again (stalled for %.1f s)",
                     (time.time_ns() - self.trouble_since_ns) / 1e9)
            self.trouble, self.trouble_since_ns = "", 0
        self._on_published(camera_id, item.capture_ns)

    async def flush(self, timeout_s: float = 15.0) -> None:
        """Wait up to ``timeout_s`` seconds for the acknowledgements of the frames in flight
        (2 s at most while the broker does not answer: they would not come)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=min(timeout_s, 2.0) if self.trouble else timeout_s)

    async def close(self) -> None:
        """Flush, then stop the producer (safe to call twice). Bounded: a few seconds while the broker is away."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await self.flush()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 3.0 if self.trouble else 15.0)
