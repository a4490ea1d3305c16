"""``vigie evaluate --suite DATA``: the project's quality measures on the shared clips, against their targets.

The suite is data, not code: :data:`SUITE_FILE` (``suite.yaml`` beside this module)
lists clips of ``DATA`` (``../shared/data``) by relative path, each with the kinds to
run, its warm-up clips, analytics settings (e.g. a colour query) and the targets the
project commits to (:class:`Target`: a measure of one or more kinds, with a minimum
and/or a maximum). The clips' ground truth is what lies beside them (UCSD, MOT, FURG
files; :mod:`vigie.evaluate.formats`) plus the Vigie label file
``labels/<clip path>.yaml`` of this package (:data:`LABELS_DIR`; a case's ``labels``
names another), so the shared folder is never written to. The clips run as a collection
(:mod:`vigie.evaluate.collection`: per-kind tables with 95 % intervals), then each
target is checked. Adding a clip: a label file and an entry in ``suite.yaml``.

Missing clips are reported as skipped. The exit code is 1 when a measured figure misses
its target, or when no clip of the suite is under ``DATA``; a missing ``DATA`` folder is a
configuration error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from vigie.core.config import load_yaml_model
from vigie.core.errors import ConfigError
from vigie.core.settings import StrictModel
from vigie.evaluate import collection

if TYPE_CHECKING:
    import torch

SUITE_FILE = Path(__file__).with_name("suite.yaml")
LABELS_DIR = Path(__file__).with_name("labels")

#: One check's result: (measure, value as text, target as text, met).
Row = tuple[str, str, str, bool]

Measure = Literal["auc", "recall", "delay_s", "false_alarms", "alarms", "correct_alarms", "first_box_iou"]
_LABEL = {"auc": "frame AUC", "recall": "events found (recall)", "delay_s": "alarm delay, s",
          "false_alarms": "false alarms", "alarms": "alarms", "correct_alarms": "alarms on the event",
          "first_box_iou": "box IoU of the first alarm (best pair)"}
_BOUND = re.compile(r"^\s*([a-z_]+)\s*(?:([+-])\s*(\d+(?:\.\d+)?))?\s*$")


class Target(StrictModel):
    """A figure the project commits to: ``measure`` of ``kind`` (summed over several kinds for counts;
    ``other_kinds``: over every kind run but those), within ``min`` and ``max``. A bound is a number,
    or a setting of the (first) kind's analytic plus or minus a number, e.g. ``dwell_s + 2``."""

    measure: Measure
    kind: str | list[str]
    other_kinds: bool = False
    min: float | str | None = None
    max: float | str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Target":
        if self.min is None and self.max is None:
            raise ValueError("a target needs min or max")
        for bound in (self.min, self.max):
            if isinstance(bound, str) and not _BOUND.match(bound):
                raise ValueError(f"bound {bound!r} is neither a number nor 'setting + number'")
        if self.measure not in ("alarms", "false_alarms", "correct_alarms") and (
                self.other_kinds or len(self.kinds) > 1):
            raise ValueError(f"{self.measure} is measured on one kind")
        return self

    @property
    def kinds(self) -> list[str]:
        return [self.kind] if isinstance(self.kind, str) else list(self.kind)


class Case(StrictModel):
    """One clip of the suite (paths relative to the data folder)."""

    name: str = Field(min_length=1)
    clip: str = Field(min_length=1)
    note: str = ""
    kinds: list[str] | None = None
    warmup: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict, description="the camera's analytics section")
    labels: str | None = Field(default=None, description="label file, relative to labels/ (default <clip>.yaml)")
    targets: list[Target] = Field(min_length=1)


class Suite(StrictModel):
    """The suite file: its cases, in order."""

    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Suite":
        names = [c.name for c in self.cases]
        if len(set(names)) != len(names):
            raise ValueError("case names must be unique")
        return self


def load(path: str | Path = SUITE_FILE) -> Suite:
    """The suite file at ``path``. Raises ConfigError (path and line named) when malformed."""
    return load_yaml_model(path, Suite)


def item(case: Case, data: Path) -> collection.Item | None:
    """The collection item of ``case`` under ``data``; None when its clip or a warm-up clip is missing."""
    paths = [data / case.clip, *(data / w for w in case.warmup)]
    if not all(p.exists() for p in paths):
        return None
    labels = LABELS_DIR / (case.labels or f"{case.clip}.yaml")
    return collection.Item(case.name, paths[0], labels if labels.is_file() else None, paths[1:],
                           case.kinds, case.settings)


def _bound(bound: float | str | None, settings: dict[str, Any]) -> float | None:
    if bound is None or not isinstance(bound, str):
        return bound
    name, sign, number = _BOUND.match(bound).groups()
    value = float(settings.get(name, 0.0) or 0.0)
    return value + (float(number) if sign == "+" else -float(number) if sign == "-" else 0.0)


