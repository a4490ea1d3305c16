"""Figures of an :class:`~vigie.evaluate.runner.Evaluation`: one JSON object, a table, a plot.

The JSON object has the same keys for every clip (None where a figure does not apply)::

    {"path", "frames", "duration_s", "fps",
     "ground_truth": {"format", "file", "dataset", "source", "approximate", "kinds_present", "labelled_all"},
     "warmup": {"paths", "seconds", "frames", "alarms"}, "labelled_not_run": [kind, ...], "warnings": [text],
     "kinds": {kind: {"labelled", "auc", "precision", "recall", "delay_s", "delays_s", "events", "found",
                      "false_alarms", "false_alarms_per_hour", "unlabelled_alarms", "error",
                      "alarms": [{"t_s", "track", "box": [x, y, w, h], "correct"}]}}}

``ground_truth.format`` and ``file`` name the label formats and files read (None
without any; see :mod:`vigie.evaluate.formats`). ``labelled_not_run``: kinds the clip is
labelled for that this run left out (not in ``--kinds``, or not run by default, such as
the MOT files' intrusion and density). ``warnings``: what makes the figures doubtful, such
as a video decoded much shorter than it declares (truncated or damaged). ``error`` is None unless the analytic
raised (it is then left out for the rest of the clip and not judged).

How each kind is judged: a kind the clip is labelled for is matched against its events
(:func:`~vigie.evaluate.metrics.match_events`; with no event of it, each of its alarms
is false); the alarms of a kind it is not labelled for are not judged but counted as
``unlabelled_alarms`` (``labelled`` False, the judged figures None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigie.evaluate import metrics
from vigie.evaluate.groundtruth import GroundTruth, KindTruth
from vigie.evaluate.runner import Evaluation


@dataclass(slots=True)
class KindCurve:
    """What the plot needs of one kind: scores over time, events, alarms and whether each was right."""

    times_s: np.ndarray
    scores: np.ndarray
    events: list[tuple[float, float]] = field(default_factory=list)
    alarms: list[metrics.Alarm] = field(default_factory=list)
    correct: list[bool | None] = field(default_factory=list)
    labels: np.ndarray | None = None  # per frame, abnormal; None when the kind is not judged


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _union(boxes: tuple[metrics.BoxT, ...]) -> list[int] | None:
    if not boxes:
        return None
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]


def _overlap_check(truth: KindTruth, frame_period: float):
    """``(alarm, event) -> bool | None``: the alarm's boxes overlap the GT boxes inside the event."""
    def check(alarm: metrics.Alarm, event: tuple[float, float]) -> bool | None:
        if truth.boxes is None or not alarm.boxes:
            return None
        t = min(max(alarm.t_s, event[0]), max(event[0], event[1] - frame_period))
        gt_boxes = truth.boxes_at(t, alarm.frame_size)
        if gt_boxes is None:
            return None
        return metrics.boxes_overlap(alarm.boxes, gt_boxes)
    return check


def _warnings(ev: Evaluation, decoded_s: float) -> list[str]:
    """What makes the figures of ``ev`` doubtful: a video file decoded much shorter than it declares."""
    from pathlib import Path

    import av

    from vigie.evaluate.formats import duration_s

    source = Path(ev.clip.source)
    if not source.is_file():
        return []
    try:
        declared = duration_s(source, float(ev.camera.fps))
    except (av.FFmpegError, OSError):
        return []
    if declared is None or declared - decoded_s <= max(2.0, 0.1 * declared):
        return []
    return [f"decoded {decoded_s:.1f} s of the {declared:.1f} s the file declares: truncated or damaged? "
            "(events past the decoded end are missed)"]


