"""False-alarm rates from verdicts (vigie.station.verdicts), without a broker: a scripted sequence of closed
incidents, an injected clock."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
from prometheus_client import CollectorRegistry

from tests.rates_script import HOUR_NS, WEEK, C, F, R, closed, counts, script
from vigie.station.verdicts import DAY_S, VerdictStats, dominant, wilson

T0 = 1_790_000_000 * 10**9
DAY_NS = 24 * HOUR_NS


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def fed(clock: Clock, registry: CollectorRegistry | None = None) -> VerdictStats:
    stats = VerdictStats(registry=registry, clock_ns=clock)
    for item in script(T0):
        stats.observe(item)
    return stats


def test_wilson_interval_matches_hand_computed_values() -> None:
    """Wilson (1927) 95 %: 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634], 9/10 -> [0.5958, 0.9821]."""
    for (k, n), (low, high) in {(0, 10): (0.0, 0.2775), (5, 10): (0.2366, 0.7634), (9, 10): (0.5958, 0.9821),
                                (6, 6): (0.6097, 1.0), (1, 1): (0.2065, 1.0)}.items():
        assert wilson(k, n) == pytest.approx((low, high), abs=1e-4), (k, n)
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_counts_rates_intervals_reasons_and_flags_over_the_week() -> None:
    """Per pair, zone, kind and overall: exact counts; tests out of the rate; the reopened incident counts its
    latest verdict once; the 8-day-old one is outside 7 days; only cam-1/abandoned is flagged, by reflection."""
    rates = fed(Clock()).rates().as_json()
    pairs = {(p["camera"], p["kind"]): p for p in rates["pairs"]}
    assert set(pairs) == set(WEEK)
    for key, (figures, rate, interval, flagged) in WEEK.items():
        assert counts(pairs[key]) == figures, key
        assert pairs[key]["rate"] == pytest.approx(rate) and pairs[key]["flagged"] is flagged, key
        assert pairs[key]["interval"] == pytest.approx(interval, abs=1e-4), key
    flagged = pairs["cam-1", "abandoned"]
    assert flagged["reasons"] == {"reflection": 7, "shadow_or_light": 2} and flagged["dominant"] == ["reflection 7/9"]
    assert [(z["zone"], counts(z)) for z in flagged["zones"]] == [("0", (9, 0, 7, 2, 0)), ("1", (3, 1, 2, 0, 0))]
    assert pairs["cam-2", "abandoned"]["dominant"] == ["person still 3/5"]
    assert [p["camera"] + "/" + p["kind"] for p in rates["pairs"]] == [  # worst rate first
        "cam-1/intrusion", "cam-1/abandoned", "cam-2/abandoned"]
    assert {k["kind"]: counts(k) for k in rates["kinds"]} == {"abandoned": (22, 6, 14, 2, 0),
                                                              "intrusion": (7, 0, 6, 0, 1)}
    assert counts(rates["overall"]) == (29, 6, 20, 2, 1) and rates["overall"]["rate"] == pytest.approx(20 / 26)


def test_window_slides_with_the_clock_and_memory_is_released() -> None:
    """24 h leaves out the 30-hour-old shadows (then 7 of 8 verdicts: too few to flag); 30 days takes the
    8-day-old one; as the clock moves past 7 days the older closings leave the window, past 30 days memory."""
    clock = Clock()
    stats = fed(clock)
    day = {(p["camera"], p["kind"]): p for p in stats.rates(DAY_S).as_json()["pairs"]}
    assert counts(day["cam-1", "abandoned"]) == (10, 1, 7, 2, 0) and not day["cam-1", "abandoned"]["flagged"]
    month = {(p["camera"], p["kind"]): p for p in stats.rates(30 * DAY_S).as_json()["pairs"]}
    assert counts(month["cam-2", "abandoned"]) == (11, 5, 6, 0, 0)
    assert len(stats) == 30
    clock.now = T0 + 7 * DAY_NS - int(2.5 * HOUR_NS)  # the 1 h and 2 h old closings stay, the 3 h old ones leave
    pairs = {(p["camera"], p["kind"]): counts(p) for p in stats.rates().as_json()["pairs"]}
    assert pairs == {("cam-1", "abandoned"): (10, 1, 7, 2, 0), ("cam-1", "intrusion"): (7, 0, 6, 0, 1)}
    clock.now = T0 + 31 * DAY_NS
    stats.prune()
    assert len(stats) == 0 and stats.rates().as_json()["pairs"] == []


def test_reopened_then_closed_counts_the_latest_verdict_once() -> None:
    """Closed false, reopened (not counted while open), closed confirmed: one confirmed; an old revision read
    again changes nothing; a closing older than 30 days is not kept."""
    stats = VerdictStats(clock_ns=Clock())
    first = closed(1, "cam-9", "abandoned", F, R.REASON_REFLECTION, age_h=5, now_ns=T0)
    reopened = closed(1, "cam-9", "abandoned", 0, age_h=4, now_ns=T0, revision=3)
    reopened.state = 1
    again = closed(1, "cam-9", "abandoned", C, age_h=3, now_ns=T0, revision=4)
    figures = []
    for item in (first, reopened, again, first):
        stats.observe(item)
        figures.append(counts(stats.rates().overall.as_json()))
    assert figures == [(1, 0, 1, 0, 0), (0, 0, 0, 0, 0), (1, 1, 0, 0, 0), (1, 1, 0, 0, 0)]
    stats.observe(closed(2, "cam-9", "abandoned", F, age_h=31 * 24, now_ns=T0))
    assert len(stats) == 1


def test_metrics_count_verdicts_and_gauge_rates_and_flags() -> None:
    """The counter by camera, kind, verdict and reason; the rate and flag gauges over the window."""
    registry = CollectorRegistry()
    fed(Clock(), registry)
    value = registry.get_sample_value
    assert value("vigie_station_verdicts_total", {"camera": "cam-1", "kind": "abandoned", "verdict": "false_alarm",
                                                  "reason": "reflection"}) == 7
    assert value("vigie_station_verdicts_total", {"camera": "cam-1", "kind": "abandoned", "verdict": "test",
                                                  "reason": "none"}) == 2
    assert value("vigie_station_false_alarm_rate", {"camera": "cam-1", "kind": "abandoned"}) == pytest.approx(0.9)
    assert value("vigie_station_false_alarm_rate", {"camera": "cam-2", "kind": "abandoned"}) == pytest.approx(0.5)
    assert [value("vigie_station_false_alarm_flagged", {"camera": c, "kind": k}) for c, k in WEEK] == [1, 0, 0]


def test_dominant_reasons_take_the_most_frequent_until_half() -> None:
    from collections import Counter

    assert dominant(Counter(shadow_or_light=4, reflection=3, vegetation=2), 9) == ["shadow or light 4/9",
                                                                                  "reflection 3/9"]
    assert dominant(Counter(), 0) == []


def test_one_record_costs_under_450_bytes() -> None:
    """Memory bound of the module's docstring: measured with tracemalloc over 20 000 closed incidents."""
    items = []
    for n in range(20_000):
        item = closed(n, f"cam-{n % 50}", "abandoned", F, R.REASON_REFLECTION, zone=str(n % 3), age_h=n / 1000,
                      now_ns=T0)
        item.id = str(uuid.uuid4())
        items.append(item)
    stats = VerdictStats(clock_ns=Clock())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for item in items:
        stats.observe(item)
    per_record = (tracemalloc.get_traced_memory()[0] - before) / len(stats)
    tracemalloc.stop()
    assert len(stats) == 20_000
    print(f"{per_record:.0f} bytes per closed incident")
    assert per_record < 450
