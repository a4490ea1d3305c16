"""An analyst's mistakes stop ``vigie evaluate`` before any work, named: a label file that does not
fit its clip (unknown kinds, keys given twice, empty spans, events past the clip's end, boxes
outside its frame, missing warm-up clips: file, line and field), a labels.yaml that labels no
clip, options that do not apply to the path (in a collection too: the whole command stops
before a clip is played)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.clips import data_path
from vigie.core.errors import ConfigError  # the files' (vigie.core.config) and the options'
from vigie.evaluate import add_arguments, main


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vigie evaluate")
    add_arguments(parser)
    return parser.parse_args(argv)


def _camera(folder: Path, labels: str) -> Path:
    """A camera folder holding the hillside clip (26.5 s, 24 fps) under another name, and ``labels``."""
    folder.mkdir(parents=True)
    (folder / "ridge.mp4").symlink_to(data_path("fire_smoke_hillside", "hillside_fire_smoke.mp4"))
    (folder / "labels.yaml").write_text(labels)
    return folder


@pytest.mark.parametrize("text, line, says", [
    ("labelled_kinds: [fire, flood]\n", 1, "labelled_kinds: unknown kind 'flood' (known kinds: "),
    ("labelled_kinds: all\nevents:\n  - {kind: flames, start: 1}\n", 3, "events[0].kind: unknown kind 'flames'"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 4, end: 4, unit: s}\n", 3, "events[0]: end 4.0 equals start"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 1}\n  - {kind: fire, start: 100, end: 200}\n", 4,
     "events[1].start: 100 s is past the clip's end (26.5 s)"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 5000, unit: frame}\n", 3,
     "events[0].start: frame 5000 is past the clip's end (26.5 s, 636 frames)"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 2, end: 90}\n", 3, "events[0].end: 90 s is past"),
    ("labelled_kinds: [fire]\nwarmup: [../normal/monday.mp4]\n", 2, "warmup[0]: no such clip or folder: ../normal/monday.mp4"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 1, boxes: [[10, 10, 50, 50], [1500, 900, 60, 60]]}\n", 3,
     "events[0].boxes[1]: [1500, 900, 60, 60] (x, y, w, h) is empty or outside the 400x240 frame of the clip; "
     "give frame_size"),
    ("labelled_kinds: [fire]\nframe_size: [1920, 1080]\nevents:\n  - {kind: fire, start: 1,\n"
     "     zone: [[0, 0], [2000, 0], [0, 50]]}\n", 5, "events[0].zone[1]: [2000, 0] is outside the 1920x1080 frame"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 1}\nevents:\n  - {kind: fire, start: 5}\n", 4,
     "events: given twice (also line 2): the first would be silently lost"),
])
def test_a_label_file_that_does_not_fit_its_clip_is_named_with_its_line(tmp_path, text, line, says) -> None:
    folder = _camera(tmp_path / "cam-17", text)
    with pytest.raises(ConfigError) as error:
        main(_parse(str(folder), "--kinds", "fire", "--fps", "1"))
    message = str(error.value)
    assert message.startswith(f"{folder / 'labels.yaml'}:{line}: ") and says in message, message


def test_a_frame_span_of_one_frame_and_an_end_just_past_the_clip_are_accepted(tmp_path) -> None:
    from vigie.evaluate import groundtruth

    folder = _camera(tmp_path / "cam-18", "labelled_kinds: [fire, smoke]\nevents:\n"
                     "  - {kind: fire, start: 24, end: 24, unit: frame}\n  - {kind: smoke, start: 1, end: 27}\n")
    gt = groundtruth.load(folder / "ridge.mp4")
    assert gt.truth("fire").events(30.0) == [(1.0, 25 / 24)] and gt.truth("smoke").events(26.5) == [(1.0, 26.5)]


def test_a_collection_stops_on_a_misfitting_label_file_before_any_clip_is_played(tmp_path, capsys) -> None:
    root = tmp_path / "city"
    _camera(root / "north", "labelled_kinds: [fire]\n")
    bad = _camera(root / "south", "labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 60}\n")
    with pytest.raises(ConfigError, match=rf"^{bad / 'labels.yaml'}:3: events\[0\]\.start: 60 s is past"):
        main(_parse(str(root), "--kinds", "fire", "--fps", "1"))
    assert "evaluat" not in capsys.readouterr().err  # no progress bar: nothing was played


def test_kinds_a_clip_is_labelled_for_and_the_run_leaves_out_are_said(tmp_path, capsys) -> None:
    mot = data_path("mot15_tud_campus")
    folder = tmp_path / "plaza-cam3"
    folder.mkdir()
    for name in ("gt", "img1", "seqinfo.ini"):
        (folder / name).symlink_to(mot / name)
    assert main(_parse(str(folder), "--kinds", "fire", "--fps", "2")) == 0
    table = " ".join(capsys.readouterr().out.split())  # the caption wraps
    assert "labelled but not run: density, intrusion (add them with --kinds)" in table
    assert main(_parse(str(folder), "--kinds", "fire,intrusion", "--fps", "2", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labelled_not_run"] == ["density"] and summary["kinds"]["intrusion"]["labelled"]


def test_a_plain_labels_file_beside_several_clips_is_refused_not_ignored(tmp_path) -> None:
    folder = _camera(tmp_path / "city" / "south", "labelled_kinds: [fire]\n")
    (folder / "road.avi").symlink_to(data_path("bgslibrary_traffic", "video02.avi"))
    says = r"labels no clip: its folder holds several clips \(ridge\.mp4, road\.avi\): name the file after"
    for path in (tmp_path / "city", folder / "ridge.mp4"):  # a collection, one of its clips
        with pytest.raises(ConfigError, match=rf"^{folder / 'labels.yaml'}: {says}"):
            main(_parse(str(path), "--kinds", "fire", "--fps", "1"))
    (folder / "labels.yaml").rename(folder / "ridge.labels.yaml")  # as the message says
    from vigie.evaluate import groundtruth

    assert groundtruth.load(folder / "ridge.mp4").file == str(folder / "ridge.labels.yaml")
    stills = tmp_path / "monday"
    stills.mkdir()
    (stills / "Train001").symlink_to(data_path("ucsd_ped2_train", "Train001"))
    (stills / "labels.yaml").write_text("labelled_kinds: all\n")
    with pytest.raises(ConfigError, match=r"labels\.yaml: labels no clip: a folder of stills such as Train001 reads"):
        main(_parse(str(stills / "Train001"), "--kinds", "fire", "--fps", "1"))


def test_plot_options_that_do_not_apply_to_the_path_are_refused_before_any_work(tmp_path) -> None:
    collection = tmp_path / "city"
    _camera(collection / "north", "labelled_kinds: [fire]\n")
    _camera(collection / "south", "labelled_kinds: [fire]\n")
    with pytest.raises(ConfigError, match=r"^--plot draws one clip; for a collection .* give --plots DIR"):
        main(_parse(str(collection), "--kinds", "fire", "--plot", str(tmp_path / "x.png")))
    with pytest.raises(ConfigError, match=r"^--plots DIR draws the clips of a collection; .*north is one clip"):
        main(_parse(str(collection / "north"), "--kinds", "fire", "--plots", str(tmp_path / "plots")))
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "plots").exists()


def test_one_clip_options_on_a_collection_are_refused_before_any_work(tmp_path) -> None:
    # they were silently ignored: a collection "under greyscale" gave the untransformed figures
    collection = tmp_path / "city"
    _camera(collection / "north", "labelled_kinds: [fire]\n")
    _camera(collection / "south", "labelled_kinds: [fire]\n")
    with pytest.raises(ConfigError, match=r"^--transform apply to one clip; in a collection each clip reads"):
        main(_parse(str(collection), "--kinds", "fire", "--transform", "greyscale"))
    labels = collection / "north" / "labels.yaml"
    with pytest.raises(ConfigError, match=r"^--labels and --transform apply to one clip"):
        main(_parse(str(collection), "--labels", str(labels), "--transform", "greyscale"))


@pytest.mark.parametrize("text, says", [
    ("61-100\n200-abc\n", ":2: not a frame range: '200-abc'"),
    ("# cyclist\n180-61\n", ":2: 180-61: frames count from 1 and a range ends at or after its start"),
    ("0-5\n", ":1: 0-5: frames count from 1"),
    ("61-500\n", ":1: 61-500: past the clip's last frame, 120"),
])
def test_a_hand_edited_ucsd_frame_list_is_named_with_its_line(tmp_path, text, says) -> None:
    """A camera folder with UCSD-style files: in a collection the clip is reported (before it is
    played) and the others go on; alone, the command says it."""
    root = tmp_path / "city"
    bad = root / "cam-31"
    bad.mkdir(parents=True)
    (bad / "frames").symlink_to(data_path("ucsd_ped2_train", "Train001"))  # 120 stills
    (bad / "gt_frames.txt").write_text(text)
    _camera(root / "cam-32", "labelled_kinds: [fire]\n")
    from vigie.evaluate import collection

    results = collection.run(collection.discover(root), collection.Options(fps=1.0, kinds=["fire"]), progress=False)
    assert results[0].error.startswith(f"{bad / 'gt_frames.txt'}{says}") and results[0].summary is None
    assert results[1].error is None and results[1].summary["frames"] > 0
    assert main(_parse(str(bad), "--kinds", "fire", "--fps", "1")) == 2
