"""Crowd-movement analytic on real footage (UCSD ped2) and on synthetic motion."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

from tests.clips import T0_NS, data_path, decode_frames
from vigie.detector.analytics.crowd import CrowdMovement, CrowdMovementConfig
from vigie.detector.bench import synthetic_frames
from vigie.detector.preprocess import to_batch

UCSD_FPS = 10.0  # the dataset's nominal rate (no timing metadata in the files)
FPS = 5.0  # what the grabber samples


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Frame-level ROC AUC (Mann-Whitney U), ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@pytest.mark.data
def test_ucsd_ped2_cyclist_scores_higher_than_pedestrians():
    torch.set_num_threads(1)
    train = [decode_frames(str(data_path("ucsd_ped2_train", name)), UCSD_FPS, FPS, pattern="*.png")
             for name in ("Train001", "Train002", "Train003")]
    test = decode_frames(str(data_path("ucsd_ped2_test001", "frames")), UCSD_FPS, FPS, pattern="*.tif")
    assert len(test) == 90
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=10.0))
    # warm-up: the training clips are ordinary activity of the same camera, played one after
    # the other with a 5 s gap (a gap restarts the frame difference, not the baseline)
    offset = 0
    for clip in train:
        for ns, img in clip:
            crowd.score(to_batch([img], ["ped2"], [ns + offset], FPS))
        offset += clip[-1][0] - T0_NS + int(5e9)
    scores, abnormal = [], []
    for ns, img in test:
        frame_no = round((ns - T0_NS) / 1e9 * UCSD_FPS) + 1  # 1-based, as in gt_frames.txt
        (s,) = crowd.score(to_batch([img], ["ped2"], [ns + offset], FPS)).tolist()
        scores.append(s)
        abnormal.append(frame_no >= 61)  # gt_frames.txt: abnormal 61-180 (a cyclist)
    scores, abnormal = np.array(scores[1:]), np.array(abnormal[1:])  # frame 1 follows a gap: no motion
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[abnormal].mean() > scores[~abnormal].mean()
    assert _auc(scores, abnormal) > 0.6


def _run(crowd, frames, camera="cam"):
    out = []
    for ns, img in frames:
        for det in crowd.process(to_batch([img], [camera], [ns], FPS)):
            out.append(((ns - T0_NS) / 1e9, det))
    return out


def _same_scene_stream(phases, size=(320, 180)):
    frames = []
    for seconds, movers, speed in phases:
        # same seed -> same scene texture; the movers differ by count and speed
        frames += synthetic_frames(int(seconds * FPS), size, n_movers=movers, speed_px=speed, seed=11)
    return [(T0_NS + int(i * 1e9 / FPS), f) for i, f in enumerate(frames)]


def test_steady_motion_is_quiet_and_a_surge_is_detected():
    frames = _same_scene_stream([(60.0, 6, 4.0), (8.0, 30, 12.0)])
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=20.0))
    dets = _run(crowd, frames)
    assert [t for t, _ in dets if t < 60.0] == [], "steady motion raised an alert"
    surge = [(t, d) for t, d in dets if t >= 60.0]
    assert surge, "the surge was not detected"
    assert surge[0][0] <= 60.0 + 4.0  # min_duration_s = 2 s, plus a little
    assert len({d.track_id for _, d in surge}) == 1
    for _, d in surge:
        assert d.kind == "crowd_movement" and 0.5 <= d.score <= 1.0
        (box,) = d.boxes
        assert box.w > 0 and box.h > 0 and box.x + box.w <= 320 and box.y + box.h <= 180


def test_a_short_spike_is_not_an_alert():
    frames = _same_scene_stream([(40.0, 6, 4.0), (1.0, 30, 12.0), (10.0, 6, 4.0)])
    dets = _run(CrowdMovement(CrowdMovementConfig(warmup_s=20.0, min_duration_s=2.0)), frames)
    assert dets == []


def test_batch_of_two_cameras_equals_one_by_one():
    a = _same_scene_stream([(30.0, 6, 4.0), (5.0, 30, 12.0)])
    b = _same_scene_stream([(35.0, 4, 3.0)], size=(320, 180))
    cfg = CrowdMovementConfig(warmup_s=10.0)
    single = {}
    for cam, fr in (("a", a), ("b", b)):
        single[cam] = [(t, d.track_id, d.boxes, round(d.score, 5)) for t, d in _run(CrowdMovement(cfg), fr, cam)]
    batched, got = CrowdMovement(cfg), {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        for d in batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS)):
            got["ab"[d.index]].append(((ns - T0_NS) / 1e9, d.track_id, d.boxes, round(d.score, 5)))
    assert single["a"], "camera a has a surge"
    assert got == single


def test_score_needs_warm_up_and_stays_in_unit_interval():
    frames = _same_scene_stream([(12.0, 6, 4.0)])
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=10.0))
    scores = [crowd.score(to_batch([img], ["c"], [ns], FPS)).item() for ns, img in frames]
    assert all(s == 0.0 for s in scores[: int(9 * FPS)])
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_config_is_strict():
    with pytest.raises(pydantic.ValidationError):
        CrowdMovementConfig(z_treshold=3)
    with pytest.raises(pydantic.ValidationError):
        CrowdMovementConfig(grid_cols=0)
    for name, field in CrowdMovementConfig.model_fields.items():
        assert field.description, name
