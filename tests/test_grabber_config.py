"""Grabber configuration: pydantic models, YAML loading with line numbers in errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from vigie.core.authorisations import authorise_cameras
from vigie.core.config import ConfigError
from vigie.core.cameras import CameraConfig, load_cameras


def write(tmp_path, text: str):
    path = tmp_path / "cameras.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(exc: ConfigError) -> list[tuple[int, str, str]]:
    return [tuple(p) for p in exc.problems]


def test_valid_file_gets_defaults_and_resolves_relative_paths(tmp_path):
    path = write(tmp_path, """
        cameras:
          - id: place-carnot-1
            source: clips/a.avi
          - id: gare_2
            source: rtsp://10.0.0.2:554/s1
            fps: 2.5
            width: 1280
            privacy_masks:
              - name: windows
                polygon: [[0, 0], [100, 0], [100, 50]]
            reconnect: {initial_s: 1, max_s: 10}
          - id: demo
            source: synthetic://scene?seed=2&w=320&h=240&leave_at=3
    """)
    cams = load_cameras(path).cameras
    a, b, c = cams
    assert (a.fps, a.width, a.realtime, a.loop) == (5.0, 640, True, False)
    assert (a.reconnect.initial_s, a.reconnect.max_s, a.reconnect.factor) == (0.5, 30.0, 2.0)
    assert a.source == str(tmp_path / "clips" / "a.avi") and a.kind == "file"
    assert b.kind == "rtsp" and b.privacy_masks[0].polygon[2] == (100.0, 50.0)
    assert b.mask_names() == ["windows"] and b.reconnect.max_s == 10
    assert c.kind == "synthetic"


def test_unknown_key_is_rejected_with_its_name_and_line(tmp_path):
    path = write(tmp_path, """
        cameras:
          - id: cam1
            source: a.avi
            fsp: 5
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    assert problems(err.value) == [(4, "cameras[0].fsp", "unknown key 'fsp' (not allowed here)")]
    assert f"{path}:4: cameras[0].fsp: unknown key 'fsp'" in str(err.value)


