"""False alarms on real footage: normal clips, and the same clips under the conditions that fool
video analytics in the field (:mod:`vigie.evaluate.transforms`: IR night mode, lighting steps,
blinking lamps, wet-ground reflections, sensor noise, low-bitrate compression).

Every clip goes once through :func:`vigie.evaluate.runner.evaluate` with every kind that needs no
operator settings (abandoned object, crowd movement, fire, person down, smoke, tamper; intrusion and
density need zones or limits and are left out), without the object-class stage: the analytics must
stay silent on their own. Clips come from ``../shared/data`` (never copied here); a test skips with
the reason when its clip is absent. About 1.5 min on 2 loaded cores.

People standing still: intel ``one-by-one-person-detection.mp4`` shows one person at a time
standing at a table with their back to the camera for 10-20 s (about 8-16 s, 24-40 s, 52-68 s,
80-84 s, 96-116 s and 132-136 s); no clip of the shared data shows anyone sitting or lying down.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from tests.clips import data_path
from vigie.evaluate import runner, transforms

#: Kinds that must stay silent on ordinary footage, normal or transformed.
SILENT = ("abandoned_object", "crowd_movement", "fire", "person_down", "smoke", "tamper")

NORMAL = {
    "one_by_one": "intel_sample_videos/one-by-one-person-detection.mp4",
    "car": "intel_sample_videos/car-detection.mp4",
    "people_gif": "intel_sample_videos/people-detection.gif",
    "person_bicycle_car_gif": "intel_sample_videos/person-bicycle-car-detection.gif",
    "bgs_video02": "bgslibrary_traffic/video02.avi",
    "bgs_video03": "bgslibrary_traffic/video03.avi",
    "wsdot_stills": "bgslibrary_traffic/wsdot_i5_frames",
    "tud_campus": "mot15_tud_campus",
    "pets2009": "pets2009_s2l1_view001",
}

#: (transform, clip, excerpt (s) or None): each class of false alarm on the clips it concerns.
#: One-by-one 90-120 s: a person in a grey cardigan stands still at the table from ~96 to ~116 s;
#: PETS 0-40 s: people crossing the junction, a red door under the lamp of flashing_light.
STANDING = (90.0, 120.0)
PETS = (0.0, 40.0)
TRANSFORMED = [
    ("greyscale", "one_by_one", STANDING),
    ("greyscale", "pets2009", PETS),
    ("lighting_step:factor=0.5,at_s=2", "one_by_one", (20.0, 70.0)),
    ("lighting_step:factor=0.5,at_s=2", "pets2009", PETS),
    ("lighting_step:factor=1.8,at_s=2", "bgs_video02", None),
    # lights switched on or off: the background analytics relearn the scene (vigie.detector.lighting); before,
    # abandoned objects and a person down on PETS, smoke on video03, people down on video02
    ("lighting_step:factor=1.8,at_s=2", "pets2009", None),
    ("lighting_step:factor=1.8,at_s=2", "bgs_video03", None),
    ("lighting_step:factor=0.5,at_s=2", "bgs_video02", None),
    ("flashing_light:colour=red", "pets2009", PETS),
    ("flashing_light:colour=orange,hz=2", "bgs_video03", None),
    ("flashing_light:colour=white,hz=1.5", "car", None),
    ("reflections", "pets2009", PETS),
    ("reflections", "one_by_one", STANDING),
    ("camera_noise:sigma=8", "pets2009", PETS),
    ("camera_noise:sigma=8", "one_by_one", (20.0, 70.0)),
    ("low_bitrate:quality=12", "pets2009", PETS),
    ("low_bitrate:quality=12", "one_by_one", STANDING),
]

UCSD_TRAIN = ("ucsd_ped2_train/Train001", "ucsd_ped2_train/Train002", "ucsd_ped2_train/Train003")


def _alarms(clip: str, transform: str | None = None, excerpt: tuple[float, float] | None = None,
            warmup: tuple[str, ...] = (), kinds: tuple[str, ...] | None = None) -> dict[str, list]:
    torch.set_num_threads(1)
    path = data_path(*clip.split("/"))
    warm = [data_path(*w.split("/")) for w in warmup]
    ev = runner.evaluate(path, warmup=warm, kinds=kinds, object_classes=False, excerpt=excerpt,
                         transform=transforms.parse(transform) if transform else None)
    assert ev.times_s and not ev.errors, ev.errors
    assert set(SILENT if kinds is None else kinds) <= set(ev.kinds), ev.kinds
    return {k: [(round(t, 1), track, boxes) for t, track, boxes, _, _ in v] for k, v in ev.detections.items()
            if k in SILENT and v}


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(NORMAL))
def test_every_kind_is_silent_on_normal_footage(name):
    assert _alarms(NORMAL[name]) == {}


@pytest.mark.data
@pytest.mark.parametrize("clip", ["ucsd_ped2_test001", "ucsd_ped2_test004"])
def test_greyscale_walkway_raises_no_smoke_after_its_warmup(clip):
    # greyscale footage: every pixel is grey, which is no evidence of smoke (pedestrians raised smoke
    # ~2.2 s in before the fix); crowd_movement is left out: the cyclist and the cart are its events
    kinds = tuple(k for k in SILENT if k != "crowd_movement")
    assert _alarms(clip, warmup=UCSD_TRAIN, kinds=kinds) == {}


@pytest.mark.data
@pytest.mark.parametrize(("transform", "name", "excerpt"), TRANSFORMED,
                         ids=[f"{n}-{t.split(':')[0]}-{i}" for i, (t, n, _) in
                              enumerate(getattr(case, "values", case) for case in TRANSFORMED)])
def test_every_kind_is_silent_on_transformed_footage(transform, name, excerpt):
    assert _alarms(NORMAL[name], transform, excerpt) == {}


@pytest.mark.data
def test_lights_on_over_the_orange_floor_raise_no_object_and_no_person_down():
    # before: ghosts on the over-exposed floor and window once the abandoned-object analytic relearnt the scene
    # (~50 and ~57 s). Left out: fire, still raised as people pass, their shadows on the over-exposed glossy
    # floor flickering like flames (the flicker and hue cues of the hillside's small flames are as weak)
    kinds = tuple(k for k in SILENT if k != "fire")
    assert _alarms(NORMAL["one_by_one"], "lighting_step:factor=1.8,at_s=2", (0.0, 60.0), kinds=kinds) == {}


# -- the transforms themselves ---------------------------------------------------------------------

def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(transforms.TRANSFORMS))
def test_transforms_are_pure_documented_and_reproducible(name):
    f = _frame()
    before = f.copy()
    t = transforms.parse(name)
    out = t(f, 7, 3.0)
    assert out.shape == f.shape and out.dtype == np.uint8 and out is not f
    assert np.array_equal(f, before)  # the input is left as it was
    assert np.array_equal(out, t(f, 7, 3.0))
    assert transforms.TRANSFORMS[name].__doc__


def test_transforms_do_what_they_say():
    f = _frame()
    grey = transforms.greyscale(f, 0, 0.0)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    step = functools.partial(transforms.lighting_step, factor=0.5, at_s=2.0)
    assert np.array_equal(step(f, 0, 1.9), f)
    assert np.abs(step(f, 0, 2.0).astype(int) - f // 2).max() <= 1
    lamp = functools.partial(transforms.flashing_light, colour="red", hz=2.0, x=0.5, y=0.5, w=0.25, h=0.25)
    on, off = lamp(f, 0, 0.0), lamp(f, 1, 0.3)  # lit the first half of each 0.5 s period
    assert np.array_equal(off, f) and tuple(on[30, 40]) == transforms.LAMP_COLOURS["red"]
    wet = transforms.reflections(f, 0, 0.0, start=0.5)
    assert np.array_equal(wet[:24], f[:24]) and not np.array_equal(wet[24:], f[24:])
    assert transforms.camera_noise(f, 1, 0.0).tolist() != transforms.camera_noise(f, 2, 0.0).tolist()
    assert np.abs(transforms.low_bitrate(f, 0, 0.0).astype(int) - f).mean() > 5  # lossy


@pytest.mark.parametrize("spec", ["nope", "greyscale:factor=2", "lighting_step:factor", "low_bitrate:quality=0",
                                  "flashing_light:colour=green"])
def test_a_bad_transform_is_refused(spec):
    with pytest.raises(ValueError):
        transforms.parse(spec)
