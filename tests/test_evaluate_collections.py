"""``vigie evaluate``: ground truth recognised by content in folders of any name, Vigie's label files,
collections of clips with 95 % intervals, and the suite described by its data file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from tests.clips import data_path
from vigie.core.config import ConfigError
from vigie.evaluate import add_arguments, collection, groundtruth, intervals, labels, main, suite


def _link(folder: Path, **names: Path) -> Path:
    """``folder`` (created) holding a symbolic link ``name -> target`` for each pair."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in names.items():
        (folder / name.replace("__", ".")).symlink_to(target)
    return folder


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vigie evaluate")
    add_arguments(parser)
    return parser.parse_args(argv)


# --- intervals -------------------------------------------------------------------------------


def test_wilson_and_exact_poisson_intervals() -> None:
    low, high = intervals.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = intervals.wilson(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert intervals.wilson(0, 0) is None
    assert intervals.poisson_rate(0, 1.0) == pytest.approx((0.0, 3.6889), abs=1e-4)  # the "rule of 3.7"
    assert intervals.poisson_rate(5, 2.0) == pytest.approx((1.6235 / 2, 11.6683 / 2), abs=1e-4)
    assert intervals.poisson_rate(3, 0.0) is None
    with pytest.raises(ValueError):
        intervals.wilson(3, 2)


def test_bootstrap_is_repeatable_and_needs_enough_units() -> None:
    values = list(np.linspace(1.0, 10.0, 40))
    first = intervals.bootstrap(values, lambda v: float(np.median(v)))
    assert first == intervals.bootstrap(values, lambda v: float(np.median(v)))
    assert first[0] < 5.5 < first[1]
    assert intervals.bootstrap([1.0], lambda v: v[0]) is None
    assert intervals.bootstrap(values, lambda v: None) is None  # undefined in every resample


def _result(name: str, events: int, found: int, false: int, duration_s: float, delays=(), labelled=True,
            unlabelled: int = 0) -> collection.ClipResult:
    row = {"labelled": labelled, "events": events if labelled else None, "found": found if labelled else None,
           "false_alarms": false if labelled else None, "delays_s": list(delays),
           "alarms": [{"correct": True}] * found + [{"correct": False}] * false if labelled else [{}] * unlabelled,
           "unlabelled_alarms": None if labelled else unlabelled}
    return collection.ClipResult(name, name, {"duration_s": duration_s, "kinds": {"fire": row}})


def test_aggregate_sums_labelled_clips_and_counts_the_others_apart() -> None:
    results = [_result("a", 2, 2, 1, 1800.0, [1.0, 3.0]), _result("b", 2, 1, 0, 1800.0, [2.0]),
               _result("c", 0, 0, 0, 0.0, labelled=False, unlabelled=4)]
    fire = collection.aggregate(results)["fire"]
    assert (fire["clips"], fire["hours"], fire["events"], fire["found"], fire["missed"]) == (2, 1.0, 4, 3, 1)
    assert fire["recall"]["value"] == 0.75 and fire["recall"]["ci95"] == pytest.approx(intervals.wilson(3, 4), abs=1e-4)
    assert fire["false_alarms"] == 1 and fire["false_alarms_per_hour"]["value"] == 1.0
    assert fire["false_alarms_per_hour"]["ci95"] == pytest.approx(intervals.poisson_rate(1, 1.0), abs=0.01)
    assert fire["delay_p50_s"]["value"] == 2.0 and fire["delay_p50_s"]["ci95"] is not None
    assert fire["precision"]["value"] == 0.75
    assert (fire["unlabelled_alarms"], fire["unlabelled_clips"]) == (4, 1)


# --- the label file --------------------------------------------------------------------------


def test_own_label_file_events_in_seconds_and_frames_and_where_it_is_found(tmp_path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "a.labels.yaml").write_text(
        "labelled_kinds: [fire, abandoned_object]\nfps: 10\nframe_size: [100, 50]\nevents:\n"
        "  - {kind: fire, start: 20, end: 29, unit: frame, zone: [[10, 10], [30, 10], [30, 20]]}\n"
        "  - {kind: abandoned_object, start: 5.5, unit: s, boxes: [[1, 2, 3, 4]]}\n")
    assert labels.label_file(tmp_path / "a.mp4", alone=False) == tmp_path / "a.labels.yaml"
    assert labels.label_file(tmp_path / "b.mp4", alone=False) is None  # a folder of several clips: by name only
    stills = _link(tmp_path / "monday", Train001=data_path("ucsd_ped2_train", "Train001"),
                   Train002=data_path("ucsd_ped2_train", "Train002"))
    (stills / "labels.yaml").write_text("labelled_kinds: all\n")  # whose? not said: neither clip's
    (stills / "Train002.labels.yaml").write_text("labelled_kinds: all\n")
    assert labels.label_file(stills / "Train001", alone=True) is None
    assert labels.label_file(stills / "Train002", alone=True) == stills / "Train002.labels.yaml"
    gt = groundtruth.load(tmp_path / "a.mp4")
    assert gt.format == "vigie-labels" and gt.file == str(tmp_path / "a.labels.yaml")
    fire = gt.truth("fire")
    assert fire.events(60.0) == [(2.0, 3.0)] and fire.label(2.95) and not fire.label(3.0)
    assert fire.boxes_at(2.5, (200, 100)) == [(20.0, 20.0, 40.0, 20.0)]  # the zone's bounding box, scaled
    left = gt.truth("abandoned_object")
    assert left.events(30.0) == [(5.5, 30.0)] and left.label(1000.0)  # no end: until the clip ends
    assert gt.judge("smoke") == (False, None) and gt.judge("fire")[0]


@pytest.mark.parametrize("text, line, says", [
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 3, unit: minutes}\n", 3, "events[0].unit"),
    ("labelled_kinds: [fire]\nevnts: []\n", 2, "unknown key"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: smoke, start: 1}\n", 1, "not in labelled_kinds: smoke"),
    ("labelled_kinds: [fire]\nevents:\n  - {kind: fire, start: 5, end: 2}\n", 3, "before start"),
    ("labelled_kinds: [fire\n", 2, "YAML syntax error"),
])
def test_malformed_label_file_names_the_file_and_line(tmp_path, text, line, says) -> None:
    folder = _link(tmp_path / "gate-3", frames=data_path("ucsd_ped2_train", "Train001"))
    (folder / "labels.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        main(_parse(str(folder), "--kinds", "fire"))
    message = str(error.value)
    assert message.startswith(f"{folder / 'labels.yaml'}:{line}: ") and says in message, message


# --- recognised by content, in folders of other names -----------------------------------------


def test_ucsd_files_recognised_in_a_folder_named_after_its_camera(tmp_path) -> None:
    ucsd = data_path("ucsd_ped2_test001")
    folder = _link(tmp_path / "cam-entrance-12", frames=ucsd / "frames", gt_frames__txt=ucsd / "gt_frames.txt",
                   gt_masks=ucsd / "gt_masks")
    gt = groundtruth.load(folder / "frames", 10.0)
    assert gt.format == "ucsd" and gt.file == f"{folder / 'gt_frames.txt'} + {folder / 'gt_masks'}/"
    assert gt.kinds_present == {"crowd_movement"} and gt.truth("crowd_movement").events(18.0) == [(6.0, 18.0)]
    assert gt.dataset == "cam-entrance-12"
    bare = _link(tmp_path / "cam-entrance-13", frames=ucsd / "frames")
    assert groundtruth.load(bare / "frames", 10.0).kinds_present is None  # the frames alone: nothing to judge


def test_mot_files_recognised_beside_stills_and_beside_a_video(tmp_path) -> None:
    tud = data_path("mot15_tud_campus")
    lobby = _link(tmp_path / "lobby", img1=tud / "img1", gt=tud / "gt", seqinfo__ini=tud / "seqinfo.ini")
    gt = groundtruth.load(lobby / "img1", 25.0)
    assert gt.format == "mot" and gt.kinds_present == {"intrusion", "density"}
    assert len(gt.persons.boxes) == 71 and gt.persons.fps == 25.0
    pets = data_path("pets2009_s2l1_view001")
    junction = _link(tmp_path / "junction", cam__avi=pets / "pets2009_s2l1_view001_480x360.avi", gt=pets / "gt",
                     seqinfo_original__ini=pets / "seqinfo_original.ini")
    gt = groundtruth.load(junction / "cam.avi")
    # the video's first PTS is one frame in: ground-truth frame n+1 is video frame n
    assert gt.format == "mot" and gt.persons.size == (768, 576) and gt.persons.offset == -1


def test_furg_xml_recognised_by_content_under_another_name(tmp_path) -> None:
    furg = data_path("furg_fire_house6")
    garden = _link(tmp_path / "garden", kitchen__mp4=furg / "house6.mp4", annotations__xml=furg / "house6.xml")
    (garden / "camera-settings.xml").write_text("<settings><gain>3</gain></settings>")  # XML, not FURG
    gt = groundtruth.load(garden / "kitchen.mp4")
    assert gt.format == "furg-xml" and gt.file == str(garden / "annotations.xml")
    assert gt.kinds_present == {"fire"} and gt.truth("fire").label(0.0)


# --- collections ---------------------------------------------------------------------------


def test_collection_tables_json_intervals_and_plots(tmp_path, capsys) -> None:
    """Three clips, each with its own labels (UCSD files with a warm-up, MOT files, a Vigie label file),
    sampled at 2 fps: one table per kind, the JSON with intervals, one plot per clip."""
    ucsd, tud = data_path("ucsd_ped2_test001"), data_path("mot15_tud_campus")
    root = tmp_path / "city"
    cam = _link(root / "cam-entrance-12", frames=ucsd / "frames", gt_frames__txt=ucsd / "gt_frames.txt")
    (cam / "labels.yaml").write_text("labelled_kinds: [crowd_movement, fire]\nwarmup: [../normal/Train001]\n")
    _link(root / "normal", Train001=data_path("ucsd_ped2_train", "Train001"))
    _link(root / "lobby", img1=tud / "img1", gt=tud / "gt", seqinfo__ini=tud / "seqinfo.ini")
    street = _link(root / "street", people__gif=data_path("intel_sample_videos", "people-detection.gif"))
    (street / "people.labels.yaml").write_text(
        "labelled_kinds: all\nevents:\n  - {kind: fire, start: 0.5, end: 1.5, unit: s}\n")
    out, plots = tmp_path / "out.json", tmp_path / "plots"
    assert main(_parse(str(root), "--fps", "2", "--warmup-min-s", "0", "--kinds", "crowd_movement,fire",
                       "--json", str(out), "--plots", str(plots), "--no-object-classes")) == 0
    printed = capsys.readouterr()
    assert "crowd_movement over" in printed.out and "fire over" in printed.out and "95 %" in printed.out
    assert "evaluating" in printed.err or "evaluated" in printed.err  # the progress bar, on stderr
    report = json.loads(out.read_text())
    assert set(report) == {"collection", "level", "plots", "clips", "kinds", "options"} and report["level"] == 0.95
    clips = {c["name"]: c for c in report["clips"]}
    assert set(clips) == {"cam-entrance-12", "lobby", "street/people.gif"}  # the warm-up clip is not evaluated
    assert all(c["error"] is None and Path(c["plot"]).read_bytes()[:4] == b"\x89PNG" for c in clips.values())
    cam_summary = clips["cam-entrance-12"]["summary"]
    assert cam_summary["ground_truth"]["format"] == "ucsd + vigie-labels"
    assert cam_summary["warmup"]["paths"] == [str(root / "normal" / "Train001")]
    assert clips["lobby"]["summary"]["ground_truth"]["format"] == "mot"
    fire, crowd = report["kinds"]["fire"], report["kinds"]["crowd_movement"]
    assert (fire["clips"], fire["events"]) == (2, 1)  # labelled on the camera (no event) and the street
    assert fire["unlabelled_clips"] == 1  # the lobby's MOT files label persons only
    assert (crowd["clips"], crowd["events"]) == (2, 1)  # the street is labelled for all kinds, no crowd event
    for figure in ("recall", "false_alarms_per_hour"):
        assert len(fire[figure]["ci95"]) == 2 and fire[figure]["ci95"][0] <= fire[figure]["ci95"][1]
    assert set(crowd["auc"]) == {"value", "ci95"} and crowd["auc"]["value"] is not None


def test_a_folder_of_one_clip_is_not_a_collection(tmp_path) -> None:
    assert not collection.is_collection(data_path("ucsd_ped2_test001"))
    assert not collection.is_collection(data_path("aboda_video4"))
    assert collection.is_collection(data_path("intel_sample_videos"))
    (tmp_path / "empty").mkdir()
    assert main(_parse(str(tmp_path / "empty"))) == 2  # holds no clip


# --- the suite's data file -----------------------------------------------------------------


def test_suite_cases_and_label_files_are_data() -> None:
    cases = suite.load().cases
    assert len(cases) >= 16 and len({c.name for c in cases}) == len(cases)
    for case in cases:
        label_file = suite.LABELS_DIR / (case.labels or f"{case.clip}.yaml")
        assert label_file.is_file(), f"{case.name}: no label file {label_file}"
        labels.read(label_file)  # valid
    ucsd = next(c for c in cases if c.clip == "ucsd_ped2_test001")
    assert [(t.measure, t.min, t.max) for t in ucsd.targets] == [("auc", 0.85, None), ("recall", 1, None),
                                                                   ("false_alarms", None, 0), ("alarms", None, 0)]
    assert ucsd.kinds is None and ucsd.targets[-1].other_kinds  # every kind runs; the others stay silent
    aboda = next(c for c in cases if c.clip == "aboda_video4")
    assert any(t.max == "dwell_s + 2" for t in aboda.targets)


def test_malformed_suite_file_names_its_line(tmp_path) -> None:
    bad = tmp_path / "suite.yaml"
    bad.write_text("cases:\n  - name: x\n    clip: a.mp4\n    targets:\n      - {measure: speed, kind: fire, max: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:5: cases\[0\]\.targets\[0\]\.measure"):
        suite.load(bad)


def test_clips_in_a_process_pool_give_the_same_figures_in_the_same_order(tmp_path) -> None:
    root = _link(tmp_path / "two", a__gif=data_path("intel_sample_videos", "people-detection.gif"),
                 b__gif=data_path("intel_sample_videos", "person-bicycle-car-detection.gif"))
    (root / "a.labels.yaml").write_text("labelled_kinds: all\n")
    items = collection.discover(root)
    options = collection.Options(fps=4.0, kinds=["crowd_movement", "fire"], object_classes=False)
    alone = collection.run(items, options, jobs=1, progress=False)
    pooled = collection.run(items, options, jobs=2, progress=False)
    assert [r.name for r in pooled] == ["a.gif", "b.gif"]
    assert [r.summary for r in pooled] == [r.summary for r in alone]
    assert collection.aggregate(pooled) == collection.aggregate(alone)
