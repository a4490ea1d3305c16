"""False-alarm rates from the operators' closing verdicts, per camera and kind, over a sliding window.

Every incident revision the station reads from its alerts topic goes through :meth:`VerdictStats.observe`;
the station reads the topic from the beginning at start, so the figures are rebuilt after a restart.
What is counted:

- one record per closed incident (keyed by incident id): the latest closed revision wins, so an incident
  closed, reopened and closed again counts its latest verdict once; while it is reopened (a newer revision
  that is not closed: the correlator clears the verdict) it is not counted at all;
- the closing time is ``Incident.closed_ns`` (else the verdict's ``at_ns``, else ``updated_ns``); a window
  of ``window_s`` seconds holds the incidents closed in ``[now - window_s, now]``;
- per group (camera x kind, camera x kind x zone, kind, overall): closed, confirmed, false alarms, tests
  and unjudged (closed without a verdict); tests are left out of the rate:
  ``rate = false / (confirmed + false)``, with its 95 % Wilson score interval (:func:`wilson`);
- the reasons of the false alarms, and the dominant ones (:func:`dominant`);
- a camera-kind pair is *flagged* when its rate is over ``flag_rate`` with at least ``min_verdicts``
  verdicts (confirmed + false).

Memory is bounded: records of incidents closed more than ``keep_s`` ago (the largest window asked, 30 days
by default) are dropped as time moves (:meth:`VerdictStats.prune`, called by every observation and query).
One record costs about 380 bytes (measured with tracemalloc by the tests, 36-character incident ids):
a slotted object of seven fields, its dictionary slot and id, one heap entry; camera, kind and zone strings
are interned, so shared by all the records that name them. 1 000 incidents closed a day keep about 11 MB
for 30 days. A query (the API, the page, a scrape of the gauges) counts the records by camera, kind, zone,
verdict and reason in one pass: about 40-80 ms for 100 000 records and 600 camera-kind pairs.

Prometheus (the station's registry): ``vigie_station_verdicts_total{camera,kind,verdict,reason}`` counts the
verdicts read (after a restart, those of the last ``keep_s`` again); ``vigie_station_false_alarm_rate{camera,
kind}`` (pairs with at least one verdict) and ``vigie_station_false_alarm_flagged{camera,kind}`` (0/1) are
computed at each scrape over ``window_s``. Label values are camera ids, kind names, verdict and reason names:
bounded by the configuration, never a user name.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily

from vigie.contracts.v1 import Incident, Verdict

NS = 1_000_000_000
DAY_S = 86400.0
#: Smallest and largest window of a query, seconds (``?window_s=`` of ``/api/rates``).
MIN_WINDOW_S, MAX_WINDOW_S = 3600.0, 30 * DAY_S
#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054
CONFIRMED, FALSE_ALARM, TEST, UNJUDGED = (Verdict.KIND_CONFIRMED, Verdict.KIND_FALSE_ALARM, Verdict.KIND_TEST,
                                          Verdict.KIND_UNSPECIFIED)
#: Verdict label values of the counter.
VERDICT_NAMES = {CONFIRMED: "confirmed", FALSE_ALARM: "false_alarm", TEST: "test", UNJUDGED: "none"}


def reason_name(reason: int) -> str:
    """``Verdict.Reason`` as a short lower-case word: ``reflection``, ``shadow_or_light``, ``unspecified``."""
    try:
        return Verdict.Reason.Name(reason).removeprefix("REASON_").lower()
    except ValueError:
        return "unspecified"


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``successes / n`` (95 % by default); None when ``n`` is 0.

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference", Journal of the
    American Statistical Association 22 (158): 209-212, 1927; recommended over the normal (Wald) interval for
    small counts and proportions near 0 or 1 by A. Agresti and B. A. Coull, "Approximate is better than
    'exact' for interval estimation of binomial proportions", The American Statistician 52 (2): 119-126, 1998.
    With p = successes/n: centre (p + z²/2n) / (1 + z²/n), half-width z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²).

    Raises ValueError for counts out of ``0 <= successes <= n``.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"expected 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return None
    p, z2 = successes / n, z * z
    scale = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def dominant(reasons: Counter, false_alarms: int, most: int = 3) -> list[str]:
    """The reasons that dominate the false alarms, e.g. ``["reflection 7/9"]``: the most frequent first (ties
    by name), taken until they make at least half of ``false_alarms``, at most ``most`` of them."""
    out, covered = [], 0
    for name, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:most]:
        if covered * 2 >= false_alarms:
            break
        out.append(f"{name.replace('_', ' ')} {count}/{false_alarms}")
        covered += count
    return out


@dataclass
class Tally:
    """The verdicts of one group of closed incidents: counts, the rate of false alarms and their reasons."""

    closed: int = 0
    confirmed: int = 0
    false_alarms: int = 0
    tests: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, verdict: int, reason: int, n: int = 1) -> None:
        """Count ``n`` closed incidents with this verdict kind and reason."""
        self.closed += n
        if verdict == CONFIRMED:
            self.confirmed += n
        elif verdict == FALSE_ALARM:
            self.false_alarms += n
            self.reasons[reason_name(reason)] += n
        elif verdict == TEST:
            self.tests += n

    @property
    def judged(self) -> int:
        """Verdicts that count in the rate: confirmed + false alarms (tests and unjudged left out)."""
        return self.confirmed + self.false_alarms

    @property
    def rate(self) -> float | None:
        """false / (confirmed + false), or None without such verdicts."""
        return self.false_alarms / self.judged if self.judged else None

    def as_json(self) -> dict[str, Any]:
        """Counts, ``rate`` and ``interval`` ([low, high], 95 % Wilson; null without verdicts), reasons, dominant."""
        interval = wilson(self.false_alarms, self.judged)
        return {"closed": self.closed, "confirmed": self.confirmed, "false_alarms": self.false_alarms,
                "tests": self.tests, "unjudged": self.closed - self.judged - self.tests, "rate": self.rate,
                "interval": list(interval) if interval else None, "reasons": dict(sorted(self.reasons.items())),
                "dominant": dominant(self.reasons, self.false_alarms)}


@dataclass
class Rates:
    """The figures of one window: per camera x kind, per camera x kind x zone, per kind and overall."""

    window_s: float
    now_ns: int
    flag_rate: float
    min_verdicts: int
    pairs: dict[tuple[str, str], Tally] = field(default_factory=dict)
    zones: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    kinds: dict[str, Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)

    def flagged(self, tally: Tally) -> bool:
        """True when ``tally``'s rate is over ``flag_rate`` with at least ``min_verdicts`` verdicts."""
        return tally.judged >= self.min_verdicts and tally.rate is not None and tally.rate > self.flag_rate

    def as_json(self) -> dict[str, Any]:
        """The JSON of ``/api/rates``: pairs (worst rate first) with their zones, kinds, overall."""
        zones: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (camera, kind, zone), tally in sorted(self.zones.items()):
            zones.setdefault((camera, kind), []).append({"zone": zone, **tally.as_json()})
        pairs = [{"camera": camera, "kind": kind, **tally.as_json(), "flagged": self.flagged(tally),
                  "zones": zones[camera, kind]}
                 for (camera, kind), tally in sorted(self.pairs.items(), key=lambda i: (-(i[1].rate or 0.0), i[0]))]
        return {"window_s": self.window_s, "to_ns": self.now_ns, "from_ns": self.now_ns - int(self.window_s * NS),
                "flag_rate": self.flag_rate, "min_verdicts": self.min_verdicts, "pairs": pairs,
                "kinds": [{"kind": kind, **t.as_json()} for kind, t in sorted(self.kinds.items())],
                "overall": self.overall.as_json()}


