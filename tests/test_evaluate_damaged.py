"""Damaged files in a city's collection: a file that is no video is reported and the other clips go
on; a truncated recording is evaluated over what decodes, with a warning that it is much shorter
than its header declares (its later events would otherwise look missed by the analytics)."""

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


def test_a_broken_file_is_reported_and_a_truncated_one_warned_about(tmp_path, capsys) -> None:
    root = tmp_path / "city"
    for camera in ("gate", "lot", "yard"):
        (root / camera).mkdir(parents=True)
    whole = data_path("aboda_video4", "video4.avi")  # 39.0 s declared (1169 frames)
    (root / "gate" / "cam5.avi").write_bytes(whole.read_bytes()[:200_000])  # the first 4.5 s
    (root / "gate" / "cam5.labels.yaml").write_text("labelled_kinds: [fire]\n")
    (root / "lot" / "cam6.mp4").write_bytes(b"\x00\x01not a video" * 300)
    (root / "yard" / "cam7.mp4").symlink_to(data_path("fire_smoke_hillside", "hillside_fire_smoke.mp4"))
    out = tmp_path / "out.json"
    assert main(_parse(str(root), "--fps", "2", "--kinds", "fire", "--json", str(out), "--no-object-classes")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "lot/cam6.mp4: not evaluated: " in printed
    assert "gate/cam5.avi: warning: decoded 4.5 s of the 39.0 s the file declares: truncated or damaged?" in printed
    clips = {c["name"]: c for c in json.loads(out.read_text())["clips"]}
    assert clips["lot/cam6.mp4"]["error"] and clips["lot/cam6.mp4"]["summary"] is None
    assert len(clips["gate/cam5.avi"]["summary"]["warnings"]) == 1
    assert clips["yard/cam7.mp4"]["error"] is None and clips["yard/cam7.mp4"]["summary"]["warnings"] == []
    assert main(_parse(str(root / "gate" / "cam5.avi"), "--fps", "2", "--kinds", "fire")) == 0  # one clip
    assert "warning: decoded 4.5 s of the 39.0 s" in " ".join(capsys.readouterr().out.split())
