"""``vigie evaluate FOLDER``: the analytics measured over a collection of labelled clips.

A collection is a folder whose clips (video files, folders of stills, folders holding
``frames/`` or ``img1/``), found at any depth (:func:`discover`), each carry their own
ground truth beside them (:mod:`vigie.evaluate.formats`); a clip a label file names as
warm-up is played before that clip and is not evaluated itself. Each clip is evaluated
as ``vigie evaluate CLIP`` would (:func:`run_item`), in a process pool with ``jobs`` > 1,
and per kind the figures are summed over the clips labelled for it
(:func:`aggregate`), each with a 95 % confidence interval (:mod:`vigie.evaluate.intervals`):

* events, found, missed; recall = found / events, Wilson interval;
* false alarms and false alarms per hour of the labelled clips, exact Poisson interval;
* alarm delay percentiles p50 and p90 over the found events, bootstrap over events;
* frame-level AUC of the pooled per-frame scores, bootstrap over blocks of
  :data:`BLOCK_S` seconds (neighbouring frames are not independent);
* alarms of the kind on clips not labelled for it, apart, as ``unlabelled``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vigie.evaluate import groundtruth, intervals, labels, metrics

#: Length of the blocks of frames the AUC's bootstrap resamples, seconds.
BLOCK_S = 2.0


@dataclass(slots=True)
class Item:
    """One clip of a collection: ``name`` (its path in the collection), the clip, a Vigie label file
    to use instead of the one beside it, its warm-up clips, kinds and analytics settings (None, {}: defaults)."""

    name: str
    clip: Path
    labels: Path | None = None
    warmup: list[Path] = field(default_factory=list)
    kinds: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Options:
    """Settings shared by the clips of a run (see ``vigie evaluate --help``)."""

    fps: float = 5.0
    warmup: list[str] = field(default_factory=list)
    warmup_min_s: float | None = None
    kinds: list[str] | None = None
    cameras: str | None = None
    camera_id: str | None = None
    device: str = "cpu"
    stills_fps: float | None = None
    object_classes: bool = True
    tolerance_s: float = 1.0
    plots: str | None = None
    threads: int = 1


@dataclass(slots=True)
class ClipResult:
    """What one clip gave: its summary (:func:`vigie.evaluate.report.summarize`), or the ``error`` that
    stopped it; per judged kind the ``(scores, labels)`` of its frames and the best IoU of its first
    detection with the ground-truth boxes; the analytics' settings."""

    name: str
    path: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    frames: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    first_iou: dict[str, float] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    plot: str | None = None


# --- discovery -------------------------------------------------------------------------------


def _clip_dirs(folder: Path) -> list[Path] | None:
    """The clip of ``folder`` when it is one (stills, or a home of ``frames/``/``img1/``), else None."""
    from vigie.evaluate.formats import _is_stills

    if _is_stills(folder):
        return [folder]
    for sub in groundtruth.STILLS_FOLDERS:
        if (folder / sub).is_dir() and _is_stills(folder / sub):
            return [folder / sub]
    return None


def _walk(folder: Path) -> list[Path]:
    from vigie.evaluate.formats import _is_video

    own = _clip_dirs(folder)
    if own is not None:
        return own
    clips: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if _is_video(entry):
            clips.append(entry)
        elif entry.is_dir() and entry.name not in groundtruth.GT_FOLDERS:
            clips += _walk(entry)
    return clips


def discover(root: str | os.PathLike[str]) -> list[Item]:
    """The clips under ``root``, in path order, each with the warm-up its label file names; clips
    that are another's warm-up are left out.

    Raises:
        vigie.core.config.ConfigError: a malformed label file (path and line named), or a plain
            ``labels.yaml`` that labels no clip, before any work.
    """
    from vigie.evaluate.formats import check_plain_labels, home, read_labels

    root = Path(os.path.abspath(root))  # symlinks kept: labels lie beside the link
    items = []
    for clip in _walk(root):
        found = labels.label_file(clip, home(clip)[1])
        check_plain_labels(clip, found)
        own = None if found is None else read_labels(found, clip, groundtruth.stills_fps(clip) if clip.is_dir() else None)
        warm = [Path(os.path.abspath(found.parent / w)) for w in own.warmup] if own is not None else []
        named = clip.parent if clip.name in groundtruth.STILLS_FOLDERS and clip.parent != root else clip
        items.append(Item(str(named.relative_to(root)) if named != root else clip.name, clip, warmup=warm))
    warmups = {w for item in items for w in item.warmup}
    return [item for item in items if item.clip not in warmups]


