"""Crowd-movement analytic on real footage (UCSD ped2, PETS 2009) and on synthetic crowds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from tests.clips import T0_NS, data_path, decode_frames, decode_video
from vigie.detector.analytics.crowd import MODES, CrowdMovement, CrowdMovementConfig
from vigie.detector.analytics.zones import Zone
from vigie.detector.preprocess import to_batch

UCSD_FPS = 10.0  # the dataset's nominal rate (no timing metadata in the files)
FPS = 5.0  # what the grabber samples
SURGE, DISPERSAL, RUNNING = 1, 2, 3


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Frame-level ROC AUC (Mann-Whitney U), ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _abnormal(gt_file: Path, n: int) -> np.ndarray:
    """``(n,) bool`` abnormal frames from a UCSD ``gt_frames.txt`` (1-based inclusive ranges)."""
    out = np.zeros(n, dtype=bool)
    for line in gt_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            a, b = line.split("-")
            out[int(a) - 1:int(b)] = True
    return out


def _play(crowd, frames, camera="cam", fps=FPS, offset_ns=0):
    """Feed ``(time_ns, image)`` frames one by one; returns frame scores and ``[(t_s, detection)]``."""
    scores, dets = [], []
    for ns, img in frames:
        for det in crowd.process(to_batch([img], [camera], [ns + offset_ns], fps)):
            dets.append(((ns - T0_NS) / 1e9, det))
        scores.append(crowd.last_scores.item())
    return np.array(scores), dets


@pytest.fixture(scope="module")
def ped2():
    """Decoded UCSD ped2 training and test clips at 5 and 10 fps, ``{(name, fps): frames}``."""
    clips = {}
    for fps in (FPS, UCSD_FPS):
        for name in ("Train001", "Train002", "Train003"):
            clips[name, fps] = decode_frames(str(data_path("ucsd_ped2_train", name)), UCSD_FPS, fps, pattern="*.png")
        for name in ("ucsd_ped2_test001", "ucsd_ped2_test004"):
            clips[name, fps] = decode_frames(str(data_path(name, "frames")), UCSD_FPS, fps, pattern="*.tif")
    return clips


@pytest.mark.data
@pytest.mark.parametrize("fps", [FPS, UCSD_FPS])
@pytest.mark.parametrize("clip", ["ucsd_ped2_test001", "ucsd_ped2_test004"])
def test_ucsd_ped2_cyclists_and_carts_score_higher_than_walkers(ped2, clip, fps):
    torch.set_num_threads(1)
    # warm-up: the training clips (42 s of ordinary walking, same camera) played one after the other
    # with 5 s gaps (a gap restarts the frame difference, not the baseline); 30 s of learning suffice
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=30.0))
    offset = 0
    for name in ("Train001", "Train002", "Train003"):
        _, dets = _play(crowd, ped2[name, fps], "ped2", fps, offset)
        assert dets == [], f"an alarm on normal footage ({name})"
        offset += ped2[name, fps][-1][0] - T0_NS + int(5e9)
    frames = ped2[clip, fps]
    abnormal_all = _abnormal(data_path(clip, "gt_frames.txt"), 180)
    index = [round((ns - T0_NS) / 1e9 * UCSD_FPS) for ns, _ in frames]  # 0-based frame numbers
    scores, dets = _play(crowd, frames, "ped2", fps, offset)
    abnormal = abnormal_all[index]
    scores, abnormal = scores[1:], abnormal[1:]  # frame 1 follows a gap: no motion measured
    assert ((scores >= 0) & (scores <= 1)).all()
    auc = _auc(scores, abnormal)
    print(f"{clip} at {fps:g} fps: frame AUC {auc:.3f}, {len(dets)} detections")
    assert auc >= 0.85, f"frame-level AUC {auc:.3f}"
    for t, det in dets:  # whatever is raised is the fast movers, during the abnormal frames
        assert det.attributes["mode"] == RUNNING and det.track_id.startswith("ped2/crowd/running/")
        assert abnormal_all[round(t * UCSD_FPS)]


@pytest.mark.data
def test_pets2009_walkers_raise_no_crowd_alarm():
    torch.set_num_threads(1)
    frames = decode_video(str(data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi")), FPS, 640)
    crowd = CrowdMovement()
    # the clip is the camera's ordinary activity: learn it (looped up to warmup_s), then play it again
    offset, played = 0, 0.0
    while played < 1.2 * crowd.config.warmup_s:
        _, dets = _play(crowd, frames, "pets", FPS, offset)
        span = frames[-1][0] - frames[0][0]
        offset += span + int(5e9)
        played += span / 1e9
    scores, dets = _play(crowd, frames, "pets", FPS, offset)
    assert dets == [], [(t, d.track_id) for t, d in dets]
    assert (scores >= 0.5).mean() < 0.05  # a frame above threshold now and then, never for 2 s (min_duration_s)


# -- synthetic crowds ------------------------------------------------------------------------

def _crowd(phases, size=(320, 180), n=40, seed=0):
    """Frames of ``n`` walkers (squares of side h/16) over a fixed textured scene.

    ``phases``: ``(seconds, pattern, speed px/frame)`` with pattern ``walk`` (along the
    walkway, both ways, wrapping around), ``in`` (towards the centre, stopping near it),
    ``stand`` or ``out`` (away from the centre). Returns ``[(time_ns, image)]`` at 5 fps.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    scene = (90 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0))[..., None] + rng.normal(0, 12, (h, w, 3))
    scene = np.clip(scene + np.array([10, 0, -10]), 0, 255).astype(np.float32)
    side = h // 16
    colours = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    pos = rng.uniform([0, 0], [w - side, h - side], (n, 2))
    centre = np.array([w / 2 - side / 2, h / 2 - side / 2])
    frames = []
    for seconds, pattern, speed in phases:
        if pattern in ("in", "out"):
            radial = (pos - centre) / np.maximum(np.linalg.norm(pos - centre, axis=1, keepdims=True), 1e-6)
            vel = radial * speed * (1 if pattern == "out" else -1)
        elif pattern == "walk":
            a = rng.uniform(-0.35, 0.35, n) + np.pi * (rng.random(n) < 0.5)
            vel = np.stack([np.cos(a), np.sin(a)], 1) * speed * rng.uniform(0.8, 1.2, (n, 1))
        else:
            vel = np.zeros_like(pos)
        for _ in range(int(seconds * FPS)):
            img = scene + rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
            pos = pos + vel
            if pattern == "walk":
                pos[:, 0] = np.mod(pos[:, 0] + side, w + side) - side
                pos[:, 1] = np.clip(pos[:, 1], 0, h - side)
            elif pattern == "in":
                vel[np.linalg.norm(pos - centre, axis=1) < 2.5 * side] = 0
            for j in range(n):
                x, y = int(pos[j, 0]), int(pos[j, 1])
                img[max(0, y):max(0, y + side), max(0, x):max(0, x + side)] = colours[j]
            frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return [(T0_NS + int(i * 1e9 / FPS), f) for i, f in enumerate(frames)]


