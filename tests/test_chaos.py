"""The chaos suite, shortened: each fault in its own run on a private broker, 0 lost and 0 duplicated incidents.

`make chaos` runs the full version (60 events from 600 anomalies); these runs use fewer events
so that the suite stays short, but the same code, processes and broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.clips import data_path
from vigie.chaos.cluster import PrivateBroker
from vigie.chaos.footage import FOOTAGE_FAULTS, run_footage_fault
from vigie.chaos.rtsp_server import rtsp_server_unavailable
from vigie.chaos.events import anomalies_of, event_of, make_events, opened_by_event, tally
from vigie.chaos.scenarios import ChaosPlan, run_fault
from vigie.correlator.incidents import iou
from vigie.contracts.v1 import Incident

pytestmark = pytest.mark.broker

SHORT = ChaosPlan(events=12, per_event=8, cameras=4, rate=4.0, down_s=3.0, settle_s=4.0, timeout_s=120.0)


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory) -> PrivateBroker:
    """A broker of this module's own: the faults restart it without touching the session's broker."""
    broker = PrivateBroker(tmp_path_factory.mktemp("chaos") / "broker")
    broker.start()
    yield broker
    broker.stop()


def test_events_are_distinct_places_and_the_tally_counts_lost_and_duplicated() -> None:
    """The known set: events of one camera never overlap (so each must be one incident); the tally sees a
    missing event as lost, a second incident of an event as a duplicate and an unknown one as a stray."""
    events = make_events(24, 6)
    for a in events:
        for b in events:
            if a.index < b.index and a.camera == b.camera:
                boxes = [anomalies_of([e], 1, 1.0)[0].regions[0] for e in (a, b)]
                assert iou(*boxes) == 0.0
    anomalies = anomalies_of(events, 3, 1.0)
    assert len(anomalies) == 72 and {event_of(a.id) for a in anomalies} == set(range(24))
    incidents = [Incident(id=f"inc-{n}", opened_by=f"chaos-e{n}-a0") for n in range(23)]  # event 23 lost
    incidents += [Incident(id="inc-again", opened_by="chaos-e5-a2"), Incident(id="inc-x", opened_by="other")]
    counted = tally([e.index for e in events], incidents, opened_by_event)
    assert (counted.lost, counted.duplicated, counted.strays) == (1, 1, 1)
    assert counted.per_event[23] == 0 and counted.per_event[5] == 2


@pytest.mark.parametrize("fault", ["correlator-kill", "correlator-join-leave", "broker-restart", "station-kill"])
def test_fault_loses_and_duplicates_no_incident(fault: str, private_broker: PrivateBroker, tmp_path: Path) -> None:
    """A correlator SIGKILLed mid-stream, a second correlator joining then the first killed, the broker
    SIGKILLed and restarted: every event still gives exactly one incident (the correlator once lost up to
    two thirds of them after a rebalance: its table's changelog was read back as JSON)."""
    outcome = asyncio.run(run_fault(fault, SHORT, private_broker, tmp_path))
    assert outcome.events == SHORT.events
    assert (outcome.lost, outcome.duplicated, outcome.strays) == (0, 0, 0), outcome
    assert outcome.recovery_s is not None, "no incident was published after the fault"
    assert all(code == 0 for code in outcome.exit_codes.values()), outcome.exit_codes


def test_soak_judges_growth_after_the_warm_up() -> None:
    """The soak's verdict: growth is measured from the first sample after the warm-up to the last, so the
    start-up allocations do not count, and a process that keeps growing is not flat."""
    from vigie.chaos.soak import Growth, Sample, read_sample

    steady = Growth("steady", [Sample(0, 20.0, 10, 5), Sample(100, 300.0, 30, 9), Sample(1000, 310.0, 31, 9)])
    assert steady.judge(0.1, 50.0, 0.10)["flat"]
    leaking = Growth("leaking", [Sample(0, 20.0, 10, 5), Sample(100, 300.0, 30, 9), Sample(1000, 400.0, 30, 9)])
    verdict = leaking.judge(0.1, 50.0, 0.10)
    assert not verdict["flat"] and verdict["rss_growth_mib"] == 100.0
    threads = Growth("threads", [Sample(100, 300.0, 30, 20), Sample(1000, 300.0, 30, 25)])
    assert not threads.judge(0.1, 50.0, 0.10)["flat"]
    import os

    me = read_sample(os.getpid(), 0.0)
    assert me is not None and me.rss_mib > 1 and me.fds > 0 and me.threads >= 1


@pytest.mark.data
@pytest.mark.parametrize("fault", FOOTAGE_FAULTS)
def test_frame_path_fault_gives_one_incident_per_left_bag(fault: str, private_broker: PrivateBroker,
                                                           tmp_path: Path) -> None:
    """Real footage (ABODA video 4 on two cameras) through grabber, detector and correlator while the detector
    is killed or replaced, the grabber killed, the RTSP cameras restarted or the broker restarted: each camera's
    left bag gives exactly one incident (a detector restarting cold mid-scene once raised the owner's ghost as a
    second one; a detector used to exit when the broker went away)."""
    clip = data_path("aboda_video4", "video4.avi")
    if fault == "rtsp-restart" and (why := rtsp_server_unavailable()):
        pytest.skip(f"RTSP server: {why}")
    outcome = asyncio.run(run_footage_fault(fault, SHORT, private_broker, tmp_path, clip, cameras=2))
    assert (outcome.lost, outcome.duplicated, outcome.strays) == (0, 0, 0), outcome
    assert outcome.recovery_s is not None and outcome.recovery_s < SHORT.timeout_s, outcome
    assert all(code == 0 for code in outcome.exit_codes.values()), outcome.exit_codes