def is_collection(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder of several clips (or of clips in sub-folders) rather than one clip."""
    p = Path(path)
    if not p.is_dir() or _clip_dirs(p) is not None:
        return False
    from vigie.evaluate.formats import _is_video

    entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    return not (len([e for e in entries if _is_video(e)]) == 1 and not any(e.is_dir() and _walk(e) for e in entries))


# --- one clip ------------------------------------------------------------------------------


def _cameras_file(folder: Path, settings: dict[str, Any]) -> str | None:
    """A one-camera YAML giving ``settings`` as its analytics section (JSON is YAML), or None."""
    if not settings:
        return None
    import json

    path = folder / "cameras.yaml"
    path.write_text(json.dumps({"cameras": [{"id": "eval", "source": "synthetic://scene", "analytics": settings}]}))
    return str(path)


def _first_iou(ev: Any, gt: groundtruth.GroundTruth, kind: str) -> float | None:
    """Best IoU between a box of ``kind``'s first detection and a ground-truth box of that time."""
    from vigie.detector.analytics.base import Box

    detections = ev.detections.get(kind, [])
    judged, truth = gt.judge(kind, ev.configs.get(kind), ev.frame_size)
    if not detections or not judged or truth is None:
        return None
    t_s, _, boxes, size, _ = detections[0]
    return max((Box(*a).iou(Box(*b)) for a in boxes for b in truth.boxes_at(t_s, size) or []), default=0.0)


def run_item(item: Item, options: Options) -> ClipResult:
    """Evaluate one clip (in this process): figures, frames for the pooled AUC, a plot when asked.

    Errors of the clip (unreadable, no frame, bad ground-truth file) are returned in ``error``;
    its ground truth is read first, so that a bad file costs no analytics work.
    """
    import torch

    from vigie.core.errors import ConfigError
    from vigie.evaluate import report, runner
    from vigie.grabber.errors import SourceError

    torch.set_num_threads(options.threads)
    result = ClipResult(item.name, str(item.clip))
    try:
        clip = runner.resolve_clip(item.clip, options.stills_fps)
        gt = groundtruth.load(clip.source, clip.stills_fps, item.labels)
        with tempfile.TemporaryDirectory() as tmp:
            cameras = options.cameras or _cameras_file(Path(tmp), item.settings)
            ev = runner.evaluate(item.clip, fps=options.fps, warmup=item.warmup or options.warmup,
                                 warmup_min_s=options.warmup_min_s, kinds=item.kinds or options.kinds,
                                 cameras=cameras, camera_id=options.camera_id, device=options.device,
                                 stills_fps=options.stills_fps, object_classes=options.object_classes)
        if not ev.times_s:
            raise ValueError(f"{item.clip}: no frame could be decoded")
    except (OSError, ValueError, SourceError, ConfigError) as exc:
        result.error = str(exc)
        return result
    result.summary, curves = report.summarize(ev, gt, options.tolerance_s)
    for kind, curve in curves.items():
        if curve.labels is not None and len(curve.scores) and np.isfinite(curve.scores).all():
            result.frames[kind] = (curve.times_s, curve.scores, curve.labels)
        iou = _first_iou(ev, gt, kind)
        if iou is not None:
            result.first_iou[kind] = iou
        config = ev.configs.get(kind)
        result.settings[kind] = config.model_dump() if hasattr(config, "model_dump") else {}
    if options.plots:
        result.plot = str(Path(options.plots) / (re.sub(r"[^A-Za-z0-9._-]+", "_", item.name.replace("/", "__")) + ".png"))
        report.plot(result.summary, curves, result.plot)
    return result


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _pool(jobs: int, threads: int) -> Any:
    """A pool of ``jobs`` spawned processes that ignore Ctrl-C (SIGINT): the parent alone handles it,
    stops them (:func:`_stop`) and exits without their tracebacks. They are started here, while
    SIGINT is ignored, since an ignored signal stays ignored in a spawned process."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    import signal
    import threading

    context = multiprocessing.get_context("spawn")  # torch threads do not survive a fork
    main = threading.current_thread() is threading.main_thread()  # signals are set there only
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,))
        for _ in range(jobs):
            pool.submit(int)  # start every worker now
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return pool


def _stop(pool: Any) -> None:
    """Cancel what ``pool`` has not started and end its workers (Ctrl-C)."""
    import multiprocessing

    pool.shutdown(wait=False, cancel_futures=True)
    for child in multiprocessing.active_children():
        child.terminate()


def run(items: Sequence[Item], options: Options, jobs: int = 1,
        progress: bool = True) -> list[ClipResult]:
    """Evaluate ``items`` (``jobs`` processes; 1: in this one), with a progress bar on stderr; results in item order."""
    from concurrent.futures import as_completed

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results: dict[int, ClipResult] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), disable=not progress, transient=False)
    with bar:
        task = bar.add_task("evaluating", total=len(items))
        if jobs <= 1:
            for k, item in enumerate(items):
                bar.update(task, description=f"evaluating {item.name}")
                results[k] = run_item(item, options)
                bar.advance(task)
        else:
            with _pool(jobs, options.threads) as pool:
                futures = {pool.submit(run_item, item, options): k for k, item in enumerate(items)}
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.update(task, description=f"done {items[futures[future]].name}")
                        bar.advance(task)
                except KeyboardInterrupt:
                    bar.update(task, description="interrupted")
                    _stop(pool)
                    raise
        bar.update(task, description="evaluated")
    return [results[k] for k in range(len(items))]


# --- figures over the collection -----------------------------------------------------------


def _ci(value: float | None, interval: tuple[float, float] | None, digits: int = 4) -> dict[str, Any]:
    r = (lambda v: None if v is None else round(float(v), digits))
    return {"value": r(value), "ci95": None if interval is None else [r(interval[0]), r(interval[1])]}


def _percentile(q: float) -> Callable[[list[float]], float | None]:
    return lambda values: float(np.percentile(values, q)) if values else None


def _pooled_auc(blocks: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    if not blocks:
        return None
    return metrics.roc_auc(np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))


def _blocks(frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for times, scores, labels_ in frames:
        index = np.floor((times - times.min()) / BLOCK_S).astype(int) if len(times) else np.zeros(0, int)
        out += [(scores[index == b], labels_[index == b]) for b in np.unique(index)]
    return out


def aggregate(results: Sequence[ClipResult]) -> dict[str, dict[str, Any]]:
    """Per kind, the figures over the clips labelled for it, with 95 % intervals (see the module docstring)."""
    kinds = sorted({k for r in results if r.summary for k in r.summary["kinds"]})
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        rows = [(r, r.summary["kinds"][kind]) for r in results if r.summary and kind in r.summary["kinds"]]
        judged = [(r, row) for r, row in rows if row["events"] is not None]
        hours = sum(r.summary["duration_s"] or 0.0 for r, _ in judged) / 3600.0
        events = sum(row["events"] for _, row in judged)
        found = sum(row["found"] for _, row in judged)
        false = sum(row["false_alarms"] for _, row in judged)
        alarms = sum(len(row["alarms"]) for _, row in judged)
        delays = [d for _, row in judged for d in row["delays_s"]]
        frames = [r.frames[kind] for r, _ in judged if kind in r.frames]
        blocks = _blocks(frames)
        out[kind] = {
            "clips": len(judged), "hours": round(hours, 4), "events": events, "found": found, "missed": events - found,
            "recall": _ci(found / events if events else None, intervals.wilson(found, events)),
            "precision": _ci((alarms - false) / alarms if alarms else None, intervals.wilson(alarms - false, alarms)),
            "false_alarms": false,
            "false_alarms_per_hour": _ci(false / hours if hours else None, intervals.poisson_rate(false, hours), 2),
            "delay_p50_s": _ci(_percentile(50)(delays), intervals.bootstrap(delays, _percentile(50), least=3), 2),
            "delay_p90_s": _ci(_percentile(90)(delays), intervals.bootstrap(delays, _percentile(90), least=3), 2),
            "auc": _ci(_pooled_auc(blocks), intervals.bootstrap(blocks, _pooled_auc, reps=500, least=4)),
            "unlabelled_alarms": sum(row["unlabelled_alarms"] or 0 for _, row in rows if not row["labelled"]),
            "unlabelled_clips": sum(1 for _, row in rows if not row["labelled"]),
        }
    return out


def as_json(root: str, results: Sequence[ClipResult], kinds: dict[str, dict[str, Any]],
            plots: str | None = None, options: Options | None = None) -> dict[str, Any]:
    """The JSON object of a collection run: ``{"collection", "level", "plots", "clips": [{"name", "path",
    "error", "plot", "summary"}], "kinds": {kind: figures of :func:`aggregate`}}``, with ``"options"``
    (the run's settings: ``fps``, ``kinds`` (None: the default ones), ``tolerance_s``, warm-up,
    cameras file) when ``options`` are given."""
    out = {"collection": root, "level": intervals.LEVEL, "plots": plots,
           "clips": [{"name": r.name, "path": r.path, "error": r.error, "plot": r.plot, "summary": r.summary}
                     for r in results],
           "kinds": kinds}
    if options is not None:
        shown = ("fps", "kinds", "tolerance_s", "warmup", "warmup_min_s", "cameras", "camera_id", "stills_fps",
                 "object_classes")
        out["options"] = {name: getattr(options, name) for name in shown}
    return out


def _fmt(figure: dict[str, Any], digits: int = 2, percent: bool = False) -> str:
    value, ci = figure["value"], figure["ci95"]
    if value is None:
        return "—"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    text = f"{value * scale:.{0 if percent else digits}f}{unit}"
    if ci is not None:
        text += f" [{ci[0] * scale:.{0 if percent else digits}f}–{ci[1] * scale:.{0 if percent else digits}f}]"
    return text


def _clips(n: int) -> str:
    return f"{n} clip" + ("" if n == 1 else "s")


def print_tables(root: str, results: Sequence[ClipResult], kinds: dict[str, dict[str, Any]], console: Any = None) -> None:
    """One rich table per kind: a row per clip with an event or an alarm of it (a clip not labelled
    for the kind: its alarms, "unlabelled", not judged), then the collection's totals with their
    95 % intervals; then the clips that failed."""
    from rich.console import Console
    from rich.table import Table

    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    for kind, fig in kinds.items():
        title = (f"{kind} over {root}: {_clips(fig['clips'])} labelled, {fig['hours'] * 60:.1f} min" if fig["clips"]
                 else f"{kind} over {root}: no clip is labelled for it; alarms listed, not judged")
        table = Table(title=title,
                      caption=f"listed: the clips with an event or an alarm; alarms on clips not labelled for "
                              f"{kind}: {fig['unlabelled_alarms']} ({_clips(fig['unlabelled_clips'])}); "
                              "[..]: 95 % confidence interval")
        for name in ("clip", "events", "found", "missed", "false alarms", "false/h", "delay p50 s", "delay p90 s",
                     "AUC"):
            table.add_column(name, justify="left" if name == "clip" else "right")
        for r in results:
            row = (r.summary or {}).get("kinds", {}).get(kind)
            if row is not None and not row["labelled"] and row["alarms"]:
                table.add_row(r.name, "—", "—", "—", f"{len(row['alarms'])} unlabelled", *["—"] * 4, style="dim")
            if row is None or row["events"] is None or not (row["events"] or row["alarms"]):
                continue
            delays = row["delays_s"]
            table.add_row(r.name, str(row["events"]), str(row["found"]), str(row["events"] - row["found"]),
                          str(row["false_alarms"]), f"{row['false_alarms_per_hour']:.1f}",
                          f"{np.percentile(delays, 50):.1f}" if delays else "—",
                          f"{np.percentile(delays, 90):.1f}" if delays else "—",
                          "—" if row["auc"] is None else f"{row['auc']:.3f}")
        totals = [str(fig["events"]), f"{fig['found']} ({_fmt(fig['recall'], percent=True)})", str(fig["missed"]),
                  str(fig["false_alarms"]), _fmt(fig["false_alarms_per_hour"], 1), _fmt(fig["delay_p50_s"], 1),
                  _fmt(fig["delay_p90_s"], 1), _fmt(fig["auc"], 3)]
        table.add_row(f"all {_clips(fig['clips'])}", *(totals if fig["clips"] else ["—"] * 8), style="bold")
        console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]{r.name}: not evaluated: {r.error}[/]")
        for warning in (r.summary or {}).get("warnings", []):
            console.print(f"[yellow]{r.name}: warning: {warning}[/]")
