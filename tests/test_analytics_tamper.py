"""Camera-tampering analytic and the tampering helpers: real clips with injected tampering,
normal scenes without any alarm, and small synthetic unit tests."""

from __future__ import annotations

import copy

import numpy as np
import pydantic
import pytest
import torch

from tests.clips import T0_NS, data_path, decode_frames, decode_video
from vigie.detector.analytics.episodes import RUN_ID
from vigie.detector import tampering
from vigie.detector.analytics.registry import build
from vigie.detector.analytics.tamper import MODES, Tamper, TamperConfig
from vigie.detector.bench import synthetic_frames
from vigie.detector.preprocess import to_batch

FPS = 5.0  # what the grabber samples
INJECT_AT_S = 10.0  # seconds of normal footage before the tampering starts
MAX_DELAY_S = 2.0

#: injected condition -> (function on a frame, expected mode code)
INJECTIONS = {
    "black": (tampering.blind_black, 1),
    "saturate": (tampering.blind_saturate, 1),
    "blur": (tampering.blur, 2),
    "box_blur": (lambda f: tampering.blur(f, kind="box"), 2),
    "shift": (tampering.shift, 3),
    "crop_zoom": (lambda f: tampering.shift(f, zoom=1.5), 3),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread, as the detector's budget assumes (and faster on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pingpong(frames, fps: float, min_s: float):
    """Play a short clip forwards and backwards until it lasts ``min_s`` (no jump at the loop),
    re-timed at ``fps``; returns ``(time_ns, image)`` pairs."""
    images = [img for _, img in frames]
    cycle = images + images[-2:0:-1]
    n = max(len(images), int(np.ceil(min_s * fps)))
    return [(T0_NS + int(round(k * 1e9 / fps)), cycle[k % len(cycle)]) for k in range(n)]


def _clip(name: str):
    """``(frames, fps)`` of a real clip, frames as ``(time_ns, RGB 640 wide)``."""
    if name == "aboda_video4":
        return decode_video(str(data_path("aboda_video4", "video4.avi")), FPS, 640), FPS
    if name == "ucsd_ped2_test001":  # 180 stills at the dataset's ~10 fps: 18 s
        return decode_frames(str(data_path("ucsd_ped2_test001", "frames")), 10.0, FPS, 640, "*.tif"), FPS
    if name == "pets2009_s2l1":
        path = data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi")
        return decode_video(str(path), FPS, 640), FPS
    if name == "bgs_video03":
        return decode_video(str(data_path("bgslibrary_traffic", "video03.avi")), FPS, 640), FPS
    if name == "bgs_video02":
        return decode_video(str(data_path("bgslibrary_traffic", "video02.avi")), FPS, 640), FPS
    if name == "tud_campus":  # 71 stills at 25 fps (2.8 s), sampled at 5 fps, played back and forth for 14 s
        frames = decode_frames(str(data_path("mot15_tud_campus", "img1")), 25.0, FPS, 640, "*.jpg")
        return _pingpong(frames, FPS, INJECT_AT_S + 4.0), FPS
    if name == "wsdot_i5":  # 51 stills without timing, played at 5 fps back and forth for 20 s
        frames = decode_frames(str(data_path("bgslibrary_traffic", "wsdot_i5_frames")), FPS, None, 640, "*.png")
        return _pingpong(frames, FPS, 20.0), FPS
    if name.endswith(".gif"):  # 2-3 s previews, played back and forth for 20 s
        frames = decode_video(str(data_path("intel_sample_videos", name)), FPS, 640)
        return _pingpong(frames, FPS, 20.0), FPS
    return decode_video(str(data_path("intel_sample_videos", name)), FPS, 640), FPS


def _feed(analytic, frames, fps, camera="cam", inject=None):
    """Feed ``(time_ns, image)`` frames one by one; returns ``[(t_s, detection)]``."""
    out = []
    for ns, img in frames:
        if inject is not None:
            img = inject(img)
        for det in analytic.process(to_batch([img], [camera], [ns], fps)):
            out.append(((ns - T0_NS) / 1e9, det))
    return out


@pytest.mark.data
@pytest.mark.parametrize("clip", ["aboda_video4", "ucsd_ped2_test001", "pets2009_s2l1", "bgs_video03", "tud_campus"])
def test_tampering_injected_into_real_clip_is_raised_within_2_s(clip):
    frames, fps = _clip(clip)
    # the first frame at least INJECT_AT_S after the first one (PETS' stream times are not uniform)
    k_inject = next(k for k, (ns, _) in enumerate(frames) if ns - frames[0][0] >= INJECT_AT_S * 1e9 - 1e6)
    t_inject = (frames[k_inject][0] - T0_NS) / 1e9
    window = [(ns, img) for ns, img in frames[k_inject:] if ns - frames[k_inject][0] <= (MAX_DELAY_S + 0.5) * 1e9]
    assert (window[-1][0] - window[0][0]) / 1e9 >= MAX_DELAY_S, f"{clip} is too short for the injection"

    # untouched: no alarm over the whole clip; keep the state reached after 10 s of footage
    tamper = Tamper()
    untouched = _feed(tamper, frames[:k_inject], fps)
    reference = copy.deepcopy(tamper)
    untouched += _feed(tamper, frames[k_inject:], fps)
    assert untouched == [], f"false alarms on untouched {clip}: {[(t, d.track_id) for t, d in untouched]}"

    delays = {}
    for name, (inject, mode) in INJECTIONS.items():
        dets = _feed(copy.deepcopy(reference), window, fps, inject=inject)
        assert dets, f"{name} injected into {clip} at {t_inject:.1f} s was not raised"
        t, det = dets[0]
        delays[name] = round(t - t_inject, 3)
        assert delays[name] <= MAX_DELAY_S + 1e-6, f"{name} on {clip} raised after {delays[name]:.1f} s"
        assert det.kind == "tamper"
        assert det.attributes["mode"] == mode, f"{name} on {clip} reported as {MODES[int(det.attributes['mode'])]}"
        assert det.track_id == f"cam/tamper/{MODES[mode]}-{RUN_ID}-1"
        (box,) = det.boxes
        h, w = window[0][1].shape[:2]
        assert (box.x, box.y, box.w, box.h) == (0, 0, w, h)
        assert 0.5 <= det.score <= 1.0
    print(f"{clip}: detection delay per injection (s): {delays}")


@pytest.mark.data
@pytest.mark.parametrize("clip", ["car-detection.mp4", "one-by-one-person-detection.mp4", "people-detection.gif",
                                  "person-bicycle-car-detection.gif", "bgs_video02", "wsdot_i5"])
def test_normal_scene_raises_no_tamper_alarm(clip):
    # people walking close to the camera (one-by-one) and cars crossing an almost textureless
    # parking lot (car-detection) change a large part of the frame, but never most of it
    frames, fps = _clip(clip)
    tamper = Tamper()
    dets, scores = [], []
    for ns, img in frames:
        dets += tamper.process(to_batch([img], ["cam"], [ns], fps))
        scores.append(float(tamper.last_scores[0]))
    assert dets == [], f"false alarms on {clip}: {[d.track_id for d in dets]}"
    assert max(scores) < 0.5


@pytest.mark.data
def test_illumination_change_and_camera_jitter_are_not_tampering():
    frames, fps = _clip("pets2009_s2l1")
    k = int(INJECT_AT_S * fps)
    tamper = Tamper()
    assert _feed(tamper, frames[:k], fps) == []
    later = frames[k:k + int(8 * fps)]
    for change in (lambda f: (f * 0.5).astype(np.uint8),  # dusk, a cloud, a dimmed light
                   lambda f: np.clip(f * 1.4, 0, 255).astype(np.uint8),  # brighter exposure
                   lambda f: tampering.shift(f, 6, -6)):  # wind shaking the pole by a few pixels
        assert _feed(copy.deepcopy(tamper), later, fps, inject=change) == []


# --- synthetic scenes -----------------------------------------------------------------------------


def _scene(n: int, seed: int = 3, fps: float = FPS):
    frames = synthetic_frames(n, (320, 180), n_movers=3, speed_px=4.0, noise=2.0, seed=seed)
    return [(T0_NS + int(round(k * 1e9 / fps)), f) for k, f in enumerate(frames)]


def _tamper_from(frames, k0: int, k1: int | None, inject):
    """Frames with ``inject`` applied from index ``k0`` to ``k1`` (exclusive; None: to the end)."""
    k1 = len(frames) if k1 is None else k1
    return [(ns, inject(img) if k0 <= k < k1 else img) for k, (ns, img) in enumerate(frames)]


@pytest.mark.parametrize("name", ["black", "saturate", "blur", "shift"])
def test_synthetic_tampering_raises_its_mode_with_a_stable_track(name):
    inject, mode = INJECTIONS[name]
    frames = _tamper_from(_scene(100), 40, 80, inject)  # tampered from 8 s to 16 s
    dets = _feed(Tamper(), frames, FPS)
    assert dets
    assert {d.track_id for _, d in dets} == {f"cam/tamper/{MODES[mode]}-{RUN_ID}-1"}
    assert all(d.attributes["mode"] == mode for _, d in dets)
    assert 9.0 - 1e-6 <= dets[0][0] <= 9.0 + 1e-6  # exactly min_duration_s after the start
    assert all(8.0 < t < 16.0 + 0.6 for t, _ in dets)  # nothing before, ends once restored
    times = [t for t, _ in dets]
    assert all(0.99 < b - a < 1.01 for a, b in zip(times, times[1:]))  # re-emitted every repeat_s
    for _, d in dets:
        assert d.boxes[0].w == 320 and d.boxes[0].h == 180 and 0.5 <= d.score <= 1.0
        assert set(d.attributes) == {"mode", "duration_s", "value"}


def test_second_episode_gets_a_new_track_number():
    frames = _scene(120)
    frames = _tamper_from(frames, 40, 55, tampering.blind_black)
    frames = _tamper_from(frames, 80, 100, tampering.blind_black)
    tracks = [d.track_id for _, d in _feed(Tamper(), frames, FPS)]
    assert sorted(set(tracks)) == [f"cam/tamper/blinded-{RUN_ID}-1", f"cam/tamper/blinded-{RUN_ID}-2"]


def test_nothing_is_raised_during_warm_up_or_on_an_untouched_scene():
    frames = _scene(100)
    tamper = Tamper()
    assert _feed(tamper, _tamper_from(frames[:20], 0, None, tampering.blind_black), FPS) == []  # learning
    tamper = Tamper()
    assert _feed(tamper, frames, FPS) == []
    assert tamper.last_scores.shape == (1,) and tamper.last_scores.dtype == torch.float32
    assert tamper.last_scores.device.type == "cpu" and 0.0 <= float(tamper.last_scores[0]) < 0.5


def test_short_glitch_is_not_raised():
    # 0.6 s of black (a dropped frame, a flash) stays under min_duration_s
    frames = _tamper_from(_scene(80), 40, 43, tampering.blind_black)
    assert _feed(Tamper(), frames, FPS) == []


def test_reference_freezes_while_blinded_and_a_long_move_is_relearned():
    cfg = TamperConfig(reference_tau_s=10.0, relearn_after_s=20.0)
    frames = _scene(300)
    # blinded for 40 s, four reference time constants: still reported at the end (no learning)
    blinded = _feed(Tamper(cfg), _tamper_from(frames, 40, 240, tampering.blind_black), FPS)
    assert blinded and blinded[-1][0] > 46.5 and {d.track_id for _, d in blinded} == {f"cam/tamper/blinded-{RUN_ID}-1"}
    # moved for good at 8 s: reported, then after relearn_after_s the new view is the reference
    moved = _feed(Tamper(cfg), _tamper_from(frames, 40, None, tampering.shift), FPS)
    assert moved and moved[0][0] < 10.0
    assert max(t for t, _ in moved) < 8.0 + 20.0 + 2.0
    assert {d.track_id for _, d in moved} == {f"cam/tamper/moved-{RUN_ID}-1"}


def test_timing_follows_the_stream_clock_at_any_rate():
    for fps in (2.0, 25.0):
        frames = _scene(int(16 * fps), fps=fps)
        dets = _feed(Tamper(), _tamper_from(frames, int(8 * fps), None, tampering.blind_black), fps)
        assert dets and abs(dets[0][0] - 9.0) < 1.01 / fps


def test_batch_of_two_cameras_equals_one_by_one_and_scores_per_frame():
    a = _tamper_from(_scene(80, seed=3), 40, None, tampering.blur)
    b = _scene(80, seed=5)
    single = {cam: [(t, d.track_id, round(d.score, 5)) for t, d in _feed(Tamper(), fr, FPS, cam)]
              for cam, fr in (("a", a), ("b", b))}
    batched = Tamper()
    got = {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        for d in batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS)):
            got["ab"[d.index]].append(((ns - T0_NS) / 1e9, d.track_id, round(d.score, 5)))
        assert batched.last_scores.shape == (2,)
    assert single["a"] and not single["b"]
    assert got == single
    assert float(batched.last_scores[0]) > 0.5 > float(batched.last_scores[1])