def _value(result: collection.ClipResult, kind: str, measure: str) -> float | None:
    row = result.summary["kinds"].get(kind)
    if row is None:
        return None
    if measure == "alarms":
        return len(row["alarms"])
    if measure == "correct_alarms":
        return sum(bool(a["correct"]) for a in row["alarms"])
    if measure == "first_box_iou":
        return result.first_iou.get(kind)
    return row[measure]


def check(target: Target, result: collection.ClipResult) -> Row:
    """The row of ``target`` measured on ``result``."""
    ran = list(result.summary["kinds"])
    kinds = [k for k in ran if k not in target.kinds] if target.other_kinds else target.kinds
    values = [_value(result, k, target.measure) for k in kinds]
    settings = result.settings.get(kinds[0], {}) if kinds else {}
    low, high = _bound(target.min, settings), _bound(target.max, settings)
    known = [v for v in values if v is not None]
    total = sum(known) if known and len(known) == len(values) else (0 if not values else None)
    met = total is not None and (low is None or total >= low) and (high is None or total <= high)
    digits = 3 if target.measure in ("auc", "first_box_iou") else 2 if target.measure in ("recall", "delay_s") else 0
    text = " / ".join("—" if v is None else f"{v:.{digits}f}" for v in values) or "0"
    fmt = (lambda b: f"{b:g}")
    goal = (fmt(low) if low == high else f">= {fmt(low)}" if high is None else f"<= {fmt(high)}" if low is None
            else f"{fmt(low)}..{fmt(high)}")
    what = "other kinds" if target.other_kinds else " / ".join(kinds)
    return f"{what} {_LABEL[target.measure]}", text, goal, met


def run_case(case: Case, data: Path, device: str | torch.device = "cpu", object_classes: bool = True) -> list[Row] | None:
    """Evaluate ``case`` on the clips under ``data`` (in this process); None when a clip is missing.

    Raises:
        ValueError: the clip could not be evaluated (the message says why).
    """
    found = item(case, data)
    if found is None:
        return None
    (result,) = collection.run([found], collection.Options(device=str(device), object_classes=object_classes),
                               progress=False)
    if result.error:
        raise ValueError(f"{case.name}: {result.error}")
    return [check(t, result) for t in case.targets]


def main(data: str, as_json: str | bool | None = False, device: str | torch.device = "cpu", object_classes: bool = True,
         jobs: int = 1, plots: str | None = None, suite_file: str | Path = SUITE_FILE) -> int:
    """Run every case of ``suite_file`` on ``data``: the per-kind tables and the targets' table
    (``as_json`` True or "-": one JSON object on stdout; a file name: JSON written there).

    Returns 1 if a target is missed, or if no case's clips are under ``data`` (said in one
    line on stderr; nothing runs), else 0.

    Raises:
        ConfigError: ``data`` is not a folder, or the suite file or a label file is malformed.
    """
    from rich.console import Console
    from rich.table import Table

    from vigie.evaluate import _emit

    if not Path(data).is_dir():
        raise ConfigError(f"--suite {data}: no such folder (give the data folder, e.g. ../shared/data)")
    cases = load(suite_file).cases
    items = {case.name: item(case, Path(data)) for case in cases}
    if all(i is None for i in items.values()):
        print(f"vigie evaluate: no clip of the suite found under {data} (e.g. {cases[0].clip})", file=sys.stderr)
        return 1
    present = [i for i in items.values() if i is not None]
    options = collection.Options(device=str(device), object_classes=object_classes, plots=plots)
    results = dict(zip((i.name for i in present), collection.run(present, options, jobs)))
    kinds = collection.aggregate(list(results.values()))
    console = Console(width=160)
    table = Table(title=f"Vigie quality suite on {data} ({SUITE_FILE.name if suite_file == SUITE_FILE else suite_file})")
    for column in ("clip", "measure", "value", "target", ""):
        table.add_column(column)
    out: dict[str, Any] = {}
    for case in cases:
        result = results.get(case.name)
        if result is None or result.error:
            out[case.name] = None if result is None else {"error": result.error}
            table.add_row(case.name, "skipped: clip absent" if result is None else f"[red]{result.error}[/]", "", "",
                          "" if result is None else "[red]MISSED[/]")
            continue
        rows = [check(t, result) for t in case.targets]
        out[case.name] = [dict(zip(("measure", "value", "target", "met"), r)) for r in rows]
        for k, (measure, value, target, met) in enumerate(rows):
            table.add_row(case.name if k == 0 else "", measure, value, target, "ok" if met else "[red]MISSED[/]")
    failed = [r for r in out.values() if isinstance(r, dict)]  # a clip that could not be evaluated
    missed = bool(failed) or any(not x["met"] for r in out.values() if isinstance(r, list) for x in r)
    report = {"data": data, "cases": out, "all_met": not missed,
              "collection": collection.as_json(data, list(results.values()), kinds, plots)}

    def tables() -> None:
        collection.print_tables(data, list(results.values()), kinds, console)
        console.print(table)

    _emit(report, "-" if as_json is True else as_json or None, tables)
    return 1 if missed else 0