def _by_mode(dets):
    return {m: [(t, d) for t, d in dets if d.attributes["mode"] == m] for m in (SURGE, DISPERSAL, RUNNING)}


WALK_S = 90.0


@pytest.fixture(scope="module")
def running_stream():
    return _crowd([(WALK_S, "walk", 3.0), (8.0, "walk", 9.0)])


def test_walking_crowd_is_quiet_and_running_is_detected(running_stream):
    torch.set_num_threads(1)
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=30.0))
    _, dets = _play(crowd, running_stream)
    assert [t for t, _ in dets if t < WALK_S] == [], "steady walking raised an alert"
    modes = _by_mode(dets)
    assert modes[RUNNING], "running was not detected"
    assert modes[RUNNING][0][0] <= WALK_S + 4.0  # min_duration_s = 2 s, plus a little
    assert modes[SURGE] == [] and modes[DISPERSAL] == []
    assert len({d.track_id for _, d in modes[RUNNING]}) == 1
    for _, d in modes[RUNNING]:
        assert d.kind == "crowd_movement" and 0.5 <= d.score <= 1.0
        assert d.track_id.startswith("cam/crowd/running/") and d.attributes["z"] > crowd.config.z_threshold
        assert d.boxes
        for box in d.boxes:
            assert box.w > 0 and box.h > 0 and box.x >= 0 and box.y >= 0
            assert box.x + box.w <= 320 and box.y + box.h <= 180


