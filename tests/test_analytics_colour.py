"""Colour-query analytic: CIELAB maths, synthetic scenes and real footage.

Expectations on real footage come from looking at decoded frames (PNG contact sheets
and overlays of the red mask, made with tests/clips.py), frame numbers at the
sampling rate of each test:

* intel car-detection.mp4 at 5 fps: one red car (top-down view) drives in from the
  bottom at frame 75 (15.0 s) and leaves through the top after frame 94 (18.8 s); no
  other red object (the other cars are white, silver and grey).
* PETS 2009 S2.L1 view 001, every 2nd frame of 795: four walkers dress in red, MOT15
  ids 11 (red and navy jacket, frames 17-367, mostly far away), 10 (red top, 423-577),
  3 (red and navy jacket, 529-795) and 6 (red top, 611-795). Not in the ground truth:
  id 3 walks in at the bottom right from frame 506 on, and the red walkers are partly
  visible at the frame edge a few frames before/after their annotated span. The scene
  also has a small red door (top right) and orange cones: ``moving_only`` is set so
  that only people count.
* No red anywhere: intel one-by-one-person-detection.mp4 (people in grey, black and
  white in front of a wall; the varnished floor and skirting board are orange-brown),
  people-detection.gif (an empty room with a red-brown wooden floor),
  person-bicycle-car-detection.gif (a grey-green car, a cyclist, a parking lot),
  TUD-Campus (brown and beige jackets), WSDOT I-5 stills (dry grass), UCSD ped2
  (greyscale).
* bgslibrary video03 at 5 fps: one dark maroon car (CIE C* about 15-30) comes down the
  left lane, visible frames 106-125; it is too desaturated for the named colour
  "red" except in its sunlit frames: detections may only fall in that window.
"""

from __future__ import annotations

import av
import numpy as np
import pydantic
import pytest
import torch

from tests.clips import T0_NS, data_path, decode_frames, decode_video
from vigie.detector.analytics.episodes import RUN_ID
from vigie.detector.analytics.base import Box, FrameBatch, ObjectBox
from vigie.detector.analytics.colour import ColourQuery, ColourQueryConfig
from vigie.detector.analytics.registry import build
from vigie.detector.colours import NAMED_COLOURS, ColourTable, delta_e76, delta_e2000, srgb8_to_lab, srgb_to_lab
from vigie.detector.preprocess import to_batch

FPS = 5.0
RED = {"queries": [{"name": "red", "colour": "red"}], "repeat_s": 0.0}


def _run(analytic, frames, camera="cam", fps=FPS):
    """Feed ``(time_ns, image)`` frames one by one; returns ``[(k, detections, last_score)]``."""
    out = []
    for k, (ns, img) in enumerate(frames):
        dets = analytic.process(to_batch([img], [camera], [ns], fps))
        out.append((k, dets, float(analytic.last_scores[0])))
    return out


# -- colour maths --------------------------------------------------------------------
@pytest.mark.parametrize(("rgb", "lab"), [
    ((255, 0, 0), (53.24, 80.09, 67.20)), ((0, 0, 255), (32.30, 79.19, -107.86)),
    ((255, 255, 255), (100.0, 0.0, 0.0)), ((0, 0, 0), (0.0, 0.0, 0.0)), ((128, 128, 128), (53.59, 0.0, 0.0)),
])
def test_srgb_to_lab_reference_values(rgb, lab):
    assert srgb8_to_lab(rgb) == pytest.approx(lab, abs=0.05)  # published values differ in the 2nd decimal


