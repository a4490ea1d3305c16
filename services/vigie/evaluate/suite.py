"""``vigie evaluate --suite DATA``: the project's quality measures on the shared clips, against their targets.

Each :class:`Case` evaluates one clip of ``DATA`` (``../shared/data``) with the default
settings (plus the zones or the colour query the case is about) through the same code
as ``vigie evaluate PATH`` (:func:`vigie.evaluate.runner.evaluate`), then checks the
figures the project commits to:

- UCSD Ped2 Test001 and Test004 after a warm-up on the Ped2 training clips: frame-level
  ROC AUC of the crowd-movement score >= 0.85, the abnormal movers raised, no false alarm;
- ABODA video 4: exactly one abandoned-object alarm, on the bag, within the dwell time
  plus 2 s after the owner has gone; no alarm of any other kind;
- FURG house6: fire within 2 s of the first flame box, box IoU >= 0.3; the hillside clip:
  fire or smoke raised;
- normal scenes (intel, bgslibrary, TUD campus, PETS 2009): no abandoned-object, fire,
  smoke, person-on-the-ground or tamper alarm;
- a colour query for red: found on the clip with a red car, nothing on a clip without red.

Missing clips are reported as skipped. The exit code is 1 when a measured figure misses
its target, or when no clip of the suite is under ``DATA``; a missing ``DATA`` folder is a
configuration error.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigie.core.errors import ConfigError
from vigie.detector.analytics.base import Box
from vigie.evaluate import groundtruth, report, runner

if TYPE_CHECKING:
    import torch

#: Kinds that must stay silent on footage of ordinary activity.
SILENT_ON_NORMAL = ("abandoned_object", "fire", "smoke", "person_down", "tamper")

#: One check's result: (measure, value as text, target as text, met).
Row = tuple[str, str, str, bool]


@dataclass(frozen=True, slots=True)
class Case:
    """One clip of the suite.

    Attributes:
        name: short label.
        clip: path under the data folder.
        check: ``(summary, evaluation, ground truth) -> rows`` (see :data:`Row`).
        kinds: kinds to run (None: every available kind).
        warmup: clips under the data folder played first.
        settings: the camera's ``analytics`` section, e.g. a colour query.
    """

    name: str
    clip: str
    check: Callable[[dict[str, Any], runner.Evaluation, groundtruth.GroundTruth], list[Row]]
    kinds: Sequence[str] | None = None
    warmup: Sequence[str] = ()
    settings: dict[str, Any] = field(default_factory=dict)


def _alarms(summary: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return summary["kinds"].get(kind, {}).get("alarms", [])


def _auc(target: float) -> Callable[..., list[Row]]:
    def check(summary, ev, gt) -> list[Row]:
        row = summary["kinds"]["crowd_movement"]
        auc, recall, delay, false = row["auc"], row["recall"], row["delay_s"], row["false_alarms"]
        return [("crowd_movement frame AUC", "—" if auc is None else f"{auc:.3f}", f">= {target}",
                 auc is not None and auc >= target),
                ("crowd_movement event raised (delay); false alarms",
                 f"{'yes' if recall else 'no'}" + ("" if delay is None else f" ({delay:.1f} s)") + f"; {false}",
                 "yes; 0", bool(recall) and false == 0)]
    return check


def _aboda(summary, ev, gt) -> list[Row]:
    alarms = _alarms(summary, "abandoned_object")
    row = summary["kinds"]["abandoned_object"]
    dwell = float(getattr(ev.configs["abandoned_object"], "dwell_s", 0.0))
    delay = row["delay_s"]
    others = {k: len(_alarms(summary, k)) for k in summary["kinds"] if k != "abandoned_object"}
    return [
        ("abandoned_object alarms (on the bag)", f"{len(alarms)} ({sum(bool(a['correct']) for a in alarms)})",
         "1 (1)", len(alarms) == 1 and bool(alarms[0]["correct"])),
        ("delay after the owner has gone", "—" if delay is None else f"{delay:.1f} s", f"<= {dwell + 2:.0f} s",
         delay is not None and delay <= dwell + 2.0),
        ("alarms of other kinds", str(sum(others.values())), "0", not any(others.values())),
    ]


def _furg(summary, ev, gt) -> list[Row]:
    """Delay, and the best IoU between a box of the first fire detection and a flame box of that frame
    (flames hidden in smoke are in the ground truth too: unions would compare unlike areas)."""
    delay = summary["kinds"]["fire"]["delay_s"]
    detections = ev.detections.get("fire", [])
    truth = gt.truth("fire", ev.configs.get("fire"), ev.frame_size)
    iou = 0.0
    if detections and truth is not None:
        t_s, _, boxes, size, _ = detections[0]
        iou = max((Box(*a).iou(Box(*b)) for a in boxes for b in truth.boxes_at(t_s, size) or []), default=0.0)
    return [("fire delay after the first flame box", "—" if delay is None else f"{delay:.1f} s", "<= 2 s",
             delay is not None and delay <= 2.0),
            ("fire box IoU (best pair)", f"{iou:.2f}", ">= 0.3", iou >= 0.3)]


def _hillside(summary, ev, gt) -> list[Row]:
    fire, smoke = _alarms(summary, "fire"), _alarms(summary, "smoke")
    first = min([a["t_s"] for a in fire + smoke], default=None)
    return [("fire / smoke alarms", f"{len(fire)} / {len(smoke)}" + ("" if first is None else f", first at {first:.1f} s"),
             ">= 1", bool(fire or smoke))]


def _normal(summary, ev, gt) -> list[Row]:
    counts = [len(_alarms(summary, k)) for k in SILENT_ON_NORMAL]
    return [(f"{' / '.join(SILENT_ON_NORMAL)} alarms, {summary['duration_s']:.0f} s",
             " / ".join(map(str, counts)), "0", not any(counts))]


def _colour(expected: bool) -> Callable[..., list[Row]]:
    def check(summary, ev, gt) -> list[Row]:
        alarms = _alarms(summary, "colour_query")
        return [("colour query 'red' alarms", str(len(alarms)), ">= 1" if expected else "0",
                 bool(alarms) == expected)]
    return check


_TRAIN = ("ucsd_ped2_train/Train001", "ucsd_ped2_train/Train002", "ucsd_ped2_train/Train003")
_RED = {"colour_query": {"queries": [{"name": "red", "colour": "red"}]}}

CASES: tuple[Case, ...] = (
    Case("UCSD Ped2 Test001", "ucsd_ped2_test001", _auc(0.85), ["crowd_movement"], _TRAIN),
    Case("UCSD Ped2 Test004", "ucsd_ped2_test004", _auc(0.85), ["crowd_movement"], _TRAIN),
    Case("ABODA video4", "aboda_video4", _aboda),
    Case("FURG house6", "furg_fire_house6", _furg),
    Case("hillside fire and smoke", "fire_smoke_hillside/hillside_fire_smoke.mp4", _hillside),
    *(Case(f"normal: {clip.split('/')[-1]}", clip, _normal) for clip in (
        "intel_sample_videos/one-by-one-person-detection.mp4", "intel_sample_videos/car-detection.mp4",
        "intel_sample_videos/people-detection.gif", "intel_sample_videos/person-bicycle-car-detection.gif",
        "bgslibrary_traffic/video02.avi", "bgslibrary_traffic/video03.avi", "bgslibrary_traffic/wsdot_i5_frames",
        "mot15_tud_campus", "pets2009_s2l1_view001")),
    Case("red car (colour query)", "intel_sample_videos/car-detection.mp4", _colour(True), ["colour_query"],
         settings=_RED),
    Case("no red (colour query)", "intel_sample_videos/one-by-one-person-detection.mp4", _colour(False),
         ["colour_query"], settings=_RED),
)


def _cameras_file(folder: Path, settings: dict[str, Any]) -> str | None:
    """A one-camera YAML giving ``settings`` as its analytics section (JSON is YAML), or None."""
    if not settings:
        return None
    import json

    path = folder / "cameras.yaml"
    path.write_text(json.dumps({"cameras": [{"id": "eval", "source": "synthetic://scene", "analytics": settings}]}))
    return str(path)


def _paths(case: Case, data: Path) -> list[Path] | None:
    """The clip of ``case`` then its warm-up clips under ``data``; None when one is missing."""
    paths = [data / case.clip, *(data / w for w in case.warmup)]
    return paths if all(p.exists() for p in paths) else None


def run_case(case: Case, data: Path, device: str | torch.device = "cpu", object_classes: bool = True) -> list[Row] | None:
    """Evaluate ``case`` on the clips under ``data`` on ``device`` (text or torch.device); None when a clip is missing.

    Raises:
        ConfigError: bad settings in the case (a defect of this module), or a bad device.
        SourceError: a clip cannot be decoded.
    """
    paths = _paths(case, data)
    if paths is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        ev = runner.evaluate(paths[0], warmup=paths[1:], kinds=case.kinds, device=device,
                             cameras=_cameras_file(Path(tmp), case.settings), object_classes=object_classes)
    gt = groundtruth.load(ev.clip.source, ev.clip.stills_fps)
    summary, _ = report.summarize(ev, gt)
    return case.check(summary, ev, gt)


def main(data: str, as_json: bool = False, device: str | torch.device = "cpu", object_classes: bool = True) -> int:
    """Run every case on ``data`` and print a table (or one JSON object).

    Returns 1 if a target is missed, or if no case's clips are under ``data`` (said in one
    line on stderr; nothing runs), else 0.

    Raises:
        ConfigError: ``data`` is not a folder.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    if not Path(data).is_dir():
        raise ConfigError(f"--suite {data}: no such folder (give the data folder, e.g. ../shared/data)")
    if all(_paths(case, Path(data)) is None for case in CASES):
        print(f"vigie evaluate: no clip of the suite found under {data} (e.g. {CASES[0].clip})", file=sys.stderr)
        return 1

    console = Console(stderr=as_json, width=160)
    results: dict[str, Any] = {}
    table = Table(title=f"Vigie quality suite on {data}")
    for column in ("clip", "measure", "value", "target", ""):
        table.add_column(column)
    for case in CASES:
        console.print(f"[dim]{case.name}…[/]")
        rows = run_case(case, Path(data), device, object_classes)
        if rows is None:
            results[case.name] = None
            table.add_row(case.name, "skipped: clip absent", "", "", "")
            continue
        results[case.name] = [dict(zip(("measure", "value", "target", "met"), r)) for r in rows]
        for k, (measure, value, target, met) in enumerate(rows):
            table.add_row(case.name if k == 0 else "", measure, value, target, "ok" if met else "[red]MISSED[/]")
    missed = any(not r["met"] for rows in results.values() if rows for r in rows)
    if as_json:
        print(json.dumps({"data": data, "cases": results, "all_met": not missed}))
    else:
        console.print(table)
    return 1 if missed else 0