def summarize(ev: Evaluation, gt: GroundTruth, tolerance_s: float = 1.0) -> tuple[dict[str, Any], dict[str, KindCurve]]:
    """The JSON object (see the module docstring) and the per-kind curves for :func:`plot`."""
    fps = float(ev.camera.fps)
    times = np.asarray(ev.times_s, dtype=np.float64)
    start = float(times.min()) if len(times) else 0.0
    end = float(times.max()) + 1.0 / fps if len(times) else 0.0
    duration = end - start
    out: dict[str, Any] = {
        "path": ev.path, "frames": len(times), "duration_s": _round(duration, 3), "fps": fps,
        "ground_truth": {"format": gt.format, "file": gt.file, "dataset": gt.dataset, "source": gt.source,
                         "approximate": gt.approximate, "labelled_all": gt.labelled_all,
                         "kinds_present": None if gt.kinds_present is None else sorted(gt.kinds_present)},
        "warmup": {"paths": ev.warmup_paths, "seconds": _round(ev.warmup_s, 3), "frames": ev.warmup_frames,
                   "alarms": ev.warmup_alarms},
        "labelled_not_run": sorted(set(gt.kinds_present or ()) - set(ev.kinds)),
        "warnings": _warnings(ev, duration),
        "kinds": {},
    }
    curves: dict[str, KindCurve] = {}
    for kind in ev.kinds:
        scores = np.asarray(ev.scores.get(kind, [math.nan] * len(times)), dtype=np.float64)
        alarms = metrics.alarms_from((t, track, boxes, size) for t, track, boxes, size, _ in ev.detections.get(kind, []))
        curve = curves[kind] = KindCurve(times, scores, alarms=alarms)
        row: dict[str, Any] = {"labelled": gt.labelled(kind), "auc": None, "precision": None, "recall": None,
                               "delay_s": None, "delays_s": [], "events": None, "found": None, "false_alarms": None,
                               "false_alarms_per_hour": None, "unlabelled_alarms": None, "error": ev.errors.get(kind)}
        judged, truth = gt.judge(kind, ev.configs.get(kind), ev.frame_size)
        judged = judged and kind not in ev.errors
        if judged:
            if truth is not None:
                labels = np.array([truth.label(t) for t in times], dtype=bool)
                curve.events = truth.events(end)
                check = _overlap_check(truth, 1.0 / fps)
            else:  # the clip holds no event of this kind: every alarm is false
                labels = np.zeros(len(times), dtype=bool)
                check = None
            curve.labels = labels
            if len(times) and not np.isnan(scores).any():
                row["auc"] = _round(metrics.roc_auc(scores, labels))
            result = metrics.match_events(alarms, curve.events, tolerance_s, check)
            curve.correct = list(result.correct)
            row.update(precision=_round(result.precision), recall=_round(result.recall),
                       delay_s=_round(result.delay_s, 3), false_alarms=result.false_alarms,
                       delays_s=[_round(d, 3) for d in result.delays_s], events=len(curve.events),
                       found=sum(result.detected),
                       false_alarms_per_hour=_round(metrics.per_hour(result.false_alarms, duration), 2))
        else:
            curve.correct = [None] * len(alarms)
            if not row["labelled"]:
                row["unlabelled_alarms"] = len(alarms)
        row["alarms"] = [{"t_s": _round(a.t_s, 3), "track": a.track, "box": _union(a.boxes), "correct": ok}
                         for a, ok in zip(alarms, curve.correct)]
        out["kinds"][kind] = row
    return out, curves


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(summary: dict[str, Any], console: Any = None) -> None:
    """Print ``summary`` as a rich table (to stdout unless ``console`` is given)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        import sys

        console = Console() if sys.stdout.isatty() else Console(width=120)
    gt, warm = summary["ground_truth"], summary["warmup"]
    title = (f"{summary['path']}: {summary['frames']} frames, {_fmt(summary['duration_s'], 1)} s at "
             f"{_fmt(summary['fps'], 1)} fps")
    labelled = "all" if gt["labelled_all"] else ", ".join(gt["kinds_present"] or []) or "none"
    title += (f"\nground truth: {gt['format']} read from {gt['file']}" if gt["file"]
              else "\nground truth: none found beside the clip (no alarm judged)")
    table = Table(title=title, caption=(
        f"kinds labelled: {labelled}" + ("; ground truth APPROXIMATE" if gt["approximate"] else "")
        + (f"; labelled but not run: {', '.join(summary['labelled_not_run'])} (add them with --kinds)"
           if summary["labelled_not_run"] else "")
        + (f"; warm-up {_fmt(warm['seconds'], 0)} s, {warm['frames']} frames, {warm['alarms']} tracks"
           if warm["paths"] else "")))
    for name in ("kind", "AUC", "precision", "recall", "delay s", "alarms", "false", "false/h"):
        table.add_column(name, justify="left" if name == "kind" else "right", no_wrap=name == "kind")
    for kind, row in summary["kinds"].items():
        table.add_row(kind if row["error"] is None else f"{kind} (failed: {row['error'][:40]})", _fmt(row["auc"]), _fmt(row["precision"], 2), _fmt(row["recall"], 2),
                      _fmt(row["delay_s"], 1), str(len(row["alarms"])),
                      _fmt(row["false_alarms"]) if row["labelled"] else "unlabelled",
                      _fmt(row["false_alarms_per_hour"], 1))
    console.print(table)
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning: {warning}[/]")


def plot(summary: dict[str, Any], curves: dict[str, KindCurve], out_path: str) -> None:
    """Draw each kind's scores over time, its ground-truth events shaded and its alarms
    marked (green: true, red: false, grey: not judged), to a PNG at ``out_path``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    kinds = list(curves) or ["(no analytic)"]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(10, 1.6 + 1.5 * len(kinds)), sharex=True, squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds):
        curve = curves.get(kind)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=8)
        if curve is None:
            continue
        for t0, t1 in curve.events:
            ax.axvspan(t0, t1, color="orange", alpha=0.25, lw=0)
        if np.isfinite(curve.scores).any():
            ax.plot(curve.times_s, curve.scores, lw=1.0, color="tab:blue")
        else:
            ax.text(0.5, 0.5, "no per-frame scores (last_scores unset)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="grey")
        for alarm, ok in zip(curve.alarms, curve.correct):
            colour = "grey" if ok is None else ("tab:green" if ok else "tab:red")
            ax.axvline(alarm.t_s, color=colour, lw=1.2)
            ax.plot([alarm.t_s], [1.0], marker="v", color=colour, ms=6)
        row = summary["kinds"].get(kind, {})
        ax.text(0.995, 0.92, f"AUC {_fmt(row.get('auc'))}  alarms {len(row.get('alarms', []))}",
                transform=ax.transAxes, ha="right", va="top", fontsize=7)
    axes[-1, 0].set_xlabel("stream time, s")
    fig.suptitle(f"{summary['path']} — shaded: ground-truth events; green/red: true/false alarms", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(out_path, format="png", dpi=100)
    plt.close(fig)