# Sharma, Wu & Dalal (2005), Table 1: the 34 CIEDE2000 test pairs (L1 a1 b1, L2 a2 b2, dE00).
SHARMA = [
    (50.0, 2.6772, -79.7751, 50.0, 0.0, -82.7485, 2.0425), (50.0, 3.1571, -77.2803, 50.0, 0.0, -82.7485, 2.8615),
    (50.0, 2.8361, -74.0200, 50.0, 0.0, -82.7485, 3.4412), (50.0, -1.3802, -84.2814, 50.0, 0.0, -82.7485, 1.0),
    (50.0, -1.1848, -84.8006, 50.0, 0.0, -82.7485, 1.0), (50.0, -0.9009, -85.5211, 50.0, 0.0, -82.7485, 1.0),
    (50.0, 0.0, 0.0, 50.0, -1.0, 2.0, 2.3669), (50.0, -1.0, 2.0, 50.0, 0.0, 0.0, 2.3669),
    (50.0, 2.49, -0.001, 50.0, -2.49, 0.0009, 7.1792), (50.0, 2.49, -0.001, 50.0, -2.49, 0.001, 7.1792),
    (50.0, 2.49, -0.001, 50.0, -2.49, 0.0011, 7.2195), (50.0, 2.49, -0.001, 50.0, -2.49, 0.0012, 7.2195),
    (50.0, -0.001, 2.49, 50.0, 0.0009, -2.49, 4.8045), (50.0, -0.001, 2.49, 50.0, 0.001, -2.49, 4.8045),
    (50.0, -0.001, 2.49, 50.0, 0.0011, -2.49, 4.7461), (50.0, 2.5, 0.0, 50.0, 0.0, -2.5, 4.3065),
    (50.0, 2.5, 0.0, 73.0, 25.0, -18.0, 27.1492), (50.0, 2.5, 0.0, 61.0, -5.0, 29.0, 22.8977),
    (50.0, 2.5, 0.0, 56.0, -27.0, -3.0, 31.9030), (50.0, 2.5, 0.0, 58.0, 24.0, 15.0, 19.4535),
    (50.0, 2.5, 0.0, 50.0, 3.1736, 0.5854, 1.0), (50.0, 2.5, 0.0, 50.0, 3.2972, 0.0, 1.0),
    (50.0, 2.5, 0.0, 50.0, 1.8634, 0.5757, 1.0), (50.0, 2.5, 0.0, 50.0, 3.2592, 0.335, 1.0),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.248, -4.962, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.694, 23.0331, 14.973, -42.5619, 2.0373),
    (36.4612, 47.858, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.441, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.135, 0.9033, -0.0636, -0.5514, 0.9082),
]


@pytest.mark.parametrize("row", SHARMA)
def test_ciede2000_matches_sharma_test_data(row):
    lab1, lab2, want = row[:3], row[3:6], row[6]
    for a, b in ((lab1, lab2), (lab2, lab1)):
        got = float(delta_e2000(torch.tensor([a], dtype=torch.float64), b)[0])
        assert got == pytest.approx(want, abs=1e-4)


def test_cie76_is_euclidean_and_batched():
    lab = torch.tensor([[50.0, 0.0, 0.0], [53.0, 4.0, 0.0]]).view(2, 3, 1, 1)
    assert delta_e76(lab, (50.0, 0.0, 0.0)).flatten().tolist() == pytest.approx([0.0, 5.0])
    assert delta_e2000(lab, (50.0, 0.0, 0.0)).shape == (2, 1, 1)


@pytest.mark.parametrize(("name", "inside", "outside"), [
    ("red", [(255, 0, 0), (220, 20, 60), (178, 34, 34), (200, 30, 40), (139, 0, 0)],
     [(255, 165, 0), (190, 110, 60), (139, 69, 19), (255, 192, 203), (128, 0, 128), (60, 20, 15), (150, 100, 90)]),
    ("orange", [(255, 165, 0), (255, 140, 0)], [(255, 0, 0), (255, 255, 0), (139, 69, 19)]),
    ("yellow", [(255, 255, 0), (255, 215, 0)], [(255, 165, 0), (128, 128, 0)]),
    ("green", [(0, 128, 0), (0, 255, 0), (34, 139, 34)], [(0, 255, 255), (128, 128, 128)]),
    ("blue", [(0, 0, 255), (0, 0, 128), (30, 144, 255), (70, 130, 180)], [(128, 0, 128), (0, 128, 0)]),
    ("purple", [(128, 0, 128), (148, 0, 211)], [(0, 0, 255), (255, 0, 0)]),
    ("pink", [(255, 192, 203), (255, 105, 180)], [(255, 0, 0), (255, 255, 255)]),
    ("brown", [(139, 69, 19), (160, 82, 45), (101, 67, 33)], [(255, 0, 0), (255, 165, 0), (128, 128, 128)]),
    ("white", [(255, 255, 255), (240, 240, 235)], [(128, 128, 128), (255, 255, 0)]),
    ("grey", [(128, 128, 128), (90, 92, 95)], [(255, 255, 255), (0, 0, 0), (255, 0, 0)]),
    ("black", [(0, 0, 0), (30, 30, 35)], [(128, 128, 128), (0, 0, 128)]),
])
def test_named_colours_hold_their_reference_colours(name, inside, outside):
    region = NAMED_COLOURS[name]
    for rgb, want in [(c, True) for c in inside] + [(c, False) for c in outside]:
        lab = torch.tensor([srgb8_to_lab(rgb)], dtype=torch.float64)
        assert bool(region.contains(lab)[0]) is want, f"{name}: {rgb} should{'' if want else ' not'} match"


