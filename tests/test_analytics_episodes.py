"""Unit tests of the shared episode and emission helpers (vigie.detector.analytics.episodes)."""

from __future__ import annotations

import pytest

from vigie.detector.analytics.episodes import (
    RUN_ID, WITH_SUB, EmissionSchedule, Emission, Episodes, TrackIds, new_run_id, run_of,
)

S = 1_000_000_000  # one second in ns
T0 = 1_700_000_000 * S  # stream clock: ns since the epoch


def test_raised_after_min_duration_then_repeated():
    ep = Episodes("density", repeat_s=1.0, release_s=1.0, min_duration_s=2.0)
    got = [(k, ep.update("cam", T0 + k * S // 2, True, 0)) for k in range(9)]  # 0 .. 4 s, every 0.5 s
    emitted = [(k, e) for k, e in got if e is not None]
    assert emitted == [(4, Emission(f"cam/density/{RUN_ID}-1", 2.0)), (6, Emission(f"cam/density/{RUN_ID}-1", 3.0)),
                       (8, Emission(f"cam/density/{RUN_ID}-1", 4.0))]


def test_gap_shorter_than_release_keeps_the_episode():
    ep = Episodes("x", repeat_s=0.0, release_s=1.0, min_duration_s=1.5)
    assert ep.update("cam", T0, True) is None
    assert ep.update("cam", T0 + S // 2, False) is None
    assert ep.update("cam", T0 + S, True) is None  # 1 s since the last one: not more than release_s
    assert ep.update("cam", T0 + 3 * S // 2, True) == (f"cam/x/{RUN_ID}-1", 1.5)  # the gap counted in the duration
    assert ep.update("cam", T0 + 2 * S, True) == (f"cam/x/{RUN_ID}-1", 2.0)  # repeat_s 0: every frame


def test_gap_longer_than_release_ends_the_episode():
    ep = Episodes("x", repeat_s=10.0, release_s=1.0, min_duration_s=1.0)
    assert ep.update("cam", T0, True) is None
    assert ep.update("cam", T0 + S, True) == (f"cam/x/{RUN_ID}-1", 1.0)
    assert ep.update("cam", T0 + 2 * S + 1, True) is None  # 1 s + 1 ns without: a new episode starts
    assert ep.update("cam", T0 + 3 * S + 1, True) == (f"cam/x/{RUN_ID}-2", 1.0)


def test_release_slack():
    strict = Episodes("x", repeat_s=0.0, release_s=1.0)
    slack = Episodes("x", repeat_s=0.0, release_s=1.0, release_slack_ns=1)
    for ep in (strict, slack):
        assert ep.update("cam", T0, True) == (f"cam/x/{RUN_ID}-1", 0.0)
    assert strict.update("cam", T0 + S + 1, True) == (f"cam/x/{RUN_ID}-2", 0.0)
    assert slack.update("cam", T0 + S + 1, True) == (f"cam/x/{RUN_ID}-1", (S + 1) / 1e9)


def test_time_going_backwards_ends_the_episode():
    ep = Episodes("fire", repeat_s=1.0, release_s=5.0)
    assert ep.update("cam", T0 + 10 * S, True) == (f"cam/fire/{RUN_ID}-1", 0.0)
    assert ep.update("cam", T0 + 9 * S, True) == (f"cam/fire/{RUN_ID}-2", 0.0)  # the stream restarted
    assert ep.update("cam", T0 + 9 * S + S // 2, True) is None


def test_schedule_and_absent_frames():
    ep = Episodes("fire", repeat_s=1.0, release_s=2.0)
    assert ep.update("c", T0, False) is None
    assert ep.update("c", T0, True) == (f"c/fire/{RUN_ID}-1", 0.0)
    assert ep.update("c", T0 + S // 2, True) is None
    assert ep.update("c", T0 + S - 1, True) is None
    assert ep.update("c", T0 + S, True) == (f"c/fire/{RUN_ID}-1", 1.0)


def test_sub_keys_are_separate_episodes_and_ids_count_per_camera():
    ep = Episodes("crowd", repeat_s=1.0, release_s=1.0, template=WITH_SUB)
    assert ep.update("cam", T0, True, "surge") == (f"cam/crowd/surge/{RUN_ID}-1", 0.0)
    assert ep.update("cam", T0, True, "running") == (f"cam/crowd/running/{RUN_ID}-2", 0.0)
    assert ep.update("other", T0, True, "running") == (f"other/crowd/running/{RUN_ID}-1", 0.0)
    assert ep.update("cam", T0 + S, False, "surge") is None
    assert ep.update("cam", T0 + S, True, "running") == (f"cam/crowd/running/{RUN_ID}-2", 1.0)


def test_ids_per_sub_key():
    ep = Episodes("tamper", repeat_s=1.0, release_s=0.5, template="{camera}/{prefix}/{sub}-{n}", ids_per_sub=True)
    assert ep.update("cam", T0, True, "blinded").track_id == f"cam/tamper/blinded-{RUN_ID}-1"
    assert ep.update("cam", T0, True, "moved").track_id == f"cam/tamper/moved-{RUN_ID}-1"
    assert ep.update("cam", T0 + S, True, "moved").track_id == f"cam/tamper/moved-{RUN_ID}-2"


def test_ids_never_reused_after_forget():
    ep = Episodes("fire", repeat_s=1.0, release_s=2.0, template=WITH_SUB)
    assert ep.update("a", T0, True, "q").track_id == f"a/fire/q/{RUN_ID}-1"
    assert ep.update("b", T0, True, "q").track_id == f"b/fire/q/{RUN_ID}-1"
    ep.forget("a")
    assert ep.update("a", T0 + 1, True, "q").track_id == f"a/fire/q/{RUN_ID}-2"
    assert ep.update("b", T0 + 1, True, "q") is None  # b's episode survives a's forget


def test_track_ids_and_schedule():
    ids = TrackIds("intrusion")
    assert [ids.new("cam"), ids.new("cam"), ids.new("gate"), ids.new("cam")] == [
        f"cam/intrusion/{RUN_ID}-1", f"cam/intrusion/{RUN_ID}-2", f"gate/intrusion/{RUN_ID}-1",
        f"cam/intrusion/{RUN_ID}-3"]
    with pytest.raises(ValueError):
        TrackIds("x", template="{camera}/x")
    every = EmissionSchedule(1.0)
    assert every.due(None, T0)
    assert not every.due(T0, T0 + S - 1) and every.due(T0, T0 + S)
    assert not every.due(T0, T0 - S)  # before the last emission: not due
    frames = EmissionSchedule(0.0)
    assert frames.due(T0, T0) and frames.due(T0, T0 + 1)


def test_track_ids_carry_the_run_so_a_restarted_detector_never_reuses_one():
    """Defect: track ids restarted at 1 in every detector process, so after a restart a new object could
    join an old incident by its track id. Each run now writes its run id before the serial number."""
    before, after = TrackIds("abandoned", run="0000000001"), TrackIds("abandoned", run="0000000002")
    assert before.new("cam") == "cam/abandoned/0000000001-1" and after.new("cam") == "cam/abandoned/0000000002-1"
    assert run_of(before.new("cam")) == "0000000001"
    tamper = Episodes("tamper", 1.0, 0.5, template="{camera}/{prefix}/{sub}-{n}", ids_per_sub=True, run="0000000003")
    assert run_of(tamper.update("cam", T0, True, "moved").track_id) == "0000000003"
    assert run_of("") is None and run_of("cam/abandoned/1") is None
    assert RUN_ID != new_run_id() and run_of(f"cam/x/{RUN_ID}-7") == RUN_ID
    with pytest.raises(ValueError, match="must end with"):
        TrackIds("x", template="{n}/{camera}")
    with pytest.raises(ValueError, match="10 characters"):
        TrackIds("x", run="BAD")
