"""Which cameras a detector keeps, loses and warms up across rebalances (vigie.detector.ownership)."""

from __future__ import annotations

from aiokafka import TopicPartition

from vigie.detector.ownership import Ownership

P = [TopicPartition("frames", p) for p in range(3)]


def test_only_cameras_of_partitions_not_handed_back_are_lost_and_gained_ones_warm_up() -> None:
    """Defect: a rebalance stopped the detector; now the eager protocol's revoke-all/assign pair keeps the
    cameras of partitions that come back warm, forgets the others, and reports gained cameras warming."""
    owned = Ownership(lambda camera: 2.0 if camera != "quick" else 0.0)
    assert owned.assigned(P[:2]) == []
    for t in range(6):  # 2.5 s of frames at 2 fps
        owned.seen("kept", P[0], t / 2)
        owned.seen("moved", P[1], t / 2)
    assert owned.warming() == [] and owned.health()["cameras"]["kept"] == {
        "state": "warm", "partition": 0, "frames": 6, "seen_s": 2.5, "warmup_s": 2.0}
    owned.revoked(P[:2])
    assert not owned.owns(P[0]) and owned.health()["partitions"] == []
    assert owned.assigned([P[0], P[2]]) == ["moved"]  # P[1] went to another detector
    owned.seen("gained", P[2], 100.0)
    owned.seen("quick", P[2], 100.0)
    assert owned.warming() == ["gained"]  # "quick" needs no warm-up; "kept" stayed warm
    assert owned.health()["partitions"] == [0, 2] and owned.rebalances == 2
    owned.seen("kept", P[0], 1.0)  # its stream restarted: it warms up again
    owned.reset("quick")  # an analytic failed on it
    assert owned.warming() == ["gained", "kept"] and "quick" not in owned.health()["cameras"]
