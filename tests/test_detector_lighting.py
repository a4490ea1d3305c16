"""Sudden global lighting changes (:mod:`vigie.detector.lighting`): detected per camera, and the analytics that
learn the scene's brightness start again cold while tamper keeps its reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vigie.detector.lighting import LightingWatch
from vigie.detector.plan import AnalyticsPlan
from vigie.detector.preprocess import to_batch


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 140, (120, 160, 3), dtype=np.uint8)


def _steps(frames: list[np.ndarray], camera: str = "cam") -> list[bool]:
    watch = LightingWatch()
    out = []
    for k, f in enumerate(frames):
        out += watch.check(to_batch([f], [camera], [k * 200_000_000], [5.0], (160, 120), "cpu"))
    return out


def _scaled(f: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(f.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def test_a_lights_on_or_off_step_is_one_step_and_the_reference_follows():
    scene = _scene()
    for factor in (0.5, 1.8):
        steps = _steps([scene] * 5 + [_scaled(scene, factor)] * 5)
        assert [k for k, gain in enumerate(steps) if gain is not None] == [5], factor
        assert abs(steps[5] - factor) < 0.1


def test_a_person_close_to_the_lens_or_a_slow_dusk_is_no_step():
    scene = _scene()
    close = scene.copy()
    close[:, :80] = 10  # a dark coat over half of the frame
    assert not any(_steps([scene] * 5 + [close] * 5))
    dusk = [_scaled(scene, 0.97 ** k) for k in range(30)]  # -3 % a frame, 5 frames a second
    assert not any(_steps(dusk))


@pytest.mark.parametrize(("factor", "relearn"), [
    (1.8, ["abandoned_object", "fire", "person_down", "smoke"]),
    (0.5, ["fire", "person_down"]),  # abandoned objects and smoke correct a darker frame's gain
])
def test_a_step_relights_the_analytics_that_learn_brightness_but_not_tamper(factor, relearn):
    torch.set_num_threads(1)
    plan = AnalyticsPlan({}, ["abandoned_object", "fire", "person_down", "smoke", "tamper", "crowd_movement"], "cpu")
    scene = _scene(1)
    forgotten, counted = [], []
    plan.on_lighting_step = counted.append
    for analytic in plan.instances_for("cam").values():
        analytic.forget = lambda camera_id, kind=analytic.kind: forgotten.append((kind, camera_id))
    for k, f in enumerate([scene] * 4 + [_scaled(scene, factor)] * 2):
        plan.process(to_batch([f], ["cam"], [k * 200_000_000], [5.0], (160, 120), "cpu"))
    assert sorted(forgotten) == [(kind, "cam") for kind in relearn]
    assert plan.lighting.steps == 1 and counted == ["cam"]


def test_a_covered_lens_is_a_step_but_still_raises_tamper():
    torch.set_num_threads(1)
    plan = AnalyticsPlan({}, ["fire", "person_down", "tamper"], "cpu")
    scene, covered = _scene(2), np.full((120, 160, 3), 6, dtype=np.uint8)
    kinds = []
    for k, f in enumerate([scene] * 40 + [covered] * 15):  # 8 s of scene, then 3 s covered, 5 frames a second
        kinds += [(k, d.kind) for d in plan.process(to_batch([f], ["cam"], [k * 200_000_000], [5.0], (160, 120), "cpu"))]
    assert plan.lighting.steps == 1
    assert kinds and {kind for _, kind in kinds} == {"tamper"} and all(k >= 40 for k, _ in kinds)