def test_convergence_is_a_surge_and_scattering_a_dispersal():
    torch.set_num_threads(1)
    t_in, t_out = WALK_S, WALK_S + 8.0 + 4.0
    # 60 walkers (8 % of the view): they gather at walking speed, stand, then scatter at 1.5 times it
    frames = _crowd([(WALK_S, "walk", 3.0), (8.0, "in", 3.0), (4.0, "stand", 0.0), (6.0, "out", 4.5)], n=60)
    _, dets = _play(CrowdMovement(CrowdMovementConfig(warmup_s=30.0)), frames)
    assert [t for t, _ in dets if t < t_in] == []
    modes = _by_mode(dets)
    assert modes[SURGE] and t_in < modes[SURGE][0][0] < t_out, "the convergence was not a surge"
    assert modes[DISPERSAL] and modes[DISPERSAL][0][0] > t_out, "the scattering was not a dispersal"
    assert modes[RUNNING] == []  # at most 1.5 times the usual speed: not running
    for m, name in ((SURGE, "surge"), (DISPERSAL, "dispersal")):
        assert len({d.track_id for _, d in modes[m]}) == 1
        assert all(d.track_id.startswith(f"cam/crowd/{name}/") for _, d in modes[m])
    # the crowd gathers around the centre of the frame: the boxes cover it
    for _, d in modes[SURGE] + modes[DISPERSAL]:
        assert any(b.x <= 160 <= b.x + b.w and b.y <= 90 <= b.y + b.h for b in d.boxes)


def test_a_short_spike_is_not_an_alert():
    frames = _crowd([(60.0, "walk", 3.0), (1.0, "walk", 9.0), (10.0, "walk", 3.0)])
    _, dets = _play(CrowdMovement(CrowdMovementConfig(warmup_s=30.0, min_duration_s=2.0)), frames)
    assert dets == []


def test_modes_and_zones_limit_what_is_reported(running_stream):
    _, dets = _play(CrowdMovement(CrowdMovementConfig(warmup_s=30.0, modes=["surge", "dispersal"])),
                    running_stream)
    assert dets == []
    left = Zone(name="left", polygon=[(0, 0), (160, 0), (160, 180), (0, 180)])
    _, dets = _play(CrowdMovement(CrowdMovementConfig(warmup_s=30.0, zones=[left])), running_stream)
    assert dets
    for _, d in dets:
        assert all(b.x + b.w <= 160 for b in d.boxes), d.boxes


def test_batch_of_two_cameras_equals_one_by_one():
    a = _crowd([(40.0, "walk", 3.0), (5.0, "walk", 9.0)])
    b = _crowd([(45.0, "walk", 2.0)], n=20, seed=3)
    cfg = CrowdMovementConfig(warmup_s=20.0)
    single = {}
    for cam, fr in (("a", a), ("b", b)):
        single[cam] = [(t, d.track_id, d.boxes, round(d.score, 5)) for t, d in _play(CrowdMovement(cfg), fr, cam)[1]]
    batched, got = CrowdMovement(cfg), {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        for d in batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS)):
            got["ab"[d.index]].append(((ns - T0_NS) / 1e9, d.track_id, d.boxes, round(d.score, 5)))
    assert single["a"], "camera a has runners"
    assert got == single


def test_score_needs_warm_up_and_stays_in_unit_interval():
    frames = _crowd([(12.0, "walk", 3.0)])
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=10.0))
    scores = [crowd.score(to_batch([img], ["c"], [ns], FPS)).item() for ns, img in frames]
    assert all(s == 0.0 for s in scores[: int(9 * FPS)])
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert any(s > 0.0 for s in scores[int(11 * FPS):])


def test_forget_restarts_the_camera(running_stream):
    crowd = CrowdMovement(CrowdMovementConfig(warmup_s=30.0))
    _play(crowd, running_stream[: int(40 * FPS)])
    crowd.forget("cam")
    scores, dets = _play(crowd, running_stream[int(WALK_S * FPS):])  # running right away: nothing learned
    assert dets == [] and (scores == 0.0).all()


def test_config_is_strict():
    with pytest.raises(pydantic.ValidationError):
        CrowdMovementConfig(z_treshold=3)
    with pytest.raises(pydantic.ValidationError):
        CrowdMovementConfig(grid_cols=0)
    with pytest.raises(pydantic.ValidationError):
        CrowdMovementConfig(modes=["stampede"])
    assert CrowdMovementConfig().modes == list(MODES)
    for name, field in CrowdMovementConfig.model_fields.items():
        assert field.description, name
