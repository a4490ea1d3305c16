"""What the station holds in memory: the live incidents (bounded) and a byte-capped snapshot cache.

:class:`IncidentStore` keeps every open incident (new, acknowledged, escalated) and the
incidents closed in the last ``keep_closed_s`` seconds, at most ``max_incidents`` in all.
An incident leaves memory when

- it has been closed for longer than ``keep_closed_s`` (measured on the closing revision's
  ``updated_ns``, the correlator's clock, so a station that re-reads 30 days of alerts at
  start-up keeps none of the old closed ones);
- it is open but unchanged for longer than ``keep_open_s`` (the correlator forgets an incident an
  hour after its last anomaly, so actions on it no longer apply; it is still in the alerts topic);
- the store is over ``max_incidents``: the incident closed first goes first, and only when no
  closed one is left the open incident unchanged for longest (logged: the cap is then too low for the site).

Every incident that left is still in the alerts topic, read back page by page
(:mod:`vigie.station.history`). The store remembers the last revision of the ids that left
(a bounded table of ``4 * max_incidents`` ids), so a late, older revision does not bring one back.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from vigie.contracts.v1 import Incident

log = logging.getLogger(__name__)
NS = 1_000_000_000
#: Reasons an incident leaves memory, as the ``reason`` label of ``vigie_station_incidents_evicted_total``.
EVICTION_REASONS = ("closed_expired", "open_expired", "cap_closed", "cap_open")


class _AgeIndex:
    """Ids ordered by an age in ns (oldest first), a heap with lazy deletion.

    ``age`` maps each live id to its current age; heap entries whose age no longer matches are stale
    and skipped. The heap is rebuilt when stale entries outnumber live ones.
    """

    def __init__(self) -> None:
        self.age: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.age)

    def set(self, key: str, age_ns: int) -> None:
        """Add ``key`` or move it to ``age_ns``."""
        if self.age.get(key) == age_ns:
            return
        self.age[key] = age_ns
        heapq.heappush(self._heap, (age_ns, key))
        if len(self._heap) > 2 * len(self.age) + 64:
            self._heap = [(a, k) for k, a in self.age.items()]
            heapq.heapify(self._heap)

    def discard(self, key: str) -> None:
        """Forget ``key`` (its heap entries become stale)."""
        self.age.pop(key, None)

    def oldest(self) -> tuple[int, str] | None:
        """``(age_ns, key)`` of the oldest live key, or None when empty."""
        while self._heap:
            age, key = self._heap[0]
            if self.age.get(key) == age:
                return age, key
            heapq.heappop(self._heap)
        return None


class IncidentStore:
    """The station's live incidents, bounded in time and number (see the module's docstring).

    Args:
        max_incidents: most incidents held, open and closed together (>= 1).
        keep_closed_s: seconds a closed incident stays after its closing revision.
        keep_open_s: seconds an open incident stays after its latest revision.
        registry: Prometheus registry for ``vigie_station_incidents_held{state}`` and
            ``vigie_station_incidents_evicted_total{reason}``.
        clock_ns: wall clock in ns since the Unix epoch (tests pass their own).
    """

    def __init__(self, max_incidents: int, keep_closed_s: float, keep_open_s: float,
                 registry: CollectorRegistry, clock_ns: Callable[[], int] = time.time_ns) -> None:
        if max_incidents < 1:
            raise ValueError("max_incidents must be at least 1")
        self.max_incidents = max_incidents
        self.keep_closed_ns = int(keep_closed_s * NS)
        self.keep_open_ns = int(keep_open_s * NS)
        self._clock_ns = clock_ns
        self._items: dict[str, Incident] = {}
        self._open = _AgeIndex()  # age: latest change
        self._closed = _AgeIndex()  # age: closing time (a closed incident never changes again)
        self._gone: OrderedDict[str, int] = OrderedDict()  # id -> last revision, of ids that left
        held = Gauge("vigie_station_incidents_held", "Incidents held in memory", ["state"], registry=registry)
        held.labels(state="open").set_function(lambda: len(self._open))
        held.labels(state="closed").set_function(lambda: len(self._closed))
        evicted = Counter("vigie_station_incidents_evicted", "Incidents that left memory, by reason",
                          ["reason"], registry=registry)
        self._evicted_metric = {reason: evicted.labels(reason=reason) for reason in EVICTION_REASONS}
        self.evicted = dict.fromkeys(EVICTION_REASONS, 0)
        #: Called with the id of each held incident that leaves memory (the station tells its consoles).
        self.on_evict: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._items

    def get(self, incident_id: str) -> Incident | None:
        """The latest revision held of ``incident_id``, or None."""
        return self._items.get(incident_id)

    def put(self, incident: Incident) -> bool:
        """Take in a revision; True when it is newer than what the station knew (consoles are then told).

        An older or equal revision is ignored, also for an incident that already left memory; so
        is a first revision already past its keeping time (counted as evicted). Call :meth:`prune`
        after telling the consoles, so that they hear of a change before they hear it left.
        """
        known = self._items.get(incident.id)
        last = known.revision if known is not None else self._gone.get(incident.id)
        if last is not None and last >= incident.revision:
            return False
        closed = incident.state == Incident.STATE_CLOSED
        keep_ns = self.keep_closed_ns if closed else self.keep_open_ns
        if known is None and _changed_ns(incident) < self._clock_ns() - keep_ns:
            self._forget(incident.id, incident.revision, "closed_expired" if closed else "open_expired")
            return False
        self._items[incident.id] = incident
        self._gone.pop(incident.id, None)
        (self._closed if closed else self._open).set(incident.id, _changed_ns(incident))
        (self._open if closed else self._closed).discard(incident.id)
        return True

    def prune(self) -> None:
        """Evict what is past its keeping time, then the oldest closed (then open) while over the cap."""
        now = self._clock_ns()
        for index, keep_ns, reason in ((self._closed, self.keep_closed_ns, "closed_expired"),
                                       (self._open, self.keep_open_ns, "open_expired")):
            while (oldest := index.oldest()) is not None and oldest[0] < now - keep_ns:
                self._evict(oldest[1], reason)
        while len(self._items) > self.max_incidents:
            index, reason = (self._closed, "cap_closed") if len(self._closed) else (self._open, "cap_open")
            _, key = index.oldest()
            if reason == "cap_open":
                log.warning("more than %d open incidents: %s leaves the console (still in the alerts topic); "
                            "raise --max-incidents", self.max_incidents, key)
            self._evict(key, reason)

    def _evict(self, key: str, reason: str) -> None:
        incident = self._items.pop(key)
        self._open.discard(key)
        self._closed.discard(key)
        self._forget(key, incident.revision, reason)
        if self.on_evict is not None:
            self.on_evict(key)

    def _forget(self, key: str, revision: int, reason: str) -> None:
        self._gone[key] = revision
        self._gone.move_to_end(key)
        while len(self._gone) > 4 * self.max_incidents:
            self._gone.popitem(last=False)
        self.evicted[reason] += 1
        self._evicted_metric[reason].inc()

    def live(self) -> list[Incident]:
        """Every incident held, oldest first sighting first (after a prune)."""
        self.prune()
        return sorted(self._items.values(), key=lambda i: (i.first_seen_ns, i.id))

    def counts(self) -> dict[str, object]:
        """Held and evicted counts, and the bounds, for ``/healthz``."""
        return {
            "open": len(self._open), "closed": len(self._closed), "max_incidents": self.max_incidents,
            "keep_closed_s": self.keep_closed_ns / NS, "keep_open_s": self.keep_open_ns / NS,
            "evicted": dict(self.evicted),
        }


def _changed_ns(incident: Incident) -> int:
    """When the correlator last changed ``incident`` (ns, epoch UTC): its ``updated_ns``, else its last anomaly."""
    return incident.updated_ns or incident.last_seen_ns or incident.first_seen_ns


class SnapshotCache:
    """Least-recently-used JPEG bytes by incident id, at most ``max_bytes`` in all.

    A snapshot larger than ``max_bytes`` is served but not kept. Metrics:
    ``vigie_station_snapshot_cache_bytes``, ``..._items``, ``..._requests_total{result=hit|miss}``,
    ``..._evictions_total``.
    """

    def __init__(self, max_bytes: int, registry: CollectorRegistry) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[str, bytes] = OrderedDict()
        Gauge("vigie_station_snapshot_cache_bytes", "Bytes of JPEG in the snapshot cache",
              registry=registry).set_function(lambda: self.bytes)
        Gauge("vigie_station_snapshot_cache_items", "Snapshots in the cache",
              registry=registry).set_function(lambda: len(self._data))
        requests = Counter("vigie_station_snapshot_cache_requests", "Snapshot lookups by result", ["result"],
                           registry=registry)
        self._hit, self._miss = requests.labels(result="hit"), requests.labels(result="miss")
        self._evictions = Counter("vigie_station_snapshot_cache_evictions", "Snapshots evicted to stay under "
                                  "the byte cap", registry=registry)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        """The bytes kept for ``key`` (now the most recently used), or None."""
        data = self._data.get(key)
        if data is None:
            self._miss.inc()
            return None
        self._data.move_to_end(key)
        self._hit.inc()
        return data

    def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` for ``key``, evicting the least recently used until the total fits ``max_bytes``."""
        if len(data) > self.max_bytes:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._data[key] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            _, evicted = self._data.popitem(last=False)
            self.bytes -= len(evicted)
            self._evictions.inc()

    def stats(self) -> dict[str, int]:
        """Items, bytes and the byte cap, for ``/healthz``."""
        return {"items": len(self._data), "bytes": self.bytes, "max_bytes": self.max_bytes}
