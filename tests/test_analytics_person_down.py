"""Person-down analytic: synthetic falls and look-alikes, a fall composited on real footage,
and no alarm over the ordinary scenes (people walking, traffic, parked cars)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pydantic
import pytest
import torch

from tests.clips import T0_NS, _rgb, data_path, decode_frames, decode_video
from vigie.detector.analytics.episodes import RUN_ID
from vigie.detector.analytics.base import Box, ObjectBox
from vigie.detector.analytics.person_down import PersonDown, PersonDownConfig
from vigie.detector.analytics.registry import build
from vigie.detector.preprocess import to_batch

FPS = 5.0


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as the detector runs (and far faster on a shared, loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(analytic, frames, camera="cam", fps=FPS, stage=None):
    """Feed ``(time_ns, image)`` frames one by one; returns ``([(t_s, detection)], scores)``."""
    out, scores = [], []
    for ns, img in frames:
        batch = to_batch([img], [camera], [ns], fps)
        if stage is not None:
            batch.images, batch.object_detector = [img], stage
        for det in analytic.process(batch):
            out.append(((ns - T0_NS) / 1e9, det))
        assert analytic.last_scores.shape == (1,) and analytic.last_scores.dtype == torch.float32
        scores.append(float(analytic.last_scores[0]))
    return out, scores


def _scene(walk_s: float, still_s: float, moving=(12, 36), still=(36, 12), step=(4.0, 0.0),
           start=(40.0, 120.0), lead_s=2.0, size=(320, 180), seed=0):
    """A textured static scene; after ``lead_s`` empty seconds a ``moving = (w, h)`` block walks
    by ``step`` pixels per frame for ``walk_s``, then a ``still = (w, h)`` block lies on the same
    foot point (bottom centre) for ``still_s``. Returns ``(time_ns, RGB)`` frames at 5 fps."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    scene = (90 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0))[..., None] + rng.normal(0, 12, (h, w, 3))
    scene = np.clip(scene + np.array([10, 0, -10]), 0, 255).astype(np.float32)
    texture = rng.uniform(150, 230, (200, 200, 3)).astype(np.float32)
    x, y = start
    n_lead, n_walk, n_still = (round(s * FPS) for s in (lead_s, walk_s, still_s))
    frames = []
    for k in range(n_lead + n_walk + n_still):
        img = scene + rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
        if k >= n_lead:
            if k < n_lead + n_walk:
                x, y = x + step[0], y + step[1]
                bw, bh = moving
            else:
                bw, bh = still
            x0, y0 = int(x - bw / 2), int(y - bh)
            img[y0:y0 + bh, x0:x0 + bw] = texture[:bh, :bw]
        frames.append((T0_NS + int(k * 1e9 / FPS), np.clip(img, 0, 255).astype(np.uint8)))
    return frames


def _fall(seed=0, **kw):
    return _scene(walk_s=6.0, still_s=10.0, seed=seed, **kw)  # falls at 2 + 6 = 8 s


class _Stage:
    """Stand-in for the object-class stage: the same boxes on every frame, calls counted."""

    def __init__(self, objects: list[ObjectBox]):
        self.objects, self.calls = objects, 0

    def detect(self, image):
        self.calls += 1
        return list(self.objects)


@pytest.mark.parametrize("seed", [0, 1])
def test_tall_walker_that_falls_and_lies_still_is_raised_within_dwell_plus_one_second(seed):
    dets, scores = _run(PersonDown(PersonDownConfig(repeat_s=1.0)), _fall(seed=seed))
    assert dets, "the fall was not reported"
    t_fall, dwell = 8.0, 3.0
    first = dets[0][0]
    assert t_fall + dwell - 0.01 <= first <= t_fall + dwell + 1.0, f"raised at {first:.1f} s"
    assert len({d.track_id for _, d in dets}) == 1
    assert dets[0][1].track_id == f"cam/person_down/{RUN_ID}-1"
    times = [t for t, _ in dets]
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(times, times[1:]))  # repeat_s
    assert times[-1] >= 17.8 - 1.0  # still reported until the end of the clip (17.8 s)
    for _, d in dets:
        assert d.kind == "person_down" and 0.5 <= d.score <= 1.0
        (box,) = d.boxes
        lying = Box(int(40 + 4 * 30 - 18), 120 - 12, 36, 12)  # foot point after 30 steps, 36x12
        assert box.iou(lying) > 0.4, (box, lying)
        assert d.attributes["dwell_s"] >= dwell
        assert d.attributes["aspect"] > 1.2 and d.attributes["height_ratio"] < 0.7
    assert max(scores[: int(t_fall * FPS)]) == 0.0  # nothing while walking
    assert scores[-1] == 1.0