def test_a_yaml_boolean_where_a_name_is_expected_says_to_quote_it(tmp_path):
    """Defect: a privacy mask named `off` (YAML 1.1 reads it as false) gave only 'Input should be a valid string'."""
    path = write(tmp_path, """
        cameras:
          - id: cam1
            source: a.avi
            privacy_masks:
              - name: off
                polygon: [[0, 0], [100, 0], [100, 50], [0, 50]]
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    assert "cameras[0].privacy_masks[0].name" in str(err.value)
    assert "YAML read it as bool False; put the value in quotes" in str(err.value)


def test_unknown_key_in_a_nested_mask_is_located(tmp_path):
    path = write(tmp_path, """
        cameras:
          - id: cam1
            source: a.avi
          - id: cam2
            source: a.avi
            privacy_masks:
              - polygon: [[0, 0], [10, 0], [10, 10]]
                colour: black
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    assert problems(err.value) == [(8, "cameras[1].privacy_masks[0].colour", "unknown key 'colour' (not allowed here)")]


@pytest.mark.parametrize("fps", ["0", "31", "-1", "fast"])
def test_fps_out_of_bounds_names_the_field_and_line(tmp_path, fps):
    path = write(tmp_path, f"""
        cameras:
          - id: cam1
            source: a.avi
            fps: {fps}
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    (line, loc, _msg), = problems(err.value)
    assert (line, loc) == (4, "cameras[0].fps")
    assert str(err.value).startswith(f"{path}:4: cameras[0].fps: ")


def test_duplicate_ids_are_rejected(tmp_path):
    path = write(tmp_path, """
        cameras:
          - {id: cam1, source: a.avi}
          - {id: cam2, source: b.avi}
          - {id: cam1, source: c.avi}
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    (line, loc, msg), = problems(err.value)
    assert (line, loc) == (1, "cameras")
    assert "duplicate camera id 'cam1' (cameras[0] and cameras[2])" in msg


@pytest.mark.parametrize("bad, loc", [
    ("id: Cam 1\n    source: a.avi", "cameras[0].id"),
    ("id: cam1\n    source: ftp://host/x", "cameras[0].source"),
    ("id: cam1\n    source: synthetic://scene?w=10", "cameras[0].source"),
    ("id: cam1\n    source: synthetic://nope", "cameras[0].source"),
    ("id: cam1\n    source: a.avi\n    width: 32", "cameras[0].width"),
    ("id: cam1\n    source: a.avi\n    privacy_masks: [{polygon: [[0, 0], [1, 1]]}]",
     "cameras[0].privacy_masks[0].polygon"),
    ("id: cam1\n    source: a.avi\n    reconnect: {initial_s: 5, max_s: 1}", "cameras[0].reconnect"),
    ("source: a.avi", "cameras[0].id"),
])
def test_other_bad_values_are_located(tmp_path, bad, loc):
    path = tmp_path / "c.yaml"
    path.write_text("cameras:\n  - " + bad + "\n")
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    assert [p.location for p in err.value.problems] == [loc], str(err.value)
    assert all(p.line >= 2 for p in err.value.problems)


def test_yaml_syntax_error_and_missing_file(tmp_path):
    path = write(tmp_path, "cameras:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cameras.yaml:\d+: YAML syntax error"):
        load_cameras(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_cameras(tmp_path / "nope.yaml")


def test_models_forbid_extra_and_describe_every_field():
    from vigie.core.cameras import CamerasFile, PrivacyMask, ReconnectConfig

    for model in (CameraConfig, CamerasFile, PrivacyMask, ReconnectConfig):
        assert model.model_config["extra"] == "forbid"
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_self_intersecting_mask_is_rejected_naming_the_field(tmp_path):
    path = write(tmp_path, """
        cameras:
          - id: cam1
            source: a.avi
            privacy_masks:
              - name: bowtie
                polygon: [[0, 0], [100, 100], [100, 0], [0, 100]]
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    (line, loc, msg), = problems(err.value)
    assert (line, loc) == (6, "cameras[0].privacy_masks[0].polygon")
    assert "edges 0-1 and 2-3 cross" in msg and "intersect itself" in msg


def test_negative_mask_vertex_is_rejected_naming_the_vertex(tmp_path):
    path = write(tmp_path, """
        cameras:
          - id: cam1
            source: a.avi
            privacy_masks:
              - polygon: [[-5, 0], [100, 0], [100, 50]]
    """)
    with pytest.raises(ConfigError) as err:
        load_cameras(path)
    (line, loc, _msg), = problems(err.value)
    assert (line, loc) == (5, "cameras[0].privacy_masks[0].polygon[0][0]")


def test_polygon_geometry_helpers():
    from vigie.core.geometry import covers_any_pixel, crossing_edges

    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert crossing_edges(square) is None
    assert crossing_edges([(0, 0), (10, 10), (10, 0), (0, 10)]) == (0, 2)
    assert crossing_edges([(0, 0), (10, 0), (10, 10), (10, 10), (0, 10)]) is None  # repeated vertex: no crossing
    assert crossing_edges([(0, 0), (10, 0), (5, 0)]) is None  # degenerate, collinear: not a crossing
    far = [(5000, 5000), (5100, 5000), (5100, 5100)]
    assert not covers_any_pixel(far, (480, 360))
    assert covers_any_pixel([(470, 350), (600, 350), (600, 500)], (480, 360))  # partly outside: clipped
    # scaled to a smaller grid: source 960x720 -> 480x360
    assert covers_any_pixel([(900, 700), (960, 700), (960, 720)], (960, 720), (480, 360))
    assert not covers_any_pixel([(0, 0), (0.4, 0), (0, 0.4)], (480, 360))  # no pixel centre inside


def test_validate_warns_of_masks_without_a_reference_size(tmp_path):
    """Defect: masks had no reference frame size, so a resolution change moved them; `vigie validate` says when
    a camera's masks still lack one (the grabber then assumes its first frame's size)."""
    path = write(tmp_path, authorise_cameras(
        "cameras:\n"
        "  - {id: a, source: synthetic://scene, privacy_masks: [{polygon: [[0, 0], [9, 0], [9, 9]]}]}\n"
        "  - {id: b, source: synthetic://scene, privacy_masks_reference_size: [720, 480],\n"
        "     privacy_masks: [{polygon: [[0, 0], [9, 0], [9, 9]]}]}\n"))
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line.strip() for line in result.stdout.splitlines() if "warning" in line]
    assert warnings == ["warning: camera a: privacy masks without privacy_masks_reference_size: the size of its "
                        "first frame will be assumed"]


def _validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", "validate", str(path)], capture_output=True, text=True)


def test_validate_refuses_masks_and_zones_wholly_outside_a_known_frame(tmp_path):
    """Defect: `vigie validate` passed a privacy mask wholly outside the frame (exit 0), which the grabber then
    refused. Where the file gives the frame size (a synthetic source's w and h, or the masks' reference size), a
    mask (source pixels) or a zone (pixels of the published frame, here 1280x720 scaled to 640x360) that covers
    no pixel of it is an error naming the file, the line and the field."""
    text = authorise_cameras(
        "cameras:\n"
        "  - id: a\n"
        "    source: synthetic://scene?w=1280&h=720\n"
        "    privacy_masks:\n"
        "      - {name: inside, polygon: [[1200, 700], [1300, 700], [1300, 800]]}\n"
        "      - {name: beyond, polygon: [[1300, 0], [1400, 0], [1400, 100]]}\n"
        "    analytics:\n"
        "      intrusion:\n"
        "        zones:\n"
        "          - {name: door, polygon: [[600, 300], [700, 300], [700, 400]]}\n"
        "          - {name: car-park, polygon: [[700, 400], [1200, 400], [1200, 700]]}\n")
    path = write(tmp_path, text)
    lines = text.splitlines()
    mask_line = next(n for n, line in enumerate(lines, 1) if "beyond" in line)
    zone_line = next(n for n, line in enumerate(lines, 1) if "car-park" in line)
    result = _validate(path)
    assert result.returncode == 2, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert errors == [
        f"{path}:{mask_line}: cameras[0].privacy_masks[1].polygon: camera a: privacy mask 'beyond' covers no pixel "
        "of its 1280x720 frames (wholly outside them): it would hide nothing; check its coordinates (pixels, "
        "origin top-left)",
        f"{path}:{zone_line}: cameras[0].analytics.intrusion.zones[1].polygon: camera a: intrusion zone 'car-park' "
        "covers no pixel of its 640x360 published frames (wholly outside them): it would watch nothing; zones are "
        "in pixels of the published frame (the source scaled to the camera's width)"], result.stderr
    with pytest.raises(ConfigError) as caught:  # the grabber refuses the mask at start-up (zones: the detector's)
        load_cameras(path)
    assert [p.location for p in caught.value.problems] == ["cameras[0].privacy_masks[1].polygon"]
    path.write_text(text.replace("[1300, 0], [1400, 0], [1400, 100]", "[1200, 0], [1400, 0], [1400, 100]")
                    .replace("[700, 400], [1200, 400]", "[600, 350], [1200, 400]"))
    result = _validate(path)
    assert result.returncode == 0, result.stderr


def test_validate_refuses_a_missing_source_file(tmp_path):
    """Defect: `vigie validate` passed a file source that does not exist (a warning, exit 0), which the grabber
    then failed. It is an error naming the camera, the path, the file and the line, for a path relative to the
    cameras file, an absolute one and a file:// URL; files that exist pass."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "here.avi").write_bytes(b"not checked here")
    text = authorise_cameras(
        "cameras:\n"
        "  - id: here\n    source: clips/here.avi\n"
        "  - id: relative\n    source: clips/gone.avi\n"
        f"  - id: absolute\n    source: {tmp_path}/nowhere.mp4\n"
        f"  - id: url\n    source: file://{tmp_path}/clips/lost.mp4\n")
    path = write(tmp_path, text)
    source_line = {camera: n + 2 for n, line in enumerate(text.splitlines(), 1)  # id, authorisation, source
                   for camera in ("relative", "absolute", "url") if line.strip() == f"- id: {camera}"}
    result = _validate(path)
    assert result.returncode == 2, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert errors == [
        f"{path}:{source_line['relative']}: cameras[1].source: camera relative: file not found: "
        f"{tmp_path}/clips/gone.avi (source: clips/gone.avi)",
        f"{path}:{source_line['absolute']}: cameras[2].source: camera absolute: file not found: {tmp_path}/nowhere.mp4",
        f"{path}:{source_line['url']}: cameras[3].source: camera url: file not found: {tmp_path}/clips/lost.mp4 "
        f"(source: file://{tmp_path}/clips/lost.mp4)"], result.stderr
    path.write_text(authorise_cameras("cameras:\n  - id: here\n    source: clips/here.avi\n"))
    result = _validate(path)
    assert result.returncode == 0 and "warning" not in result.stdout, result.stdout + result.stderr