class _Closed:
    """One closed incident: the small record kept per incident id."""

    __slots__ = ("revision", "closed_ns", "camera", "kind", "zone", "verdict", "reason")

    def __init__(self, incident: Incident, closed_ns: int) -> None:
        self.revision = incident.revision
        self.closed_ns = closed_ns
        self.camera = sys.intern(incident.camera_id)
        self.kind = sys.intern(incident.kind)
        self.zone = sys.intern(incident.zone)
        self.verdict = incident.verdict.kind
        self.reason = incident.verdict.reason


class VerdictStats:
    """The closing verdicts of the incidents closed in the last ``keep_s`` seconds, and their rates.

    Args:
        window_s: default window of :meth:`rates` and of the gauges, seconds.
        flag_rate: a pair is flagged over this rate (in [0, 1]) ...
        min_verdicts: ... with at least this many verdicts (confirmed + false alarms).
        registry: Prometheus registry for the counter and the gauges (None: no metrics).
        keep_s: records kept, seconds of closing time (the largest window a query may ask).
        clock_ns: wall clock, ns since the Unix epoch (tests pass their own).

    Raises ValueError for a window outside ``(0, keep_s]``.
    """

    def __init__(self, window_s: float = 7 * DAY_S, flag_rate: float = 0.5, min_verdicts: int = 10,
                 registry: CollectorRegistry | None = None, *, keep_s: float = MAX_WINDOW_S,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if not 0 < window_s <= keep_s:
            raise ValueError(f"window_s must be in (0, keep_s={keep_s}], got {window_s}")
        self.window_s, self.flag_rate, self.min_verdicts = window_s, flag_rate, min_verdicts
        self.keep_ns = int(keep_s * NS)
        self._clock_ns = clock_ns
        self._records: dict[str, _Closed] = {}
        self._expiry: list[tuple[int, str]] = []  # (closed_ns, id), lazily cleaned: a reclosed id has two
        self._verdicts = None
        if registry is not None:
            self._verdicts = PromCounter("vigie_station_verdicts", "Closing verdicts read, by camera, kind, "
                                         "verdict and reason", ["camera", "kind", "verdict", "reason"],
                                         registry=registry)
            registry.register(_Gauges(self))

    def __len__(self) -> int:
        return len(self._records)

    def observe(self, incident: Incident) -> None:
        """Take in one revision of an incident (any state); older or equal revisions than the one kept are ignored."""
        known = self._records.get(incident.id)
        if known is not None and known.revision >= incident.revision:
            return
        if incident.state != Incident.STATE_CLOSED:
            if known is not None:  # reopened: its verdict is withdrawn until it is closed again
                del self._records[incident.id]
            return
        closed_ns = incident.closed_ns or incident.verdict.at_ns or incident.updated_ns
        self.prune()
        if closed_ns < self._clock_ns() - self.keep_ns:
            return
        record = self._records[incident.id] = _Closed(incident, closed_ns)
        heapq.heappush(self._expiry, (closed_ns, incident.id))
        if self._verdicts is not None and (known is None or known.closed_ns != closed_ns):  # a new closing
            reason = reason_name(record.reason) if record.reason else "none"
            self._verdicts.labels(camera=record.camera, kind=record.kind, verdict=VERDICT_NAMES.get(
                record.verdict, "none"), reason=reason).inc()

    def prune(self) -> None:
        """Drop the records of incidents closed more than ``keep_s`` ago."""
        horizon = self._clock_ns() - self.keep_ns
        while self._expiry and self._expiry[0][0] < horizon:
            closed_ns, incident_id = heapq.heappop(self._expiry)
            record = self._records.get(incident_id)
            if record is not None and record.closed_ns == closed_ns:
                del self._records[incident_id]
        if len(self._expiry) > 2 * len(self._records) + 1024:  # many reopened or reclosed: rebuild the heap
            self._expiry = [(r.closed_ns, i) for i, r in self._records.items()]
            heapq.heapify(self._expiry)

    def rates(self, window_s: float | None = None) -> Rates:
        """The figures of the incidents closed in the last ``window_s`` seconds (default: the configured window).

        Raises ValueError for a window outside ``(0, keep_s]``.
        """
        window_s = self.window_s if window_s is None else window_s
        if not 0 < window_s * NS <= self.keep_ns:
            raise ValueError(f"window_s must be in (0, {self.keep_ns / NS:g}], got {window_s}")
        now = self._clock_ns()
        since = now - int(window_s * NS)
        self.prune()
        out = Rates(window_s, now, self.flag_rate, self.min_verdicts)
        same = Counter((r.camera, r.kind, r.zone, r.verdict, r.reason) for r in self._records.values()
                       if r.closed_ns >= since)  # a few thousand keys for a hundred thousand records
        for (camera, kind, zone, verdict, reason), n in same.items():
            for groups, key in ((out.pairs, (camera, kind)), (out.zones, (camera, kind, zone)), (out.kinds, kind)):
                tally = groups.get(key)
                if tally is None:
                    tally = groups[key] = Tally()
                tally.add(verdict, reason, n)
            out.overall.add(verdict, reason, n)
        return out


class _Gauges:
    """Prometheus collector of the rate and flag gauges, computed at each scrape over the stats' window."""

    def __init__(self, stats: VerdictStats) -> None:
        self.stats = stats

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rates = self.stats.rates()
        rate, flagged = self._families()
        for (camera, kind), tally in sorted(rates.pairs.items()):
            if tally.rate is not None:
                rate.add_metric([camera, kind], tally.rate)
            flagged.add_metric([camera, kind], float(rates.flagged(tally)))
        yield rate
        yield flagged

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        window = f"{self.stats.window_s / 3600:g} h"
        return (GaugeMetricFamily("vigie_station_false_alarm_rate", f"False alarms / (confirmed + false) over "
                                  f"the last {window}", labels=["camera", "kind"]),
                GaugeMetricFamily("vigie_station_false_alarm_flagged", f"1 when the camera-kind pair's false-alarm "
                                  f"rate over the last {window} is over the flag threshold", labels=["camera", "kind"]))
