"""Detector plumbing: preprocessing, per-camera state bank, dual background, registry, benchmark."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

from vigie.detector.analytics.abandoned import AbandonedObject
from vigie.detector.analytics.background import DualBackground, DualBackgroundConfig, opening
from vigie.detector.analytics.crowd import CrowdMovement
from vigie.core.errors import ConfigError
from vigie.detector.analytics.registry import PLUGINS, build, plugin
from vigie.detector.bench import measure
from vigie.detector.preprocess import to_batch
from vigie.detector.state import CameraStateBank, FrameClock


def test_to_batch_shapes_ranges_and_mixed_sizes():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (480, 720, 3), dtype=np.uint8)
    c = np.full((360, 640, 3), 255, dtype=np.uint8)
    batch = to_batch([a, b, c], ["a", "b", "c"], [1, 2, 3], [5.0, 10.0, 5.0], work_size=(160, 120))
    assert batch.rgb.shape == (3, 3, 120, 160) and batch.rgb.dtype == torch.float32
    assert batch.gray.shape == (3, 1, 120, 160) and batch.gray.dtype == torch.float32
    assert float(batch.rgb.min()) >= 0.0 and float(batch.rgb.max()) <= 1.0
    assert torch.allclose(batch.rgb[2], torch.ones(3, 120, 160))
    assert torch.allclose(batch.gray[2], torch.ones(1, 120, 160))
    assert batch.frame_sizes == [(640, 360), (720, 480), (640, 360)]
    assert batch.fps == [5.0, 10.0, 5.0] and len(batch) == 3
    # frames resized together equal frames resized alone
    alone = to_batch([b], ["b"], [2], 10.0)
    assert torch.allclose(alone.rgb[0], batch.rgb[1], atol=1e-6)


def test_to_batch_rejects_bad_input():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError):
        to_batch([img, img], ["a", "a"], [0, 0], 5.0)
    with pytest.raises(ValueError):
        to_batch([np.zeros((10, 10), np.uint8)], ["a"], [0], 5.0)
    with pytest.raises(ValueError):
        to_batch([img], ["a", "b"], [0], 5.0)
    with pytest.raises(ValueError):
        to_batch([], [], [], 5.0)


def test_state_bank_keeps_cameras_apart_grows_and_forgets():
    bank = CameraStateBank({"x": ((2, 3), torch.float32), "n": ((1,), torch.int64)}, capacity=2)
    assert bank.new_mask(["a", "b"]).tolist() == [True, True]
    bank.scatter(["a", "b"], {"x": torch.stack([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)]),
                              "n": torch.tensor([[10], [20]])})
    assert not bank.is_new("a") and not bank.is_new("b")
    # order within a batch does not matter; a third camera grows the bank and starts at zero
    got = bank.gather(["c", "b", "a"])
    assert bank.capacity >= 3
    assert got["x"][0].eq(0).all() and got["x"][1].eq(2).all() and got["x"][2].eq(1).all()
    assert got["n"][:, 0].tolist() == [0, 20, 10]
    assert bank.is_new("c")
    bank.scatter(["c"], torch.full((1, 2, 3), 3.0), name="x")
    assert bank.gather(["a"], "x").eq(1).all() and bank.gather(["c"], "x").eq(3).all()
    bank.forget("a")
    assert "a" not in bank and bank.is_new("a")
    assert bank.gather(["a"], "x").eq(0).all()  # reused or fresh slot, zeroed
    assert bank.gather(["b"], "x").eq(2).all() and bank.gather(["c"], "x").eq(3).all()
    with pytest.raises(ValueError):
        bank.scatter(["b"], torch.zeros(1, 2, 3))  # two fields: the name is required


def test_frame_clock_intervals_and_restarts():
    clock = FrameClock(max_gap_frames=4)
    dt, restart = clock.tick(["a"], [0], [5.0])
    assert dt == [0.2] and restart == [True]
    dt, restart = clock.tick(["a"], [int(0.4e9)], [5.0])  # one dropped frame
    assert dt == [pytest.approx(0.4)] and restart == [False]
    dt, restart = clock.tick(["a"], [int(60e9)], [5.0])  # stream gap
    assert dt == [pytest.approx(0.8)] and restart == [True]


def test_dual_background_separates_new_static_object_from_motion():
    bg = DualBackground(DualBackgroundConfig(long_tau_s=60.0, short_tau_s=1.0))
    frame = torch.full((1, 3, 40, 40), 0.5)
    dt = torch.tensor([0.2])
    for _ in range(5):
        bg.update(frame, ["c"], dt)
    dropped = frame.clone()
    dropped[..., 10:20, 10:20] = 0.1  # an object is put down and stays
    fl, fs = bg.update(dropped, ["c"], dt)
    assert fl[0, 0, 15, 15] and fs[0, 0, 15, 15]  # new: both models see it
    for _ in range(20):  # 4 s = 4 short time constants
        fl, fs = bg.update(dropped, ["c"], dt)
    assert fl[0, 0, 15, 15] and not fs[0, 0, 15, 15]  # static: long-term only
    assert not fl[0, 0, 30, 30] and not fs[0, 0, 30, 30]
    speck = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    speck[0, 0, 4, 4] = True
    assert not opening(speck, 3).any()


def test_registry_builds_every_kind_and_validates():
    assert {"abandoned_object", "crowd_movement"} <= set(PLUGINS)
    ao = build("abandoned_object", {"dwell_s": 10}, "cpu")
    assert isinstance(ao, AbandonedObject) and ao.config.dwell_s == 10 and ao.kind == "abandoned_object"
    assert isinstance(build("crowd_movement", None), CrowdMovement)
    with pytest.raises(ConfigError, match="unknown analytic kind 'face_recognition'"):
        build("face_recognition", {})
    with pytest.raises(pydantic.ValidationError):
        build("crowd_movement", {"z_threshold": -1})
    with pytest.raises(pydantic.ValidationError):
        build("abandoned_object", {"no_such_field": 1})


def test_analytics_accept_inference_mode_and_forget_unknown_camera():
    frames = [np.full((90, 160, 3), v, np.uint8) for v in (10, 20)]
    for kind in PLUGINS:
        try:
            plugin(kind)
        except ConfigError:
            continue  # a kind whose module is not in this build
        analytic = build(kind, {})
        with torch.inference_mode():
            analytic.process(to_batch(frames[:1], ["a"], [0], 5.0))
        analytic.process(to_batch(frames[1:], ["a"], [int(0.2e9)], 5.0))
        analytic.forget("a")
        analytic.forget("never-seen")


def test_benchmark_runs():
    assert measure(n_frames=16, batch_size=4, size=(320, 180), distinct=8) > 0
    assert measure(n_frames=4, batch_size=2, frames=[np.zeros((100, 200, 3), np.uint8)] * 3) > 0


@pytest.mark.parametrize("argv, says", [
    (["--batch", "0"], "argument --batch: must be >= 1, got 0"),
    (["--batch", "8", "-1"], "argument --batch: must be >= 1, got -1"),
    (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["--frames", "0"], "argument --frames: must be >= 1, got 0"),
    (["--device", "banana"], "--device banana: not a torch device (cpu, cuda, cuda:N, auto)"),
])
def test_benchmark_command_rejects_bad_options_before_measuring(argv, says, capsys):
    from vigie.detector.bench import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    assert stop.value.code == 2 and captured.out == ""
    assert captured.err.splitlines()[-1].endswith(says)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_benchmark_command_says_when_there_is_no_cuda(capsys):
    from vigie.detector.bench import main

    with pytest.raises(SystemExit) as stop:
        main(["--device", "cuda"])
    assert stop.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(
        "--device cuda: no CUDA device on this machine")


def test_global_gain_ignores_what_covers_part_of_the_frame():
    from vigie.detector.analytics.background import global_gain

    torch.manual_seed(0)
    bg = torch.rand(2, 3, 120, 160) * 0.5 + 0.2
    rgb = (bg * 1.3).clamp(0, 1)
    rgb[:, :, :, :64] = 0.02  # a dark vehicle over 40 % of the view
    gain = global_gain(rgb, bg)
    assert gain.shape == (2, 1, 1, 1) and torch.allclose(gain, torch.full_like(gain, 1.3), atol=0.02)
    whole = rgb.mean(dim=(1, 2, 3)) / bg.mean(dim=(1, 2, 3))
    assert (whole < 0.9).all()  # what a whole-frame ratio would have said


def test_gpu_check_script_runs_its_comparison_on_the_cpu():
    """bench/gpu_check.py (run once on a GPU machine): its CPU half works here, and without CUDA it says so."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    frames = gpu_check.synthetic_frames(40, size=(320, 180), stop_after=4)
    found = gpu_check.detections("cpu", frames, cameras=2)
    assert found == gpu_check.detections("cpu", frames, cameras=2)  # deterministic: CPU vs CUDA is comparable
    assert found and all(len(d) == 5 for d in found)
    if not torch.cuda.is_available():
        assert gpu_check.main() == 1