def test_walker_who_stops_upright_is_not_raised():
    frames = _scene(walk_s=6.0, still_s=12.0, still=(12, 36))
    dets, scores = _run(PersonDown(), frames)
    assert dets == [] and max(scores) == 0.0


def test_parked_car_wide_while_moving_is_not_raised():
    # a car seen from the side: wide while it drives in, then parks
    frames = _scene(walk_s=6.0, still_s=15.0, moving=(44, 18), still=(44, 18))
    dets, scores = _run(PersonDown(), frames)
    assert dets == [] and max(scores) == 0.0


def _car_from_above(**kw):
    # a car seen from above drives down the image (tall), turns into a bay (wide) and stops: it
    # looks like a fall, but covers ~10% of the frame
    return _scene(walk_s=4.0, still_s=15.0, moving=(55, 100), still=(100, 55), step=(0.0, 3.0),
                  start=(130.0, 110.0), **kw)


def test_car_from_above_turning_into_a_bay_is_excluded_by_its_area():
    frames = _car_from_above()
    assert _run(PersonDown(), frames)[0] == []
    # the area limit is what excludes it: without it, the shape alone would be reported
    assert _run(PersonDown(PersonDownConfig(max_area_frac=1.0)), frames)[0]


def test_class_stage_rejects_a_vehicle_and_confirms_a_person():
    frames = _car_from_above()
    car = _Stage([ObjectBox("car", 0.9, Box(70, 100, 120, 80))])
    dets, _ = _run(PersonDown(PersonDownConfig(max_area_frac=1.0, recheck_s=2.0)), frames, stage=car)
    assert dets == []
    assert 1 <= car.calls <= 8  # only for the candidate, then every recheck_s (~15 s / 2 s)

    falls = _fall()
    lying = Box(138, 104, 44, 18)
    person = _Stage([ObjectBox("person", 0.8, lying)])
    dets, _ = _run(PersonDown(PersonDownConfig(require_person=True)), falls, stage=person)
    assert dets and dets[0][1].attributes["person_score"] == pytest.approx(0.8)
    assert person.calls == 1  # confirmed once, not re-run while it lasts

    nobody = _Stage([ObjectBox("person", 0.8, Box(0, 0, 20, 40))])  # a person elsewhere
    assert _run(PersonDown(PersonDownConfig(require_person=True)), falls, stage=nobody)[0] == []
    # stage off: require_person cannot be checked and is skipped
    assert _run(PersonDown(PersonDownConfig(require_person=True)), falls)[0]


def test_zones_limit_where_a_fall_is_reported():
    falls = _fall()
    inside = {"name": "path", "polygon": [[100, 60], [240, 60], [240, 140], [100, 140]]}
    outside = {"name": "lawn", "polygon": [[0, 0], [80, 0], [80, 60], [0, 60]]}
    assert _run(build("person_down", {"zones": [inside]}), falls)[0]
    assert _run(build("person_down", {"zones": [outside]}), falls)[0] == []


def test_batch_of_two_cameras_equals_one_by_one():
    a, b = _fall(seed=3), _scene(walk_s=6.0, still_s=10.0, moving=(44, 18), still=(44, 18), seed=4)
    single = {}
    for cam, frames in (("a", a), ("b", b)):
        single[cam] = [(t, d.track_id, d.boxes, d.score) for t, d in _run(PersonDown(), frames, cam)[0]]
    batched, got = PersonDown(), {"a": [], "b": []}
    for (ns, fa), (_, fb) in zip(a, b):
        for d in batched.process(to_batch([fa, fb], ["a", "b"], [ns, ns], FPS)):
            got["ab"[d.index]].append(((ns - T0_NS) / 1e9, d.track_id, d.boxes, d.score))
    assert single["a"] and not single["b"]
    assert got == single


def test_forget_restarts_the_camera_and_ids_stay_unique():
    falls = _fall()
    pd = PersonDown()
    first, _ = _run(pd, falls)
    pd.forget("cam")
    again, _ = _run(pd, [(ns + int(100e9), img) for ns, img in falls])
    assert first and again
    assert {d.track_id for _, d in first}.isdisjoint({d.track_id for _, d in again})


def test_config_is_strict_and_defaults_build():
    assert isinstance(build("person_down", {}), PersonDown)
    with pytest.raises(pydantic.ValidationError):
        PersonDownConfig(dwel_s=3)
    with pytest.raises(pydantic.ValidationError):
        PersonDownConfig(min_area_frac=0.5, max_area_frac=0.1)
    with pytest.raises(pydantic.ValidationError):
        PersonDownConfig(still_frac=0.5, move_frac=0.2)
    for name, field in PersonDownConfig.model_fields.items():
        assert field.description, name