def test_forget_restarts_learning():
    frames = _scene(60)
    tamper = Tamper()
    _feed(tamper, frames[:40], FPS)
    tamper.forget("cam")
    # the camera starts afresh: a blinded view is learned, not raised, during the new warm-up
    later = [(ns + int(100e9), tampering.blind_black(img)) for ns, img in frames[40:60]]
    assert _feed(tamper, later, FPS) == []


def test_working_size_change_is_an_error():
    tamper = Tamper()
    img = _scene(1)[0][1]
    tamper.process(to_batch([img], ["cam"], [T0_NS], FPS))
    with pytest.raises(ValueError):
        tamper.process(to_batch([img], ["cam"], [T0_NS + 200_000_000], FPS, work_size=(80, 60)))


def test_config_is_strict_and_defaults_build():
    assert isinstance(build("tamper", {}), Tamper)
    with pytest.raises(pydantic.ValidationError):
        TamperConfig(min_duraton_s=1.0)
    with pytest.raises(pydantic.ValidationError):
        TamperConfig(moved_fraction=0.0)
    with pytest.raises(pydantic.ValidationError):
        TamperConfig(grid_cols=2, grid_rows=1, min_cells=3)
    for name, field in TamperConfig.model_fields.items():
        assert field.description, name
        assert field.default is not None, name


