"""Per-camera analytics: which kinds run where, with which settings, and errors that name the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vigie.core.errors import ConfigError
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.plan import AnalyticsPlan
from vigie.detector.preprocess import to_batch

DEFAULTS = ["abandoned_object", "crowd_movement"]


def test_sections_enable_disable_and_share_instances() -> None:
    plan = AnalyticsPlan({
        "a": None,
        "b": {"abandoned_object": False},
        "c": {"abandoned_object": {"dwell_s": 20}},
        "d": {"abandoned_object": {"dwell_s": 20}},
    }, DEFAULTS, "cpu")
    kinds = lambda cam: sorted(k for k, _ in plan.keys_for(cam))  # noqa: E731
    assert kinds("a") == kinds("unknown-camera") == DEFAULTS
    assert kinds("b") == ["crowd_movement"]
    assert plan.keys_for("c") == plan.keys_for("d") != plan.keys_for("a")
    assert plan.kinds == DEFAULTS


def test_bad_sections_name_the_camera_kind_and_field() -> None:
    with pytest.raises(ConfigError, match=r"c1\.analytics\.abandoned_object\.dwell_s"):
        AnalyticsPlan({"c1": {"abandoned_object": {"dwell_s": -3}}}, DEFAULTS, "cpu")
    with pytest.raises(ConfigError, match=r"c2\.analytics\.abandoned_object\.dwel"):
        AnalyticsPlan({"c2": {"abandoned_object": {"dwel": 3}}}, DEFAULTS, "cpu")
    with pytest.raises(ConfigError, match=r"c3\.analytics\.teleport: unknown analytic kind 'teleport'"):
        AnalyticsPlan({"c3": {"teleport": {}}}, DEFAULTS, "cpu")


def test_a_batch_is_split_by_instance_and_indices_map_back() -> None:
    plan = AnalyticsPlan({"b": {"abandoned_object": False, "crowd_movement": False}}, DEFAULTS, "cpu")
    images = [np.full((360, 640, 3), 100, np.uint8) for _ in range(3)]
    batch = to_batch(images, ["a", "b", "c"], [0, 0, 0], [5.0] * 3, (160, 120), "cpu")
    sub = batch.select([0, 2])
    assert sub.camera_ids == ["a", "c"] and sub.gray.shape[0] == 2
    assert torch.equal(sub.rgb[1], batch.rgb[2])
    assert plan.process(batch) == []  # nothing happens in a grey frame, and camera b runs nothing


def test_zone_masks_cover_their_polygon_on_the_working_grid() -> None:
    zones = ZoneMasks([Zone(name="door", polygon=[(0, 0), (320, 0), (320, 180), (0, 180)])], (160, 120), "cpu")
    mask = zones.get((640, 360))
    assert mask.shape == (1, 120, 160) and mask.dtype == torch.bool
    assert mask[0, :60, :80].all() and not mask[0, 60:, :].any() and not mask[0, :, 80:].any()
    assert ZoneMasks([], (160, 120), "cpu").get((640, 360)).all()


def test_validate_checks_the_analytics_sections(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - id: a\n    source: synthetic://scene\n"
                       "    analytics:\n      abandoned_object: {dwell_s: 0}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 2 and "a.analytics.abandoned_object.dwell_s" in result.stderr
