"""Per-camera analytics: which kinds run where, with which settings, and errors that name the field."""

from __future__ import annotations

import socket
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
    assert result.returncode == 2
    assert f"{cameras}:5: cameras[0].analytics.abandoned_object.dwell_s: " in result.stderr, result.stderr


def _cameras(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


BAD_ANALYTICS = (
    "cameras:\n"
    "  - id: cam-1\n"
    "    source: synthetic://scene\n"
    "    analytics:\n"
    "      abandoned_object: {dwell_s: -3}\n"          # line 5
    "      fire:\n"
    "        bogus: 1\n"                                # line 7
    "  - id: cam-2\n"
    "    source: synthetic://scene\n"
    "    analytics:\n"
    "      teleport: false\n"                           # line 11
    "      intrusion:\n"
    "        zones:\n"
    "          - name: bowtie\n"
    "            polygon: [[0, 0], [100, 100], [100, 0], [0, 100]]\n"   # line 15
    "          - name: left\n"
    "            polygon: [[-5, 0], [100, 0], [100, 50]]\n"             # line 17
)


def test_validate_reports_every_analytics_problem_with_file_and_line(tmp_path: Path) -> None:
    cameras = _cameras(tmp_path, BAD_ANALYTICS)
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines()  # the cameras name no authorisation: said too
             if line.startswith(str(cameras)) and "names no authorisation" not in line]
    assert "Traceback" not in result.stderr and "cameras[0]: camera cam-1 names no authorisation" in result.stderr
    assert lines[0] == (f"{cameras}:5: cameras[0].analytics.abandoned_object.dwell_s: "
                        "Input should be greater than or equal to 1")
    assert lines[1] == f"{cameras}:7: cameras[0].analytics.fire.bogus: unknown key 'bogus' (not allowed here)"
    assert lines[2].startswith(f"{cameras}:11: cameras[1].analytics.teleport: unknown analytic kind 'teleport'")
    assert lines[3].startswith(f"{cameras}:15: cameras[1].analytics.intrusion.zones[0].polygon: polygon edges 0-1 "
                               "and 2-3 cross")
    assert lines[4].startswith(f"{cameras}:17: cameras[1].analytics.intrusion.zones[1].polygon[0]: vertex [-5, 0]")
    assert len(lines) == 5


def test_loading_the_cameras_file_for_the_detector_checks_the_analytics(tmp_path: Path) -> None:
    from vigie.core.cameras import load_cameras
    from vigie.detector.plan import analytics_problems

    cameras = _cameras(tmp_path, BAD_ANALYTICS)
    with pytest.raises(ConfigError) as err:
        load_cameras(cameras, analytics_problems)  # the detector, `vigie evaluate` and replay load the file this way
    assert [(p.line, p.location) for p in err.value.problems] == [
        (5, "cameras[0].analytics.abandoned_object.dwell_s"), (7, "cameras[0].analytics.fire.bogus"),
        (11, "cameras[1].analytics.teleport"), (15, "cameras[1].analytics.intrusion.zones[0].polygon"),
        (17, "cameras[1].analytics.intrusion.zones[1].polygon[0]")]
    # with a camera-field error too, every problem of the file is reported at once
    cameras.write_text(BAD_ANALYTICS.replace("  - id: cam-2\n", "  - id: cam-2\n    fps: 99\n"))
    with pytest.raises(ConfigError) as err:
        load_cameras(cameras, analytics_problems)
    assert [p.location for p in err.value.problems][:3] == [
        "cameras[0].analytics.abandoned_object.dwell_s", "cameras[0].analytics.fire.bogus", "cameras[1].fps"]
    assert len(err.value.problems) == 6


def test_the_grabber_does_not_load_the_analytics() -> None:
    code = ("import sys, vigie.grabber.app, vigie.core.cameras; "
            "print(any(m == 'torch' or m.startswith('vigie.detector') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_plan_reports_every_problem_one_per_line() -> None:
    with pytest.raises(ConfigError) as err:
        AnalyticsPlan({"c1": {"abandoned_object": {"dwell_s": -3}, "fire": {"bogus": 1}},
                       "c2": {"crowd_movement": {"zones": [{"name": "z", "polygon": [[0, 0], [9, 9], [9, 0], [0, 9]]}]}}},
                      DEFAULTS, "cpu")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("c1.analytics.abandoned_object.dwell_s: ")
    assert lines[1] == "c1.analytics.fire.bogus: unknown key 'bogus' (not allowed here)"
    assert lines[2].startswith("c2.analytics.crowd_movement.zones[0].polygon: polygon edges 0-1 and 2-3 cross")
    assert len(lines) == 3


def test_zones_entirely_outside_the_frame_are_warned_once(caplog) -> None:
    from types import SimpleNamespace

    from vigie.detector.app import DetectorService, DetectorSettings

    zones = [{"name": "away", "polygon": [[5000, 5000], [5100, 5000], [5100, 5100]]},
             {"name": "edge", "polygon": [[600, 300], [900, 300], [900, 500]]}]
    plan = AnalyticsPlan({"cam": {"abandoned_object": {"zones": zones}}}, DEFAULTS, "cpu")
    assert plan.zones_outside("cam", (640, 360)) == [("abandoned_object", "away")]
    assert plan.zones_outside("other", (640, 360)) == []
    service = DetectorService(DetectorSettings(device="cpu", object_classes=False))
    service.plan = plan
    item = SimpleNamespace(frame=SimpleNamespace(camera_id="cam", width=640, height=360))
    with caplog.at_level("WARNING", logger="vigie.detector.app"):
        service.check_zones([item, item])
        service.check_zones([item])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["camera cam: abandoned_object zone 'away' lies entirely outside its 640x360 frames: "
                        "it never matches (zones are in pixels of the published frames)"]


def test_the_detector_reports_a_bad_cameras_file_before_its_http_server(tmp_path: Path) -> None:
    cameras = _cameras(tmp_path, BAD_ANALYTICS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "vigie", "--kafka", "127.0.0.1:1", "detector", "--device", "cpu",
                             "--cameras", str(cameras), "--http-port", str(port)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{cameras}:5: cameras[0].analytics.abandoned_object.dwell_s: " in result.stderr
    assert "http on" not in result.stderr and "Traceback" not in result.stderr