# --- tampering helpers ----------------------------------------------------------------------------


def _laplacian_energy(img: np.ndarray) -> float:
    g = img.astype(np.float32).mean(2)
    return float(np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]).mean())


def test_tampering_helpers_are_pure_and_do_what_they_say():
    img = _scene(1)[0][1]
    before = img.copy()
    black, white = tampering.blind_black(img), tampering.blind_saturate(img)
    blurred, boxed = tampering.blur(img), tampering.blur(img, 3.0, kind="box")
    moved, zoomed = tampering.shift(img, 20, -10, fill="black"), tampering.shift(img, zoom=2.0)
    np.testing.assert_array_equal(img, before)
    for out in (black, white, blurred, boxed, moved, zoomed):
        assert out.shape == img.shape and out.dtype == np.uint8
    assert black.mean() < 10 and black.std() < 5
    assert white.mean() > 230
    assert np.array_equal(tampering.blind_black(img, seed=1), tampering.blind_black(img, seed=1))
    assert _laplacian_energy(blurred) < 0.3 * _laplacian_energy(img)
    assert _laplacian_energy(boxed) < 0.3 * _laplacian_energy(img)
    # content moves right by dx and down by dy; the uncovered border is filled
    np.testing.assert_array_equal(moved[:-10, 20:], img[10:, :-20])
    assert (moved[:, :20] == 0).all() and (moved[-10:] == 0).all()
    np.testing.assert_array_equal(tampering.shift(img, 0, 0), img)
    assert not np.array_equal(zoomed, img)


def test_tampering_helpers_reject_bad_input():
    img = _scene(1)[0][1]
    with pytest.raises(ValueError):
        tampering.blur(img.astype(np.float32))
    with pytest.raises(ValueError):
        tampering.blind_black(img[..., 0])
    with pytest.raises(ValueError):
        tampering.blur(img, kind="motion")
    with pytest.raises(ValueError):
        tampering.shift(img, img.shape[1], 0)
    with pytest.raises(ValueError):
        tampering.shift(img, zoom=0.5)
    with pytest.raises(ValueError):
        tampering.shift(img, fill="wrap")
    with pytest.raises(ValueError):
        tampering.blind_saturate(img, gain=0.5)
