"""A city's folder of clips that nobody has labelled yet: every clip is still played and its alarms
listed per camera as unlabelled, never counted as right or wrong; a clip labelled for a kind
beside one that is not keeps its judged figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.clips import data_path
from vigie.evaluate import add_arguments, main


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vigie evaluate")
    add_arguments(parser)
    return parser.parse_args(argv)


def _cameras(root: Path) -> None:
    """Two cameras: a yard where flames burn (FURG house6, no annotation beside it) and a road."""
    for camera, name, target in (("yard", "east.mp4", data_path("furg_fire_house6", "house6.mp4")),
                                 ("road", "west.avi", data_path("bgslibrary_traffic", "video02.avi"))):
        (root / camera).mkdir(parents=True)
        (root / camera / name).symlink_to(target)


def test_a_collection_without_labels_lists_each_clips_alarms_unjudged(tmp_path, capsys) -> None:
    root = tmp_path / "city"
    _cameras(root)
    out = tmp_path / "out.json"
    assert main(_parse(str(root), "--fps", "2", "--kinds", "fire", "--json", str(out), "--no-object-classes")) == 0
    printed = capsys.readouterr().out
    assert "no clip is labelled for it; alarms listed, not judged" in " ".join(printed.split())  # the title wraps
    lines = printed.splitlines()
    yard = next(line for line in lines if "yard/east.mp4" in line)
    assert "unlabelled" in yard and "—" in yard  # its alarms, not judged
    total = next(line for line in lines if "all 0 clips" in line)
    assert set(total.replace("│", " ").split()) == {"all", "0", "clips", "—"}  # nothing judged: no figure
    report = json.loads(out.read_text())
    assert report["options"]["fps"] == 2 and report["options"]["kinds"] == ["fire"]  # how it was run
    assert report["options"]["tolerance_s"] == 1.0
    assert [c["name"] for c in report["clips"]] == ["road/west.avi", "yard/east.mp4"]
    assert all(c["error"] is None and c["summary"]["ground_truth"]["file"] is None for c in report["clips"])
    fire = report["kinds"]["fire"]
    assert fire["clips"] == 0 and fire["unlabelled_clips"] == 2 and fire["unlabelled_alarms"] >= 1
    assert fire["recall"]["value"] is None and fire["false_alarms_per_hour"]["value"] is None


def test_a_clip_labelled_for_a_kind_beside_one_that_is_not(tmp_path, capsys) -> None:
    root = tmp_path / "city"
    _cameras(root)
    (root / "road" / "labels.yaml").write_text("labelled_kinds: [fire]\n")  # watched: no fire on the road
    assert main(_parse(str(root), "--fps", "2", "--kinds", "fire", "--no-object-classes")) == 0
    printed = capsys.readouterr().out
    assert "1 clip labelled" in " ".join(printed.split())
    lines = printed.splitlines()
    assert "unlabelled" in next(line for line in lines if "yard/east.mp4" in line)
    total = next(line for line in lines if "all 1 clip " in line).replace("│", " ").split()
    assert total[3:5] == ["0", "0"]  # events, found (the road holds no fire)