def test_colour_table_agrees_with_the_exact_conversion():
    tests = [NAMED_COLOURS["red"].contains, NAMED_COLOURS["blue"].contains,
             lambda lab: delta_e2000(lab, (50.0, 40.0, 30.0)) <= 10.0]
    table = ColourTable.from_tests(tests)
    rgb = torch.rand(2, 3, 60, 80, generator=torch.Generator().manual_seed(0))
    bits = table.lookup(rgb)
    lab = srgb_to_lab(rgb.double())
    for k, test in enumerate(tests):
        exact = test(lab)
        agree = (((bits >> k) & 1).bool() == exact).float().mean()
        assert agree > 0.99, f"test {k}: only {agree:.3f} of pixels agree"  # quantisation near the borders
        assert exact.any() and (~exact).any()


# -- synthetic scenes ------------------------------------------------------------------
SQUARE = Box(100, 80, 48, 36)  # frame pixels of a 320x240 frame


def _scene(colour, box=SQUARE, size=(320, 240), grey=128):
    img = np.full((size[1], size[0], 3), grey, dtype=np.uint8)
    img[box.y:box.y + box.h, box.x:box.x + box.w] = colour
    return img


def _frames(imgs, fps=FPS):
    return [(T0_NS + int(k * 1e9 / fps), img) for k, img in enumerate(imgs)]


def test_red_square_on_grey_is_found_with_its_box():
    (k, dets, score), = _run(ColourQuery(ColourQueryConfig(**RED)), _frames([_scene((200, 20, 30))]))
    (det,) = dets
    assert det.kind == "colour_query" and det.track_id == f"cam/colour_query/red/{RUN_ID}-1"
    assert det.boxes[0].iou(SQUARE) > 0.8, det.boxes
    assert det.score > 0.95 and score == pytest.approx(det.score)
    assert det.attributes["query"] == 0.0 and det.attributes["area_px"] == pytest.approx(48 * 36, rel=0.25)


def test_blue_square_is_not_red_but_is_blue():
    frames = _frames([_scene((30, 40, 200))])
    assert [d for _, d, _ in _run(ColourQuery(ColourQueryConfig(**RED)), frames)] == [[]]
    blue = ColourQuery(ColourQueryConfig(queries=[{"name": "blue", "colour": "blue"}]))
    ((_, dets, _),) = _run(blue, frames)
    assert len(dets) == 1 and dets[0].boxes[0].iou(SQUARE) > 0.8


@pytest.mark.parametrize("metric", ["ciede2000", "cie76"])
def test_cielab_value_query_with_tolerance(metric):
    lab = srgb8_to_lab((40, 160, 90))
    frames = _frames([_scene((40, 160, 90))])
    near = {"name": "q", "colour": [lab[0] + 2, lab[1], lab[2] - 2], "tolerance": 6, "metric": metric}
    far = near | {"colour": [lab[0], lab[1] + 25, lab[2]]}
    assert len(_run(ColourQuery(ColourQueryConfig(queries=[near])), frames)[0][1]) == 1
    assert _run(ColourQuery(ColourQueryConfig(queries=[far])), frames)[0][1] == []


def test_geometry_filters_area_and_aspect():
    bar = Box(40, 100, 200, 16)  # aspect 12.5
    frames = _frames([_scene((200, 20, 30), bar)])

    def found(**geometry):
        cfg = ColourQueryConfig(queries=[{"name": "red", "colour": "red"} | geometry])
        return len(_run(ColourQuery(cfg), frames)[0][1]) == 1

    assert found()
    assert not found(max_aspect=5.0)
    assert found(min_aspect=10.0)
    assert not found(min_area_px=5000.0)
    assert not found(max_area_px=1000.0)


