"""Abandoned-object analytic started cold in the middle of a scene (a detector restart or a rebalance)."""

from __future__ import annotations

import pytest
import torch

from tests.clips import T0_NS, data_path, decode_video
from vigie.detector.analytics.abandoned import AbandonedObject, AbandonedObjectConfig
from vigie.detector.analytics.base import Box
from vigie.detector.preprocess import to_batch

FPS = 5.0


@pytest.mark.data
@pytest.mark.parametrize("start_s", [0.0, 3.0, 6.0, 9.6, 10.0, 11.0])
def test_started_mid_scene_before_the_bag_is_left_raises_only_the_bag(start_s):
    """Covers: a camera that starts cold mid-scene took its first frame as the long-term background,
    so a passer-by in it left a ghost raised as an abandoned object (start at 3 s: a ghost at the
    right edge; at 10 s: the owner's ghost), giving an event two incidents. Started at any of these
    points of ABODA video 4 before the bag is set down (~13-14.5 s), exactly one track, on the bag."""
    torch.set_num_threads(1)
    frames = decode_video(str(data_path("aboda_video4", "video4.avi")), FPS, 640)
    s = 640 / 720  # SOURCE.md box is in 720x480 pixels (approximate, own observation)
    bag = Box(round(452 * s), round(385 * s), round(50 * s), round(50 * s))
    analytic = AbandonedObject(AbandonedObjectConfig())
    first = frames[round(start_s * FPS)][0]
    warm_at, dets = None, []
    for ns, img in frames[round(start_s * FPS):]:
        dets += [((ns - T0_NS) / 1e9, d) for d in analytic.process(to_batch([img], ["cam"], [ns], FPS))]
        if warm_at is None and not analytic.warming("cam"):
            warm_at = (ns - first) / 1e9
    assert warm_at is not None and warm_at >= analytic.config.warmup_s - 1 / FPS
    tracks = {d.track_id for _, d in dets}
    assert len(tracks) == 1, f"started at {start_s} s: tracks {[(t, d.track_id, d.boxes) for t, d in dets]}"
    for t, d in dets:
        (box,) = d.boxes
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        assert box.iou(bag) > 0.2 or (bag.x <= cx <= bag.x + bag.w and bag.y <= cy <= bag.y + bag.h), (
            f"box {box} at {t:.1f} s is not on the bag {bag}")


def test_nothing_accrues_while_warming_and_forget_warms_up_again():
    """Covers: evidence gathered before the long-term background is bootstrapped raises ghosts; a
    camera is warming for ``warmup_s`` stream seconds after its first frame, and again after forget."""
    torch.set_num_threads(1)
    analytic = AbandonedObject(AbandonedObjectConfig(warmup_s=2.0))
    img = torch.zeros(120, 160, 3, dtype=torch.uint8).numpy()
    assert analytic.warming("cam")
    states = []
    for k in range(15):
        analytic.process(to_batch([img], ["cam"], [T0_NS + int(k * 1e9 / FPS)], FPS))
        states.append(analytic.warming("cam"))
    assert states[:9] == [True] * 9 and not any(states[10:])
    analytic.forget("cam")
    assert analytic.warming("cam")
    assert not AbandonedObject(AbandonedObjectConfig(warmup_s=0.0)).warming("cam")