# -- real footage ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aboda_background():
    """The first 9 s of ABODA video4 (an empty sidewalk), played forwards then backwards (18 s)."""
    frames = decode_video(str(data_path("aboda_video4", "video4.avi")), FPS, 640)
    empty = [img for ns, img in frames if ns - T0_NS < 9.0e9]
    return empty + empty[::-1]


@pytest.fixture(scope="module")
def walker():
    """A real pedestrian: TUD-Campus frame 1, person 1 (ground-truth box), scaled to 120 px tall."""
    folder = data_path("mot15_tud_campus", "img1")
    with av.open(str(folder / "000001.jpg")) as c:
        frame = next(c.decode(video=0))
    x, y, w, h = 399, 182, 121, 229  # gt.txt, frame 1, id 1
    crop = frame.to_ndarray(format="rgb24")[y:y + h, x:x + w]
    scale = 120 / h
    return np.ascontiguousarray(av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(
        width=round(w * scale), height=120, format="rgb24").to_ndarray())


def _composite(background, person, walk_s, fall: bool):
    """The person walks right along the sidewalk for ``walk_s`` from 2 s, then lies down (the crop
    turned 90 degrees, same foot point) or stands still, until the end."""
    frames, x, foot = [], 140.0, 330
    n_lead, n_walk = round(2.0 * FPS), round(walk_s * FPS)
    lying = np.ascontiguousarray(np.rot90(person))
    for k, bg in enumerate(background):
        img = bg.copy()
        if k >= n_lead:
            if k < n_lead + n_walk:
                x += 12.0
            sprite = lying if (fall and k >= n_lead + n_walk) else person
            h, w = sprite.shape[:2]
            x0, y0 = int(x - w / 2), foot - h
            img[y0:y0 + h, x0:x0 + w] = sprite
        frames.append((T0_NS + int(k * 1e9 / FPS), img))
    return frames, int(x)


@pytest.mark.data
def test_real_pedestrian_composited_falling_on_a_real_sidewalk(aboda_background, walker):
    frames, foot_x = _composite(aboda_background, walker, walk_s=4.0, fall=True)
    dets, _ = _run(PersonDown(), frames)
    assert dets, "the composited fall was not reported"
    t_fall = 6.0
    assert t_fall + 3.0 - 0.01 <= dets[0][0] <= t_fall + 3.0 + 1.0
    assert len({d.track_id for _, d in dets}) == 1
    h, w = walker.shape[:2]
    lying = Box(foot_x - h // 2, 330 - w, h, w)
    for _, d in dets:
        assert d.boxes[0].iou(lying) > 0.5, (d.boxes[0], lying)

    standing, _ = _composite(aboda_background, walker, walk_s=4.0, fall=False)
    assert _run(PersonDown(), standing)[0] == []


def _decode_order(path: Path, source_fps: float, step: int, width: int = 640):
    """Frames in decode order (the PETS file's timestamps are not monotonic), every ``step``-th."""
    out = []
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n % step == 0:
                out.append((T0_NS + int(round(n / source_fps * 1e9)), _rgb(frame, width)))
    return out, source_fps / step


def _video(folder: str, name: str):
    return lambda: (decode_video(str(data_path(folder, name)), FPS), FPS)


NORMAL = {
    "intel/car-detection.mp4": _video("intel_sample_videos", "car-detection.mp4"),  # parked cars
    "intel/one-by-one-person-detection.mp4": _video("intel_sample_videos", "one-by-one-person-detection.mp4"),
    "intel/people-detection.gif": _video("intel_sample_videos", "people-detection.gif"),
    "intel/person-bicycle-car-detection.gif": _video("intel_sample_videos", "person-bicycle-car-detection.gif"),
    "bgslibrary/video02.avi": _video("bgslibrary_traffic", "video02.avi"),
    "bgslibrary/video03.avi": _video("bgslibrary_traffic", "video03.avi"),
    "bgslibrary/wsdot_i5_frames": lambda: (
        decode_frames(str(data_path("bgslibrary_traffic", "wsdot_i5_frames")), FPS, None, 640), FPS),
    "mot15_tud_campus": lambda: (decode_frames(str(data_path("mot15_tud_campus", "img1")), 25.0), 25.0),
    "pets2009_s2l1_view001": lambda: _decode_order(
        data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi"), 7.0, 1),
}


@pytest.mark.data
@pytest.mark.parametrize("clip", sorted(NORMAL))
def test_no_alarm_over_ordinary_scenes(clip):
    frames, fps = NORMAL[clip]()
    assert len(frames) >= 10
    dets, scores = _run(PersonDown(), frames, fps=fps)
    assert dets == [], f"{clip}: person_down raised at {[round(t, 1) for t, _ in dets]}"
    assert all(0.0 <= s <= 1.0 for s in scores)