class _FakeObjects:
    def __init__(self, objects):
        self.objects, self.calls = objects, 0

    def detect(self, image):
        self.calls += 1
        return self.objects


def _with_objects(img, detector):
    b = to_batch([img], ["cam"], [T0_NS], FPS)
    return FrameBatch(gray=b.gray, rgb=b.rgb, camera_ids=b.camera_ids, time_ns=b.time_ns,
                      frame_sizes=b.frame_sizes, fps=b.fps, images=[img], object_detector=detector)


def test_object_class_confirms_with_the_object_box_or_rejects():
    img = _scene((200, 20, 30))
    car = ObjectBox("car", 0.9, Box(90, 60, 80, 70))
    cfg = ColourQueryConfig(queries=[{"name": "red-car", "colour": "red", "object_class": ["car", "truck"]}])
    (det,) = ColourQuery(cfg).process(_with_objects(img, _FakeObjects([car])))
    assert det.boxes == [car.box] and det.attributes["object_score"] == pytest.approx(0.9)

    person_only = _FakeObjects([ObjectBox("person", 0.9, car.box)])
    assert ColourQuery(cfg).process(_with_objects(img, person_only)) == []
    weak = _FakeObjects([ObjectBox("car", 0.1, car.box)])
    assert ColourQuery(cfg).process(_with_objects(img, weak)) == []
    elsewhere = _FakeObjects([ObjectBox("car", 0.9, Box(200, 150, 60, 60))])
    assert ColourQuery(cfg).process(_with_objects(img, elsewhere)) == []
    # stage off: decided on colour and geometry alone
    (det,) = ColourQuery(cfg).process(to_batch([img], ["cam"], [T0_NS], FPS))
    assert det.boxes[0].iou(SQUARE) > 0.8 and "object_score" not in det.attributes
    # the stage runs only when a candidate blob exists
    nothing = _FakeObjects([car])
    assert ColourQuery(cfg).process(_with_objects(_scene((30, 40, 200)), nothing)) == [] and nothing.calls == 0


def test_no_query_does_nothing():
    analytic = build("colour_query", {})
    assert analytic.process(to_batch([_scene((200, 20, 30))], ["cam"], [T0_NS], FPS)) == []
    assert analytic.last_scores.tolist() == [0.0]


def test_emission_repeats_and_episodes_get_new_track_ids():
    red, grey = _scene((200, 20, 30)), _scene((128, 128, 128))
    imgs = [red] * 11 + [grey] * 15 + [red] * 2  # 2.2 s of red, 3 s without, red again
    cfg = ColourQueryConfig(queries=[{"name": "red", "colour": "red"}], repeat_s=1.0, release_s=2.0)
    runs = _run(ColourQuery(cfg), _frames(imgs))
    emitted = [(k, d.track_id) for k, dets, _ in runs for d in dets]
    red = f"cam/colour_query/red/{RUN_ID}"
    assert emitted == [(0, f"{red}-1"), (5, f"{red}-1"), (10, f"{red}-1"), (26, f"{red}-2")]
    scores = [s for _, _, s in runs]
    assert all(s > 0.9 for s in scores[:11]) and all(s == 0.0 for s in scores[11:26])


def test_several_queries_each_with_its_name():
    img = _scene((200, 20, 30))
    img[150:190, 220:280] = (30, 40, 200)
    cfg = ColourQueryConfig(queries=[{"name": "red", "colour": "red"}, {"name": "blue-thing", "colour": "blue"}])
    ((_, dets, _),) = _run(ColourQuery(cfg), _frames([img]))
    by_id = {d.track_id: d for d in dets}
    assert set(by_id) == {f"cam/colour_query/red/{RUN_ID}-1", f"cam/colour_query/blue-thing/{RUN_ID}-2"}
    assert by_id[f"cam/colour_query/blue-thing/{RUN_ID}-2"].boxes[0].iou(Box(220, 150, 60, 40)) > 0.8
    assert by_id[f"cam/colour_query/blue-thing/{RUN_ID}-2"].attributes["query"] == 1.0


