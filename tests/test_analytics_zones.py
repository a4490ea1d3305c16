"""Zone analytics (intrusion, wrong way, density) on real footage (PETS 2009 S2L1, MOT15
TUD-Campus, both with person ground truth) and on synthetic moving rectangles."""

from __future__ import annotations

import math

import av
import numpy as np
import pydantic
import pytest
import torch
from scipy import stats

from tests.clips import T0_NS, _rgb, data_path, decode_frames
from vigie.detector.analytics.episodes import RUN_ID
from vigie.core.geometry import rasterize_polygons
from vigie.detector.analytics.base import Box, FrameBatch, ObjectBox
from vigie.detector.analytics.density import Density, DensityConfig
from vigie.detector.analytics.intrusion import Intrusion, IntrusionConfig
from vigie.detector.analytics.registry import build
from vigie.detector.analytics.wrong_way import DirectedZone, WrongWay, WrongWayConfig
from vigie.detector.preprocess import to_batch

FPS = 5.0
PETS_FPS = 7.0  # the capture rate (seqinfo); the re-encoded file's timestamps are not usable
TUD_FPS = 25.0
W, H = 640, 480  # both clips are used at 640x480, as the grabber publishes them


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One CPU thread, as the detector runs (several threads only contend on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# -- real footage ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pets():
    """PETS 2009 S2L1 view 001: batches at 7 fps (decode order = GT frame - 1) and GT rows.

    GT rows: ``(frame0, id, x, y, w, h)`` in 640x480 pixels (0-based frame index).
    """
    folder = data_path("pets2009_s2l1_view001")
    batches = []
    with av.open(str(folder / "pets2009_s2l1_view001_480x360.avi")) as container:
        for n, frame in enumerate(container.decode(video=0)):
            ns = T0_NS + int(round(n * 1e9 / PETS_FPS))
            batches.append((ns, to_batch([_rgb(frame, W)], ["pets"], [ns], PETS_FPS)))
    gt = np.loadtxt(folder / "gt" / "gt_768x576.txt", delimiter=",")[:, :6]
    gt[:, 0] -= 1
    gt[:, 2:6] *= W / 768  # SOURCE.md: boxes in 768x576 pixels
    assert len(batches) == 795
    return batches, gt


@pytest.fixture(scope="module")
def tud():
    """MOT15 TUD-Campus: 71 frames 640x480 at 25 fps, and GT rows ``(frame0, id, x, y, w, h)``."""
    frames = decode_frames(str(data_path("mot15_tud_campus", "img1")), TUD_FPS, None, None, "*.jpg")
    gt = np.loadtxt(data_path("mot15_tud_campus", "gt", "gt.txt"), delimiter=",")[:, :6]
    gt[:, 0] -= 1
    assert len(frames) == 71 and frames[0][1].shape == (H, W, 3)
    return [(ns, to_batch([img], ["tud"], [ns], TUD_FPS)) for ns, img in frames], gt


def _footprints_in(gt: np.ndarray, polygon) -> np.ndarray:
    """Per GT row, whether its footprint (bottom-centre of the box) lies in ``polygon``."""
    mask = rasterize_polygons([polygon], (W, H), (W, H))
    fx = np.clip(gt[:, 2] + gt[:, 4] / 2, 0, W - 1).astype(int)
    fy = np.clip(gt[:, 3] + gt[:, 5] - 1, 0, H - 1).astype(int)
    return mask[fy, fx]


def _feed(analytic, batches):
    """Run ``analytic`` over ``(ns, batch)``; returns detections ``[(frame, det)]`` and frame scores."""
    dets, scores = [], []
    for k, (_, batch) in enumerate(batches):
        dets += [(k, d) for d in analytic.process(batch)]
        assert analytic.last_scores.shape == (1,) and analytic.last_scores.dtype == torch.float32
        scores.append(float(analytic.last_scores[0]))
    assert all(0.0 <= s <= 1.0 for s in scores)
    return dets, np.array(scores)


def _gt_box(row) -> Box:
    return Box(int(row[2]), int(row[3]), int(row[4]), int(row[5]))


PETS_ROAD = _rect(320, 160, 560, 280)  # the junction people cross all along the clip
PETS_LAWN = _rect(360, 360, 560, 440)  # lawn around the tripod: no GT footprint
PETS_BAND = [(0, 150), (640, 110), (640, 340), (0, 240)]  # the road band, where the walkers are


@pytest.mark.data
def test_pets_intrusion_where_people_walk_and_not_where_nobody_goes(pets):
    batches, gt = pets
    assert _footprints_in(gt, PETS_ROAD).sum() > 500 and not _footprints_in(gt, PETS_LAWN).any()
    zones = [{"name": "road", "polygon": PETS_ROAD}, {"name": "lawn", "polygon": PETS_LAWN}]
    dets, scores = _feed(Intrusion(IntrusionConfig(zones=zones)), batches)
    road = [(k, d) for k, d in dets if d.attributes["zone"] == 0]
    assert road, "nobody reported in the road zone"
    assert not [d for _, d in dets if d.attributes["zone"] == 1], "intrusion on the empty lawn"
    # most reports lie on a GT person (the GT omits nobody in this part of the view)
    on_person = sum(any(d.boxes[0].iou(_gt_box(r)) > 0.2 for r in gt[gt[:, 0] == k]) for k, d in road)
    assert on_person >= 0.7 * len(road), f"{on_person}/{len(road)} reports on a GT person"
    for _, d in road:
        assert d.kind == "intrusion" and d.track_id.startswith("pets/intrusion/") and 0 <= d.score <= 1
        assert d.attributes["stay_s"] >= 0.5
    # frames with a GT person in the road zone score higher than frames without
    present = np.zeros(len(batches), bool)
    present[gt[_footprints_in(gt, PETS_ROAD), 0].astype(int)] = True
    assert scores[present].mean() > scores[~present].mean()


@pytest.mark.data
def test_tud_intrusion_in_the_walkway_not_on_the_building(tud):
    batches, gt = tud
    walk, top = _rect(400, 300, 640, 480), _rect(0, 0, 640, 120)
    assert _footprints_in(gt, walk).sum() > 50 and not _footprints_in(gt, top).any()
    zones = [{"name": "walk", "polygon": walk}, {"name": "top", "polygon": top}]
    dets, _ = _feed(Intrusion(IntrusionConfig(zones=zones)), batches)
    assert [d for _, d in dets if d.attributes["zone"] == 0], "nobody reported in the walkway"
    assert not [d for _, d in dets if d.attributes["zone"] == 1]


@pytest.mark.data
def test_tud_left_to_right_walkers_are_wrong_way_only_against_a_leftward_heading(tud):
    batches, gt = tud
    # the right part of the walkway, where everybody walks left to right (GT id 2, the only
    # right-to-left walker, stays in the left half)
    poly = _rect(400, 250, 640, 480)
    assert _footprints_in(gt[gt[:, 1] == 2], poly).sum() == 0
    results = {}
    for heading in (0.0, 180.0):
        zone = DirectedZone(name="walk", polygon=poly, heading_deg=heading)
        results[heading], _ = _feed(WrongWay(WrongWayConfig(zones=[zone])), batches)
    assert results[0.0] == [], "rightward walkers reported against a rightward heading"
    assert results[180.0], "rightward walkers not reported against a leftward heading"
    for _, d in results[180.0]:
        assert d.kind == "wrong_way" and d.attributes["angle_deg"] > 120.0 and d.attributes["backward_px"] >= 20


@pytest.mark.data
def test_pets_wrong_way_reports_people_who_really_go_against_the_heading(pets):
    batches, gt = pets
    zone = DirectedZone(name="road", polygon=PETS_BAND, heading_deg=0.0)  # rightwards allowed
    dets, _ = _feed(WrongWay(WrongWayConfig(zones=[zone])), batches)
    assert dets
    by_frame = {k: {int(r[1]): r for r in gt[gt[:, 0] == k]} for k in range(len(batches))}
    agree = checked = 0
    for k, d in dets:  # GT displacement over the last second of the person under the box
        ious = {pid: d.boxes[0].iou(_gt_box(r)) for pid, r in by_frame[k].items()}
        pid = max(ious, key=ious.get, default=None)
        if pid is None or ious[pid] < 0.2 or pid not in by_frame.get(k - 7, {}):
            continue
        now, before = by_frame[k][pid], by_frame[k - 7][pid]
        checked += 1
        agree += (now[2] + now[4] / 2) - (before[2] + before[4] / 2) < 0  # moved leftwards
    assert checked >= 20 and agree >= 0.9 * checked, f"{agree}/{checked} reports move leftwards"


@pytest.mark.data
def test_pets_density_follows_the_person_count(pets):
    batches, gt = pets
    zones = [{"name": "road", "polygon": PETS_BAND}]
    low, high = Density(DensityConfig(zones=zones, max_occupancy=0.05)), Density(DensityConfig(zones=zones))
    occupancy, raised = [], {"low": [], "high": []}
    for _, batch in batches:
        raised["low"] += low.process(batch)
        raised["high"] += high.process(batch)
        occupancy.append(float(low.last_occupancy[0, 0]))
    assert raised["low"] and not raised["high"]
    assert len({d.track_id for d in raised["low"]}) <= 10
    count = np.bincount(gt[_footprints_in(gt, PETS_BAND), 0].astype(int), minlength=len(batches))
    skip = 35  # the first 5 s: the background is still being learned
    r = stats.pearsonr(np.array(occupancy)[skip:], count[skip:])[0]
    rho = stats.spearmanr(np.array(occupancy)[skip:], count[skip:])[0]
    assert r > 0.5 and rho > 0.5, f"occupancy vs GT count: Pearson {r:.2f}, Spearman {rho:.2f}"


# -- synthetic scenes -----------------------------------------------------------------------

def _scene(n, movers, size=(320, 240), seed=0, noise=2.0):
    """``(ns, frame)`` pairs at FPS of a textured static scene with rectangles.

    ``movers``: ``(x0, y0, vx, vy, w, h[, start])``: top-left in pixels at frame ``start``
    (default 0, absent before), velocity in pixels per frame.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    scene = (100 + 40 * np.sin(xx / 13.0) * np.cos(yy / 11.0))[..., None] + rng.normal(0, 10, (h, w, 3))
    out = []
    for k in range(n):
        img = scene + rng.normal(0, noise, (h, w, 1))
        for j, (x0, y0, vx, vy, bw, bh, *start) in enumerate(movers):
            t = k - (start[0] if start else 0)
            if t < 0:
                continue
            x, y = int(round(x0 + vx * t)), int(round(y0 + vy * t))
            img[max(0, y):max(0, y + bh), max(0, x):max(0, x + bw)] = (20 + 50 * j, 30, 200 - 40 * j)
        out.append((T0_NS + int(k * 1e9 / FPS), np.clip(img, 0, 255).astype(np.uint8)))
    return out


def _run(analytic, frames, camera="cam", detector=None):
    out = []
    for ns, img in frames:
        batch = to_batch([img], [camera], [ns], FPS)
        if detector is not None:
            batch.images, batch.object_detector = [img], detector
        out += [((ns - T0_NS) / 1e9, d) for d in analytic.process(batch)]
        assert analytic.last_scores.shape == (1,) and 0.0 <= float(analytic.last_scores[0]) <= 1.0
    return out


RIGHT = _rect(200, 0, 320, 240)
TOP = _rect(0, 0, 320, 60)  # the walker never goes there
WALKER = (20, 100, 4.0, 0.0, 16, 40)  # walks rightwards, enters RIGHT at about frame 42


class _Stub:
    """Object-class stage that returns fixed boxes, counting its calls."""

    def __init__(self, boxes):
        self.boxes, self.calls = boxes, 0

    def detect(self, image):
        self.calls += 1
        return self.boxes


def test_intrusion_raised_after_min_duration_with_one_track():
    frames = _scene(60, [WALKER])
    zones = [{"name": "right", "polygon": RIGHT}, {"name": "top", "polygon": TOP}]
    dets = _run(Intrusion(IntrusionConfig(zones=zones, repeat_s=0.0)), frames)
    assert dets and {d.attributes["zone"] for _, d in dets} == {0.0}
    assert len({d.track_id for _, d in dets}) == 1 and dets[0][1].track_id == f"cam/intrusion/{RUN_ID}-1"
    # the footprint crosses x=200 at frame ~44 (8.8 s); raised min_duration_s = 0.5 s later
    assert 8.8 + 0.5 - 0.3 <= dets[0][0] <= 8.8 + 0.5 + 0.5
    for t, d in dets:
        (box,) = d.boxes
        x = 20 + 4.0 * t * FPS
        assert abs(box.x - x) <= 8 and abs(box.y - 100) <= 8 and abs(box.w - 16) <= 10 and abs(box.h - 40) <= 10


def test_intrusion_repeat_and_no_report_outside_zones():
    frames = _scene(60, [WALKER])
    dets = _run(Intrusion(IntrusionConfig(zones=[{"name": "right", "polygon": RIGHT}], repeat_s=1.0)), frames)
    times = [t for t, _ in dets]
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(times, times[1:]))
    still = _scene(40, [(150, 100, 0.0, 0.0, 16, 40)])  # present from the first frame: background
    assert _run(Intrusion(IntrusionConfig(zones=[{"name": "right", "polygon": RIGHT}])), still) == []


def test_intrusion_class_confirmation():
    frames = _scene(60, [WALKER])
    zones = [{"name": "right", "polygon": RIGHT}]
    cfg = IntrusionConfig(zones=zones, require_classes=["person"])
    person = _Stub([ObjectBox("person", 0.9, Box(180, 90, 120, 60))])
    car_elsewhere = _Stub([ObjectBox("car", 0.9, Box(0, 0, 50, 30))])
    assert _run(Intrusion(cfg), frames, detector=person)
    assert _run(Intrusion(cfg), frames, detector=car_elsewhere) == []
    assert car_elsewhere.calls > 0 and person.calls <= 2  # asked only for unconfirmed candidates
    assert _run(Intrusion(cfg), frames)  # stage off: foreground evidence alone


@pytest.mark.parametrize("heading,expected", [(0.0, False), (180.0, True), (90.0, False), (-90.0, False),
                                              (150.0, True), (100.0, False)])
def test_wrong_way_against_the_heading_only(heading, expected):
    frames = _scene(50, [(10, 100, 5.0, 0.0, 16, 40)])  # rightwards, 5 px per frame (25 px/s)
    zone = DirectedZone(name="z", polygon=_rect(0, 0, 320, 240), heading_deg=heading)  # tolerance 30
    dets = _run(WrongWay(WrongWayConfig(zones=[zone], min_distance_px=10.0)), frames)
    assert bool(dets) == expected, dets[:1]
    if expected:
        assert len({d.track_id for _, d in dets}) == 1
        assert abs(dets[0][1].attributes["angle_deg"] - abs(heading)) < 20.0


def test_wrong_way_whole_frame_default_heading_and_duration():
    leftwards = _scene(50, [(290, 100, -5.0, 0.0, 16, 40)])
    dets = _run(WrongWay(WrongWayConfig(min_duration_s=1.0)), leftwards)  # no zone: heading 0 everywhere
    assert dets and dets[0][0] >= 1.0 + 0.5  # displacement window (half of window_s) + min_duration_s
    assert _run(WrongWay(WrongWayConfig()), _scene(50, [(10, 100, 5.0, 0.0, 16, 40)])) == []
    slow = _scene(50, [(290, 100, -0.5, 0.0, 16, 40)])  # 2.5 px/s: under min_distance_px per second
    assert _run(WrongWay(WrongWayConfig()), slow) == []


def _crowd(n_people, n=60, seed=0):
    """People appearing one per frame from frame 26 (after the background's 5 s bootstrap), milling about."""
    movers = [(60 + 30 * (j % 6), 60 + 60 * (j // 6), 1.0 * (-1) ** j, 0.0, 16, 40, 26 + j) for j in range(n_people)]
    return _scene(n, movers, seed=seed)


def test_density_occupancy_threshold_and_duration():
    zone = [{"name": "square", "polygon": _rect(40, 40, 260, 200)}]
    crowd, few = _crowd(12), _crowd(2)
    cfg = DensityConfig(zones=zone, max_occupancy=0.12, min_duration_s=2.0, repeat_s=1.0)
    dets = _run(Density(cfg), crowd)
    assert dets and dets[0][0] >= 26 / FPS + 2.0 and len({d.track_id for _, d in dets}) == 1
    d = dets[0][1]
    assert d.kind == "density" and d.attributes["occupancy"] > 0.12 and d.attributes["persons"] == -1.0
    (box,) = d.boxes
    assert 40 <= box.x + box.w / 2 <= 260 and 40 <= box.y + box.h / 2 <= 200
    assert _run(Density(cfg), few) == []
    occ = Density(cfg)
    _run(occ, crowd[:45])
    assert 0.12 < float(occ.last_occupancy[0, 0]) < 0.5  # 12 people of 16x40 px in a 220x160 zone: ~0.22


def test_density_person_count_with_the_object_stage():
    zone = [{"name": "square", "polygon": _rect(40, 40, 260, 200)}]
    people = [ObjectBox("person", 0.8, Box(50 + 15 * j, 60, 14, 40)) for j in range(6)]
    stub = _Stub(people + [ObjectBox("car", 0.9, Box(100, 100, 40, 30))])
    cfg = DensityConfig(zones=zone, use_classes=True, max_persons=5, max_occupancy=0.9, count_every_s=1.0)
    dets = _run(Density(cfg), _crowd(2), detector=stub)
    assert dets and dets[0][1].attributes["persons"] == 6.0
    assert stub.calls <= (60 - 26) / FPS + 1  # at most once a second, and only with people in the zone
    assert _run(Density(cfg.model_copy(update={"max_persons": 6})), _crowd(2), detector=stub) == []


@pytest.mark.parametrize("kind,config", [
    ("intrusion", {"zones": [{"name": "right", "polygon": RIGHT}]}),
    ("wrong_way", {"zones": [{"name": "z", "polygon": _rect(0, 0, 320, 240), "heading_deg": 180}]}),
    ("density", {"max_occupancy": 0.005, "min_duration_s": 0.5}),
])
def test_batch_of_two_cameras_equals_one_by_one(kind, config):
    a, b = _scene(50, [WALKER]), _scene(50, [(300, 60, -3.0, 1.0, 20, 30)], seed=3)
    single = {cam: [(t, d.track_id, d.boxes, round(d.score, 5)) for t, d in _run(build(kind, config), fr, cam)]
              for cam, fr in (("a", a), ("b", b))}
    batched, got = build(kind, config), {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        for d in batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS)):
            got["ab"[d.index]].append(((ns - T0_NS) / 1e9, d.track_id, d.boxes, round(d.score, 5)))
        assert batched.last_scores.shape == (2,)
    assert single["a"], f"{kind}: camera a should raise"
    assert got == single


@pytest.mark.parametrize("kind", ["intrusion", "wrong_way", "density"])
def test_defaults_build_run_and_forget(kind):
    analytic = build(kind, {})
    frames = _scene(20, [WALKER])
    _run(analytic, frames)
    analytic.forget("cam")
    analytic.forget("unknown")
    assert _run(analytic, [(ns + int(100e9), img) for ns, img in frames[:3]]) == []


def test_configs_are_strict_and_documented():
    for model in (IntrusionConfig, WrongWayConfig, DensityConfig):
        with pytest.raises(pydantic.ValidationError):
            model(min_duraton_s=1.0)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
    with pytest.raises(pydantic.ValidationError):
        DirectedZone(name="z", polygon=_rect(0, 0, 10, 10))  # a directed zone needs its heading
    with pytest.raises(pydantic.ValidationError):
        WrongWayConfig(tolerance_deg=90.0)
    with pytest.raises(pydantic.ValidationError):
        DensityConfig(max_occupancy=0.0)


def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    frames = _scene(50, [WALKER])
    for kind, config in (("intrusion", {"zones": [{"name": "right", "polygon": RIGHT}]}),
                         ("wrong_way", {"heading_deg": 180.0}), ("density", {"max_occupancy": 0.01})):
        cpu = [(t, d.track_id, d.boxes) for t, d in _run(build(kind, config), frames)]
        gpu_analytic, gpu = build(kind, config, "cuda"), []
        for ns, img in frames:
            gpu += [((ns - T0_NS) / 1e9, d.track_id, d.boxes)
                    for d in gpu_analytic.process(to_batch([img], ["cam"], [ns], FPS, device="cuda"))]
        assert cpu and gpu == cpu, kind


def test_scores_are_per_frame_for_any_batch():
    analytic = Intrusion(IntrusionConfig())
    frames = _scene(3, [WALKER])
    batch = to_batch([f for _, f in frames], ["a", "b", "c"], [ns for ns, _ in frames], FPS)
    assert isinstance(batch, FrameBatch)
    analytic.process(batch)
    assert analytic.last_scores.shape == (3,) and analytic.last_scores.device.type == "cpu"
    assert math.isfinite(float(analytic.last_scores.sum()))


def test_plan_shares_one_background_and_detects_as_private_models():
    """Intrusion, wrong way and density with equal background settings read one model, updated once per frame."""
    from vigie.detector.plan import AnalyticsPlan

    zone = [{"name": "right", "polygon": RIGHT}]
    section = {"intrusion": {"zones": zone, "repeat_s": 0.0},
               "wrong_way": {"zones": [{"name": "right", "polygon": RIGHT, "heading_deg": 180}], "repeat_s": 0.0},
               "density": {"zones": zone, "max_occupancy": 0.01, "repeat_s": 0.0}}
    plan = AnalyticsPlan({"a": section, "b": section}, [], "cpu")
    private = {kind: build(kind, settings) for kind, settings in section.items()}
    shared_out, private_out = [], []
    walk = _scene(60, [WALKER])
    still = _scene(60, [(60, 60, 0.0, 2.0, 16, 40, 10)], seed=3)
    for (ns, img_a), (_, img_b) in zip(walk, still):
        batch = to_batch([img_a, img_b], ["a", "b"], [ns, ns], FPS)
        shared_out += [(ns, d.index, d.kind, d.track_id, d.boxes) for d in plan.process(batch)]
        for analytic in private.values():
            private_out += [(ns, d.index, d.kind, d.track_id, d.boxes) for d in analytic.process(batch)]
    assert plan.stages.foreground_models == 1
    assert {kind for _, _, kind, _, _ in shared_out} == {"intrusion", "wrong_way", "density"}
    assert sorted(shared_out, key=repr) == sorted(private_out, key=repr)
