"""Fan-out of the station's changes to the consoles' event streams (server-sent events).

Each console (one ``GET /api/events``) gets a bounded queue of events. Publishing never
waits and never fails: when a console's queue is full (it reads slower than incidents
change, or its network stalls), its backlog is dropped and replaced by one :data:`RESYNC`
marker. The console's writer then sends ``event: resync`` and the whole current list again,
so the browser rebuilds its view instead of missing changes. The other consoles and the
service are untouched; the drop is counted in ``vigie_station_console_resyncs_total`` and
``vigie_station_console_events_dropped_total``.

The stream, as the browser sees it::

    event: resync          (on connecting, and after a drop: what follows is the whole list)
    data: {"reason": "connect" | "overflow", "dropped": <events dropped>}

    event: incident        (one per incident held, then one per change)
    data: <incident JSON>

    event: gone            (an incident left the station's memory; it is in the history)
    data: {"id": "<incident id>"}

    event: camera          (after the incidents of a resync, one per camera shown; then one per change of a
    data: <camera JSON>     camera's state or staleness: vigie.station.cameras_page)
"""

from __future__ import annotations

import asyncio
import json
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Queue item: the backlog was dropped; send ``resync`` and the whole list.
RESYNC = _Marker("RESYNC")
#: Queue item: the service stops; end the stream.
CLOSE = _Marker("CLOSE")


def sse(event: str, data: object) -> str:
    """One server-sent event: ``event: <event>`` and ``data: <data as JSON>`` (one line), then a blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Subscriber:
    """One console's queue. ``dropped`` counts the events dropped since its last resync."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[str | _Marker] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    async def get(self) -> str | _Marker:
        """The next event text, or a marker."""
        return await self.queue.get()

    def replace_backlog(self, marker: _Marker) -> int:
        """Empty the queue and leave ``marker`` alone in it; returns how many events were dropped."""
        dropped = 0
        while not self.queue.empty():
            if self.queue.get_nowait() is not RESYNC:
                dropped += 1
        self.queue.put_nowait(marker)
        return dropped


class EventHub:
    """The consoles connected, and publication to all of them.

    Args:
        queue_size: most events waiting per console before its backlog is dropped (>= 1).
        registry: Prometheus registry for the console metrics.
    """

    def __init__(self, queue_size: int, registry: CollectorRegistry) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.resyncs = 0
        Gauge("vigie_station_consoles", "Consoles connected to the event stream",
              registry=registry).set_function(lambda: len(self._subscribers))
        self._resyncs = Counter("vigie_station_console_resyncs", "Consoles whose backlog was dropped (they "
                                "then get the whole list again)", registry=registry)
        self._dropped = Counter("vigie_station_console_events_dropped", "Events dropped from slow consoles' "
                                "backlogs", registry=registry)

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber:
        """A new console's queue; pass it to :meth:`unsubscribe` when its stream ends."""
        subscriber = Subscriber(self.queue_size)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a console (safe to call twice)."""
        self._subscribers.discard(subscriber)

    def publish(self, text: str) -> None:
        """Queue ``text`` (one SSE event) for every console; a full queue becomes a resync. Never raises."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(text)
            except asyncio.QueueFull:
                dropped = subscriber.replace_backlog(RESYNC)
                subscriber.dropped += dropped
                self.resyncs += 1
                self._resyncs.inc()
                self._dropped.inc(dropped)
                log.info("a console reads too slowly: %d events dropped, it will get the whole list again", dropped)

    def close(self) -> None:
        """End every stream (the service stops). Never raises."""
        for subscriber in list(self._subscribers):
            subscriber.replace_backlog(CLOSE)
