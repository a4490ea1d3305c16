"""A scripted sequence of closed incidents with the operators' verdicts, and the figures it must give.

Over 7 days: cam-1/abandoned 9 false alarms (7 reflection, 2 shadow) of 10 verdicts and 2 tests (flagged);
cam-2/abandoned 5 of 10 (not over 0.5), one of its incidents closed false, reopened, then closed confirmed;
cam-1/intrusion 6 of 6 (too few verdicts to flag) and one closed without a verdict; one open incident.
"""

from __future__ import annotations

from tests.station_support import NS, incident
from vigie.contracts.v1 import Incident, Verdict

HOUR_NS = 3600 * NS
F, C, T = Verdict.KIND_FALSE_ALARM, Verdict.KIND_CONFIRMED, Verdict.KIND_TEST
R = Verdict


def closed(n: int, camera: str, kind: str, verdict: int, reason: int = 0, *, zone: str = "", age_h: float,
           now_ns: int, revision: int = 2) -> Incident:
    """Incident ``inc-<n>`` closed ``age_h`` hours before ``now_ns`` with ``verdict`` (0: none) and ``reason``."""
    item = incident(n, state=Incident.STATE_CLOSED, revision=revision)
    at = now_ns - int(age_h * HOUR_NS)
    item.camera_id, item.kind, item.zone, item.closed_ns, item.updated_ns = camera, kind, zone, at, at
    if verdict:
        item.verdict.CopyFrom(Verdict(kind=verdict, reason=reason, author="op-7", at_ns=at))
    return item


def script(now_ns: int) -> list[Incident]:
    """The revisions in publication order (oldest change first)."""
    def c(n: int, camera: str, kind: str, verdict: int, reason: int = 0, **kw) -> Incident:  # noqa: ANN003
        return closed(n, camera, kind, verdict, reason, now_ns=now_ns, **kw)

    items = [c(n, "cam-1", "abandoned", F, R.REASON_REFLECTION, zone="0", age_h=2) for n in range(7)]
    items += [c(n, "cam-1", "abandoned", F, R.REASON_SHADOW_OR_LIGHT, zone="1", age_h=30) for n in (7, 8)]
    items += [c(9, "cam-1", "abandoned", C, zone="1", age_h=2)]
    items += [c(n, "cam-1", "abandoned", T, zone="0", age_h=2) for n in (10, 11)]
    items += [c(n, "cam-2", "abandoned", F, R.REASON_PERSON_STILL, age_h=3) for n in (20, 21, 22)]
    items += [c(n, "cam-2", "abandoned", F, R.REASON_OBJECT_OWNED, age_h=3) for n in (23, 24)]
    items += [c(n, "cam-2", "abandoned", C, age_h=3) for n in (25, 26, 27, 28)]
    reopened = c(29, "cam-2", "abandoned", 0, age_h=4, revision=3)
    reopened.state, reopened.closed_ns = Incident.STATE_NEW, 0
    items += [c(29, "cam-2", "abandoned", F, R.REASON_REFLECTION, age_h=5), reopened,
              c(29, "cam-2", "abandoned", C, age_h=3, revision=4)]
    items += [c(30, "cam-2", "abandoned", F, R.REASON_OTHER, age_h=8 * 24)]
    items += [c(n, "cam-1", "intrusion", F, R.REASON_VEGETATION, age_h=1) for n in range(40, 46)]
    items += [c(46, "cam-1", "intrusion", 0, age_h=1), incident(50)]
    return sorted(items, key=lambda i: i.updated_ns)


def counts(tally: dict) -> tuple[int, int, int, int, int]:
    """(closed, confirmed, false alarms, tests, unjudged) of a tally's JSON."""
    return tally["closed"], tally["confirmed"], tally["false_alarms"], tally["tests"], tally["unjudged"]


#: Figures over 7 days: (closed, confirmed, false, tests, unjudged), rate, Wilson 95 % (hand-computed), flagged.
WEEK = {
    ("cam-1", "abandoned"): ((12, 1, 9, 2, 0), 0.9, (0.5958, 0.9821), True),
    ("cam-2", "abandoned"): ((10, 5, 5, 0, 0), 0.5, (0.2366, 0.7634), False),
    ("cam-1", "intrusion"): ((7, 0, 6, 0, 1), 1.0, (0.6097, 1.0), False),
}
