"""``vigie evaluate``: metrics on hand-made sequences, ground-truth readers on the real files, one end-to-end run."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from tests.clips import data_path
from vigie.core.authorisations import authorise_cameras
from vigie.evaluate import add_arguments, groundtruth, main, metrics
from vigie.evaluate.metrics import Alarm, alarms_from, match_events, roc_auc
from vigie.evaluate.runner import resolve_clip
from vigie.evaluate.suite import LABELS_DIR

# --- metrics --------------------------------------------------------------------------------


def _brute_auc(scores, labels) -> float:
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def test_auc_perfect_inverse_and_tied() -> None:
    labels = [False, False, True, True, True]
    assert roc_auc([0.1, 0.2, 0.7, 0.8, 0.9], labels) == 1.0
    assert roc_auc([0.9, 0.8, 0.3, 0.2, 0.1], labels) == 0.0
    assert roc_auc([0.5] * 5, labels) == 0.5  # every pair tied: counted half
    # one positive tied with one negative, the rest separated: 5.5 pairs of 6 won
    assert roc_auc([0.1, 0.5, 0.5, 0.8, 0.9], labels) == pytest.approx(5.5 / 6)


def test_auc_matches_pairwise_count_on_random_scores_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        labels = rng.random(n) < 0.3
        if labels.all() or not labels.any():
            continue
        scores = np.round(rng.random(n), 1)  # many ties
        assert roc_auc(scores, labels) == pytest.approx(_brute_auc(scores, labels), abs=1e-12)


def test_auc_of_random_scores_is_near_one_half() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(20000) < 0.5
    assert abs(roc_auc(rng.random(20000), labels) - 0.5) < 0.02


def test_auc_undefined_without_both_classes_and_rejects_bad_input() -> None:
    assert roc_auc([0.1, 0.2], [False, False]) is None
    assert roc_auc([0.1, 0.2], [True, True]) is None
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [True])
    with pytest.raises(ValueError):
        roc_auc([0.1, math.nan], [True, False])


def test_average_ranks_share_ties() -> None:
    assert metrics.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_runs_of_abnormal_frames() -> None:
    assert metrics.runs([0, 1, 1, 0, 0, 1, 0, 1, 1]) == [(1, 3), (5, 6), (7, 9)]
    assert metrics.runs([]) == []
    assert metrics.runs([1, 1]) == [(0, 2)]


def test_alarm_is_the_first_frame_of_each_track() -> None:
    dets = [(3.0, "c/k/1", [(0, 0, 5, 5)], (10, 10)), (1.0, "c/k/1", [(1, 1, 5, 5)], (10, 10)),
            (2.0, "c/k/2", [], None), (4.0, "", [], None), (5.0, "", [], None)]
    alarms = alarms_from(dets)
    assert [(a.t_s, a.track) for a in alarms] == [(1.0, "c/k/1"), (2.0, "c/k/2"), (4.0, ""), (5.0, "")]
    assert alarms[0].boxes == ((1.0, 1.0, 5.0, 5.0),)


def test_event_matching_precision_recall_and_delay() -> None:
    events = [(10.0, 20.0), (40.0, 50.0), (70.0, 80.0)]
    alarms = [Alarm(12.5, "a"), Alarm(15.0, "b"),  # event 1: delay 2.5, two true alarms
              Alarm(39.5, "c"),  # early by 0.5 s, within the 1 s tolerance: event 2, delay -0.5
              Alarm(30.0, "d"), Alarm(81.5, "e")]  # outside every event (beyond the tolerance)
    result = match_events(alarms, events, tolerance_s=1.0)
    assert result.correct == [True, True, False, True, False]  # sorted by time: 12.5, 15, 30, 39.5, 81.5
    assert result.detected == [True, True, False]
    assert result.precision == pytest.approx(3 / 5)
    assert result.recall == pytest.approx(2 / 3)
    assert result.delays_s == pytest.approx([2.5, -0.5])
    assert result.delay_s == pytest.approx(1.0)
    assert (result.true_alarms, result.false_alarms) == (3, 2)


def test_event_matching_edge_cases() -> None:
    nothing = match_events([], [])
    assert (nothing.precision, nothing.recall, nothing.delay_s) == (None, None, None)
    missed = match_events([], [(0.0, 5.0)])
    assert (missed.precision, missed.recall) == (None, 0.0)
    false_only = match_events([Alarm(1.0, "x"), Alarm(2.0, "y")], [])
    assert (false_only.precision, false_only.false_alarms) == (0.0, 2)
    strict = match_events([Alarm(9.5, "x")], [(10.0, 12.0)], tolerance_s=0.0)
    assert strict.correct == [False]
    with pytest.raises(ValueError):
        match_events([], [], tolerance_s=-1)


def test_event_matching_requires_box_overlap_when_boxes_exist() -> None:
    gt = [(10.0, 10.0, 20.0, 20.0)]
    on = Alarm(5.0, "on", ((15.0, 15.0, 4.0, 4.0),))
    off = Alarm(6.0, "off", ((50.0, 50.0, 4.0, 4.0),))
    touching = Alarm(7.0, "touch", ((30.0, 10.0, 5.0, 5.0),))  # shares an edge only: no area
    check = lambda alarm, event: metrics.boxes_overlap(alarm.boxes, gt)  # noqa: E731
    result = match_events([on, off, touching], [(0.0, 10.0)], 1.0, check)
    assert result.correct == [True, False, False]
    assert result.recall == 1.0 and result.delay_s == 5.0
    unknown = match_events([on], [(0.0, 10.0)], 1.0, lambda a, e: None)  # no boxes to compare: time decides
    assert unknown.correct == [True]


def test_per_hour() -> None:
    assert metrics.per_hour(3, 1800.0) == 6.0
    assert metrics.per_hour(1, 0.0) is None


# --- ground truth ---------------------------------------------------------------------------


@pytest.mark.data
def test_ucsd_ground_truth_frames_and_masks() -> None:
    folder = data_path("ucsd_ped2_test001")
    labels = groundtruth.read_ucsd_frames(folder / "gt_frames.txt", 180)
    assert labels.sum() == 120 and labels[60:].all() and not labels[:60].any()  # 61-180, 1-based
    boxes, size = groundtruth.read_masks(folder / "gt_masks")
    assert size == (360, 240) and len(boxes) == 180
    assert [bool(b) for b in boxes] == labels.tolist()  # masks are non-empty exactly on abnormal frames
    gt = groundtruth.load(folder / "frames", 10.0)
    truth = gt.truth("crowd_movement")
    assert gt.kinds_present == {"crowd_movement"} and gt.format == "ucsd" and "gt_frames.txt" in gt.file
    assert truth.events(18.0) == [(6.0, 18.0)]
    assert not truth.label(5.9) and truth.label(6.0)
    x, y, w, h = truth.boxes_at(10.0, (720, 480))[0]  # scaled to a frame twice the size
    x0, y0, w0, h0 = truth.boxes_at(10.0, (360, 240))[0]
    assert (x, y, w, h) == (2 * x0, 2 * y0, 2 * w0, 2 * h0)
    assert gt.truth("fire") is None and not gt.labelled("fire")  # not labelled: its alarms are counted apart


@pytest.mark.data
def test_furg_xml_flame_boxes() -> None:
    boxes, size, rate = groundtruth.read_furg_xml(data_path("furg_fire_house6", "house6.xml"))
    assert size == (426, 240) and rate > 0
    assert len(boxes) == 900 and all(1 <= len(b) <= 5 for b in boxes)
    assert boxes[0] == [(176.0, 84.0, 24.0, 33.0), (154.0, 152.0, 17.0, 44.0)]
    for frame in boxes:
        for x, y, w, h in frame:
            assert 0 <= x and 0 <= y and x + w <= 426 + 1 and y + h <= 240 + 1
    gt = groundtruth.load(data_path("furg_fire_house6", "house6.mp4"))
    assert gt.format == "furg-xml" and gt.kinds_present == {"fire"} and gt.truth("fire").fps == pytest.approx(29.97)
    # the suite's label file adds smoke over the whole clip, and labels every kind
    gt = groundtruth.load(data_path("furg_fire_house6", "house6.mp4"), labels=LABELS_DIR / "furg_fire_house6.yaml")
    assert gt.format == "furg-xml + vigie-labels" and gt.labelled_all and gt.truth("smoke").label(25.0)
    assert gt.truth("fire").fps == pytest.approx(29.97)


@pytest.mark.data
def test_mot_and_pets_person_boxes_give_intrusion_and_density_truth() -> None:
    tud = groundtruth.load(data_path("mot15_tud_campus", "img1"), 25.0)
    assert tud.persons.fps == 25.0 and len(tud.persons.boxes) == 71
    assert sum(len(b) for b in tud.persons.boxes) == 359

    class Cfg:
        zones: list = []
        max_persons = 3  # over from 4 people

    intrusion = tud.truth("intrusion", Cfg(), (640, 480))
    assert intrusion.labels.all()  # someone walks past in every frame
    density = tud.truth("density", Cfg(), (640, 480))
    counts = np.array([len(b) for b in tud.persons.boxes])
    assert (density.labels == (counts >= 4)).all()
    assert tud.truth("density", object(), (640, 480)) is None  # no count limit: not judged

    pets = groundtruth.load(data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi"))
    assert pets.persons.size == (768, 576) and len(pets.persons.boxes) == 795
    # boxes come back in 480x360 pixels (x 0.625)
    (x, y, w, h), (x0, y0, w0, h0) = pets.truth("intrusion", Cfg(), (480, 360)).boxes_at(1.0, (480, 360))[0], \
        pets.persons.boxes[9][0]
    assert (x, y, w, h) == pytest.approx((x0 * 0.625, y0 * 0.625, w0 * 0.625, h0 * 0.625))


@pytest.mark.data
def test_aboda_timeline_is_a_label_file_of_the_suite_and_approximate() -> None:
    assert groundtruth.load(data_path("aboda_video4", "video4.avi")).kinds_present is None  # nothing beside it
    gt = groundtruth.load(data_path("aboda_video4", "video4.avi"), labels=LABELS_DIR / "aboda_video4.yaml")
    truth = gt.truth("abandoned_object")
    assert gt.approximate and truth.approximate and "APPROXIMATE" in gt.source
    assert not truth.label(15.0) and truth.label(25.0) and truth.label(60.0)
    assert truth.boxes_at(25.0, (640, 427))[0] == pytest.approx((452 * 640 / 720, 385 * 427 / 480,
                                                                 50 * 640 / 720, 50 * 427 / 480))


@pytest.mark.data
def test_normal_scenes_contain_no_event_and_stills_rates() -> None:
    for clip in ("intel_sample_videos/car-detection.mp4", "bgslibrary_traffic/video02.avi"):
        assert groundtruth.load(data_path(*clip.split("/"))).kinds_present is None  # no labels beside it
        gt = groundtruth.load(data_path(*clip.split("/")), labels=LABELS_DIR / f"{clip}.yaml")
        assert gt.judge("fire") == (True, None)  # labelled, no event: every fire alarm is false
        assert gt.judge("crowd_movement") == (False, None)  # not labelled: its alarms are counted apart
    assert groundtruth.stills_fps(data_path("mot15_tud_campus", "img1")) == 25.0  # seqinfo.ini
    assert groundtruth.stills_fps(data_path("ucsd_ped2_test001", "frames")) == 10.0  # SOURCE.md "~10 fps"
    assert groundtruth.stills_fps(data_path("bgslibrary_traffic", "wsdot_i5_frames")) == 10.0  # unknown: default
    assert groundtruth.load("/tmp").kinds_present is None  # no label file: alarms are not judged


@pytest.mark.data
def test_dataset_folders_resolve_to_their_clip() -> None:
    assert resolve_clip(data_path("ucsd_ped2_test001")).source.name == "frames"
    assert resolve_clip(data_path("mot15_tud_campus")).stills_fps == 25.0
    assert resolve_clip(data_path("aboda_video4")).source.name == "video4.avi"
    with pytest.raises(ValueError, match="several clips"):
        resolve_clip(data_path("bgslibrary_traffic"))
    with pytest.raises(FileNotFoundError):
        resolve_clip(data_path() / "no-such-clip")


# --- end to end -----------------------------------------------------------------------------


@pytest.mark.data
def test_evaluate_ucsd_ped2_with_warmup_json_and_plot(tmp_path, capsys) -> None:
    cameras = tmp_path / "cameras.yaml"
    # a short learning period, so the camera is past its warm-up after one training clip
    cameras.write_text(authorise_cameras("cameras:\n  - id: ped2\n    source: unused.mp4\n"
                       "    analytics:\n      crowd_movement: {warmup_s: 10}\n"))
    plot = tmp_path / "ped2.png"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([
        str(data_path("ucsd_ped2_test001")), "--json", "--plot", str(plot), "--fps", "5",
        "--warmup", str(data_path("ucsd_ped2_train", "Train001")), "--warmup-min-s", "0",
        "--cameras", str(cameras), "--kinds", "crowd_movement,abandoned_object",
    ])
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"path", "frames", "duration_s", "fps", "kinds"}
    assert out["frames"] == 90 and out["fps"] == 5.0 and out["duration_s"] == pytest.approx(18.0)
    assert out["ground_truth"]["kinds_present"] == ["crowd_movement"] and out["ground_truth"]["format"] == "ucsd"
    assert out["ground_truth"]["file"].endswith("gt_frames.txt + " + str(data_path("ucsd_ped2_test001", "gt_masks")) + "/")
    assert out["warmup"]["frames"] == 60  # Train001: 120 stills at 10 fps, sampled at 5 fps
    assert set(out["kinds"]) == {"crowd_movement", "abandoned_object"}
    keys = {"auc", "precision", "recall", "delay_s", "false_alarms", "false_alarms_per_hour", "alarms"}
    for kind, row in out["kinds"].items():
        assert set(row) >= keys, kind
        assert row["error"] is None, row["error"]
        for alarm in row["alarms"]:
            assert set(alarm) >= {"t_s", "track", "box"} and 0.0 <= alarm["t_s"] <= 18.0
            assert alarm["box"] is None or len(alarm["box"]) == 4
    crowd = out["kinds"]["crowd_movement"]
    assert isinstance(crowd["auc"], float) and 0.0 <= crowd["auc"] <= 1.0
    assert crowd["recall"] in (0.0, 1.0)  # one event: frames 61-180
    assert crowd["labelled"] and crowd["events"] == 1 and crowd["found"] == crowd["recall"]
    abandoned = out["kinds"]["abandoned_object"]  # the UCSD files label crowd movement only: counted apart
    assert abandoned["auc"] is None and abandoned["recall"] is None and not abandoned["labelled"]
    assert abandoned["false_alarms"] is None and abandoned["unlabelled_alarms"] == len(abandoned["alarms"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vigie evaluate")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_evaluate_reports_an_unusable_clip_as_a_usage_error(tmp_path, capsys) -> None:
    assert main(_parse(str(tmp_path / "missing.mp4"), "--json")) == 2
    err = capsys.readouterr().err
    assert "no such clip" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "notes.txt").write_text("not a video")
    assert main(_parse(str(tmp_path / "notes.txt"), "--kinds", "crowd_movement")) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main(_parse(str(tmp_path / "empty"))) == 2
    assert "holds no clip" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--tolerance-s", "-5"], "argument --tolerance-s: must be >= 0.0, got -5"),
    (["--warmup-min-s", "-1"], "argument --warmup-min-s: must be >= 0.0, got -1"),
    (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["--plot", "/nonexistent/dir/x.png"], "argument --plot: folder /nonexistent/dir does not exist"),
])
def test_evaluate_rejects_bad_options_before_any_work(argv, says, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        _parse("clip.mp4", *argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(says)


def test_evaluate_names_the_unknown_kind_device_and_camera(tmp_path) -> None:
    from vigie.core.errors import ConfigError
    from vigie.evaluate.runner import Clip, camera_for

    clip = str(data_path("ucsd_ped2_test001"))
    with pytest.raises(ConfigError) as kinds:
        main(_parse(clip, "--kinds", "crowd_movement,nonsense"))
    assert str(kinds.value).startswith("--kinds: unknown kind 'nonsense'") and "abandoned_object" in str(kinds.value)
    with pytest.raises(ConfigError, match=r"^--device banana: not a torch device"):
        main(_parse(clip, "--device", "banana"))
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: a\n    source: a.mp4\n  - id: b\n    source: b.mp4\n"))
    with pytest.raises(ConfigError) as camera:
        camera_for(Clip(tmp_path / "x.mp4"), None, str(cameras), "nosuch")
    assert str(camera.value) == f"unknown camera 'nosuch' in {cameras} (cameras: a, b)"
    with pytest.raises(ConfigError, match="name the camera to evaluate with --camera"):
        camera_for(Clip(tmp_path / "x.mp4"), None, str(cameras), None)


def test_evaluate_command_exits_2_without_a_traceback(tmp_path) -> None:
    import subprocess
    import sys

    for module in ("vigie", "vigie.evaluate"):
        prefix = [sys.executable, "-m", module] + (["evaluate"] if module == "vigie" else [])
        run = subprocess.run([*prefix, "--suite", str(tmp_path / "nonexistent")], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2 and "--suite" in run.stderr and "no such folder" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


# -- the quality suite (vigie evaluate --suite) -------------------------------------------

def test_suite_fails_when_no_clip_is_found_and_on_a_missing_folder(tmp_path, capsys) -> None:
    from vigie.core.errors import ConfigError
    from vigie.evaluate import suite

    assert suite.main(str(tmp_path), as_json=True) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"no clip of the suite found under {tmp_path}" in captured.err
    with pytest.raises(ConfigError, match="no such folder"):
        suite.main(str(tmp_path / "nonexistent"))


def test_suite_skips_the_cases_whose_clips_are_absent(tmp_path, capsys) -> None:
    from vigie.evaluate import suite

    clip = tmp_path / "data" / "present.gif"
    clip.parent.mkdir()
    clip.symlink_to(data_path("intel_sample_videos", "people-detection.gif"))
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text("cases:\n"
                          "  - {name: present, clip: present.gif, kinds: [fire],"
                          " targets: [{measure: alarms, kind: fire, max: 0}]}\n"
                          "  - {name: absent, clip: absent.mp4, targets: [{measure: alarms, kind: fire, max: 0}]}\n")
    assert suite.main(str(tmp_path / "data"), as_json=True, suite_file=suite_file) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cases"]["absent"] is None and out["cases"]["present"] == [
        {"measure": "fire alarms", "value": "0", "target": "<= 0", "met": True}]
    assert [c["name"] for c in out["collection"]["clips"]] == ["present"]


def test_suite_checks_a_clip_and_fails_on_a_missed_target(tmp_path, capsys) -> None:
    from vigie.evaluate import suite

    data = data_path()
    tud = next(c for c in suite.load().cases if c.clip == "mot15_tud_campus")
    (row,) = suite.run_case(tud, data)
    assert row == ("abandoned_object / fire / smoke / person_down / tamper alarms", "0 / 0 / 0 / 0 / 0", "<= 0", True)
    # a red query expected to find nothing on the clip with a red car: the target is missed, exit 1
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text("cases:\n  - name: red expected absent\n    clip: intel_sample_videos/car-detection.mp4\n"
                          "    kinds: [colour_query]\n"
                          "    settings: {colour_query: {queries: [{name: red, colour: red}]}}\n"
                          "    targets: [{measure: alarms, kind: colour_query, max: 0}]\n")
    assert suite.main(str(data), as_json=True, suite_file=suite_file) == 1
    out = json.loads(capsys.readouterr().out)
    (result,) = out["cases"]["red expected absent"]
    assert out["all_met"] is False and result["met"] is False and int(result["value"]) >= 1


def test_evaluate_offers_the_object_class_stage_like_the_detector(tmp_path) -> None:
    """Someone standing still at a table for minutes (intel one-by-one, sampled at 10 fps) looks like a left
    object to the pixels alone once their shape check is off (``max_elongation``: a standing person is
    elongated); the object-class stage, on by default as in the detector, sees a person."""
    from vigie.evaluate.runner import evaluate

    clip = data_path("intel_sample_videos", "one-by-one-person-detection.mp4")
    cameras = tmp_path / "cameras.yaml"  # JSON is YAML
    cameras.write_text(json.dumps({"cameras": [{"id": "eval", "source": "synthetic://scene",
                                                "analytics": {"abandoned_object": {"max_elongation": 100.0}}}]}))
    alone = evaluate(clip, fps=10.0, kinds=["abandoned_object"], object_classes=False, cameras=str(cameras))
    assert alone.detections.get("abandoned_object"), "the pixel stages alone raise the standing person"
    with_classes = evaluate(clip, fps=10.0, kinds=["abandoned_object"], cameras=str(cameras))
    assert not with_classes.detections.get("abandoned_object")