def test_moving_only_ignores_a_static_red_object():
    static = _scene((200, 20, 30))
    imgs = [static] * 10
    for k in range(10):  # then a red square moves along the bottom
        img = static.copy()
        img[180:210, 20 + 25 * k:50 + 25 * k] = (200, 20, 30)
        imgs.append(img)
    frames = _frames(imgs)
    cfg = RED | {"moving_only": True}
    runs = _run(ColourQuery(ColourQueryConfig(**cfg)), frames)
    assert all(not dets for _, dets, _ in runs[:10])
    moving = [d for _, dets, _ in runs[10:] for d in dets]
    assert len(moving) >= 8 and all(d.boxes[0].y >= 170 for d in moving)
    # without moving_only the static square is reported on every frame
    assert all(dets for _, dets, _ in _run(ColourQuery(ColourQueryConfig(**RED)), frames))


def test_zones_restrict_the_search():
    inside = {"name": "left", "polygon": [(0, 0), (160, 0), (160, 240), (0, 240)]}
    outside = {"name": "right", "polygon": [(200, 0), (320, 0), (320, 240), (200, 240)]}
    frames = _frames([_scene((200, 20, 30))])
    assert _run(ColourQuery(ColourQueryConfig(**RED, zones=[inside])), frames)[0][1]
    assert _run(ColourQuery(ColourQueryConfig(**RED, zones=[outside])), frames)[0][1] == []


def test_batch_of_two_cameras_equals_one_by_one():
    a = _frames([_scene((200, 20, 30), Box(20 + 10 * k, 50, 40, 40)) for k in range(6)])
    b = _frames([_scene((30, 40, 200)) if k % 3 else _scene((210, 30, 40)) for k in range(6)])
    cfg = ColourQueryConfig(queries=[{"name": "red", "colour": "red"}, {"name": "blue", "colour": "blue"}],
                            repeat_s=0.0, moving_only=True)

    def key(d):
        return (d.track_id, d.boxes, round(d.score, 6))

    single = {cam: [[key(d) for d in dets] for _, dets, _ in _run(ColourQuery(cfg), fr, cam)]
              for cam, fr in (("a", a), ("b", b))}
    batched, got = ColourQuery(cfg), {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        dets = batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS))
        for j, cam in enumerate("ab"):
            got[cam].append([key(d) for d in dets if d.index == j])
    assert any(single["a"]) and got == single


def test_forget_starts_new_episodes():
    analytic = ColourQuery(ColourQueryConfig(**RED))
    frames = _frames([_scene((200, 20, 30))] * 2)
    first = _run(analytic, frames)
    analytic.forget("cam")
    again = _run(analytic, [(ns + int(1e9), img) for ns, img in frames])
    red = f"cam/colour_query/red/{RUN_ID}"
    assert first[0][1][0].track_id == f"{red}-1" and again[0][1][0].track_id == f"{red}-2"


def test_config_is_strict():
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(querys=[])
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(queries=[{"name": "x", "colour": "magenta"}])
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(queries=[{"name": "x", "colour": [120, 0, 0]}])
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(queries=[{"name": "x"}, {"name": "x", "colour": "blue"}])
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(queries=[{"name": "x", "min_area_px": 500, "max_area_px": 100}])
    with pytest.raises(pydantic.ValidationError):
        ColourQueryConfig(queries=[{"name": "bad name/"}])
    q = ColourQueryConfig(queries=[{"name": "van", "object_class": "truck"}]).queries[0]
    assert q.object_class == ["truck"] and q.colour == "red"
    for model in (ColourQueryConfig, type(q)):
        for name, field in model.model_fields.items():
            assert field.description, name


# -- real footage ------------------------------------------------------------------------
@pytest.mark.data
def test_intel_car_detection_finds_the_red_car():
    frames = decode_video(str(data_path("intel_sample_videos", "car-detection.mp4")), FPS, 640)
    assert frames[75][0] - T0_NS == pytest.approx(15.0e9, abs=0.05e9)
    runs = _run(ColourQuery(ColourQueryConfig(**RED)), frames)
    hits = [k for k, dets, _ in runs if dets]
    present = set(range(75, 95))
    assert set(hits) <= present | {95}, f"red reported without the red car: {sorted(set(hits) - present)}"
    assert len(present & set(hits)) >= 0.9 * len(present), f"red car found in {len(hits)}/{len(present)} frames"
    for k, dets, _ in runs:
        for d in dets:  # the car stays within x 250-420 of the 640-wide frame as it drives up
            b = d.boxes[0]
            assert 250 <= b.x and b.x + b.w <= 420, (k, b)


def _pets_frames(step=2):
    path = data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi")
    # this file's timestamps are out of order (B-frames in AVI): decode order is frame order
    with av.open(str(path)) as container:
        return [(k, f.reformat(width=640, height=480, format="rgb24").to_ndarray())
                for k, f in enumerate(container.decode(video=0)) if k % step == 0]


@pytest.mark.data
def test_pets2009_finds_the_walkers_in_red():
    torch.set_num_threads(1)
    gt = np.loadtxt(data_path("pets2009_s2l1_view001", "gt", "gt_768x576.txt"), delimiter=",")
    red_ids = {3, 6, 10, 11}
    s = 640 / 768
    analytic = ColourQuery(ColourQueryConfig(**RED | {"moving_only": True}))
    present = found = on_red = elsewhere = 0
    for k, img in _pets_frames():
        dets = analytic.process(to_batch([img], ["pets"], [T0_NS + int(k * 1e9 / 7)], 3.5))
        rows = gt[gt[:, 0] == k + 1]
        reds = [Box(*[int(v * s) for v in r[2:6]]) for r in rows if int(r[1]) in red_ids]
        present += bool(reds)
        found += bool(reds) and bool(dets)
        for d in dets:
            b = d.boxes[0]
            cx, cy = b.x + b.w / 2, b.y + b.h / 2
            ok = any(r.x - 6 <= cx <= r.x + r.w + 6 and r.y - 6 <= cy <= r.y + r.h + 6 for r in reds)
            # seen by eye, not annotated: red walkers half out of the frame next to their
            # annotated span, and id 3 walking in at the bottom right (frames 506-528)
            ok = ok or cx < 30 or cx > 610 or (500 <= k <= 528 and cy > 330)
            on_red += ok
            elsewhere += not ok
    assert present > 300
    assert found >= 0.5 * present, f"red walkers found in {found}/{present} frames"
    assert elsewhere <= 0.02 * (on_red + elsewhere), f"{elsewhere} detections off the red walkers ({on_red} on)"


@pytest.mark.data
@pytest.mark.parametrize("clip", ["one-by-one", "people-gif", "bicycle-gif", "tud", "wsdot", "ucsd"])
def test_no_red_reported_in_clips_without_red(clip):
    torch.set_num_threads(1)
    if clip == "one-by-one":
        frames = decode_video(str(data_path("intel_sample_videos", "one-by-one-person-detection.mp4")), 2.0, 640)
    elif clip in ("people-gif", "bicycle-gif"):
        name = "people-detection.gif" if clip == "people-gif" else "person-bicycle-car-detection.gif"
        frames = decode_video(str(data_path("intel_sample_videos", name)), FPS, 640)
    elif clip == "tud":
        frames = decode_frames(str(data_path("mot15_tud_campus", "img1")), 25.0, None, 640)
    elif clip == "wsdot":
        frames = decode_frames(str(data_path("bgslibrary_traffic", "wsdot_i5_frames")), 5.0, None, 640)
    else:
        frames = decode_frames(str(data_path("ucsd_ped2_test001", "frames")), 10.0, 5.0, 640)
    runs = _run(ColourQuery(ColourQueryConfig(**RED)), frames)
    hits = [(k, d.boxes) for k, dets, _ in runs for d in dets]
    assert hits == [], f"{len(hits)} red detections in {clip}, e.g. {hits[:3]}"


@pytest.mark.data
def test_bgslibrary_video03_red_only_on_the_maroon_car():
    frames = decode_video(str(data_path("bgslibrary_traffic", "video03.avi")), FPS, 640)
    runs = _run(ColourQuery(ColourQueryConfig(**RED)), frames)
    hits = [k for k, dets, _ in runs if dets]
    assert hits, "the maroon car's sunlit frames should be found"
    assert set(hits) <= set(range(106, 126)), hits
