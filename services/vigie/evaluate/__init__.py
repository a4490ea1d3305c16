"""``vigie evaluate``: run the analytics on a labelled clip and measure them against its ground truth.

Usage::

    vigie evaluate PATH [--json [out.json]] [--plot out.png] [--plots DIR] [--jobs N]
                        [--warmup PATH ...] [--fps 5] [--labels labels.yaml]
                        [--cameras cameras.yaml] [--camera ID] [--kinds k1,k2]
                        [--transform NAME[:key=value,...]]

``PATH`` is a clip: a video file, a folder of numbered stills, or a folder holding
``frames/``, ``img1/`` or one video; or a *collection*, a folder of several clips at
any depth (:mod:`vigie.evaluate.collection`). A clip goes through the service's own code
(grabber pipeline, JPEG, ``to_batch``, the analytics plan; :mod:`vigie.evaluate.runner`),
its ground truth is read from the label files beside it, recognised by their content
(:mod:`vigie.evaluate.formats`), and per analytic kind the command reports frame-level
ROC AUC, event-level precision, recall and alarm delay, and false alarms per hour
(:mod:`vigie.evaluate.metrics`, :mod:`vigie.evaluate.report`); over a collection, per
kind with 95 % confidence intervals.
Example: ``vigie evaluate ../shared/data/ucsd_ped2_test001 --warmup
../shared/data/ucsd_ped2_train/Train00{1,2,3} --json --plot ped2.png``.
``vigie evaluate --suite ../shared/data`` runs the project's quality measures on every
shared clip and checks them against their targets (:mod:`vigie.evaluate.suite`).
"""

from __future__ import annotations

import argparse
import json
import sys

from vigie.core.options import bounded, output_file

__all__ = ["add_arguments", "main"]


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise argparse.ArgumentTypeError("--kinds needs at least one kind")
    return kinds


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _json_file(text: str) -> str:
    if text == "-":  # stdout
        return text
    if not text.endswith(".json"):
        raise argparse.ArgumentTypeError(f"the JSON file's name must end in .json, got {text}")
    return output_file(text)


def _transform(text: str):
    from vigie.evaluate import transforms

    try:
        return transforms.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``vigie evaluate`` to ``parser``."""
    parser.add_argument("path", help="clip: a video file, a folder of numbered stills, or a folder holding "
                        "frames/, img1/ or one video; or a collection: a folder of several clips (any depth), "
                        "each with its labels beside it; with --suite, the data folder")
    parser.add_argument("--suite", action="store_true",
                        help="run the project's quality measures on the clips of the data folder PATH "
                        "(e.g. ../shared/data) and check them against their targets; exit 1 if one is missed")
    parser.add_argument("--json", metavar="OUT.json", nargs="?", const="-", type=_json_file, default=None,
                        help="print one JSON object instead of a table; with a file name (ending in .json), "
                        "write it there and print the table")
    parser.add_argument("--plot", metavar="PNG", type=output_file,
                        help="one clip: draw scores, ground truth and alarms over time to this PNG (its folder must "
                        "exist); a collection takes --plots")
    parser.add_argument("--plots", metavar="DIR",
                        help="collection or --suite: draw one PNG per clip into this folder (created if missing)")
    parser.add_argument("--jobs", type=bounded(int, 1), default=1,
                        help="collection: clips evaluated at once, one process each (default 1)")
    parser.add_argument("--labels", metavar="FILE",
                        help="a label file in Vigie's format to use instead of the one beside the clip")
    parser.add_argument("--warmup", metavar="PATH", action="append", default=[],
                        help="normal footage of the same camera, played first (repeatable; looped, see "
                        "--warmup-min-s)")
    parser.add_argument("--warmup-min-s", type=bounded(float, 0.0), default=None, metavar="S",
                        help="loop the warm-up clips until they add up to S seconds (default: the longest "
                        "warmup_s of the analytics; 0: once)")
    parser.add_argument("--fps", type=_positive, default=5.0, help="sampling rate, frames per second (default 5)")
    parser.add_argument("--stills-fps", type=_positive, default=None,
                        help="frame rate of folders of stills (default: seqinfo.ini or SOURCE.md, else 10)")
    parser.add_argument("--cameras", help="cameras YAML: the camera's analytics settings, zones, masks, width")
    parser.add_argument("--camera", help="camera id in --cameras (default: its only camera)")
    parser.add_argument("--kinds", type=_kinds, default=None,
                        help="comma-separated kinds (default: every kind available in this build)")
    parser.add_argument("--tolerance-s", type=bounded(float, 0.0), default=1.0,
                        help="an alarm this many seconds around an event still falls in it (>= 0, default 1)")
    parser.add_argument("--no-object-classes", dest="object_classes", action="store_false",
                        help="leave out the object-class stage, which the detector offers the analytics by default")
    parser.add_argument("--transform", metavar="NAME[:k=v,...]", type=_transform, default=None,
                        help="transform every frame of the clip and its warm-up, e.g. greyscale, "
                        "lighting_step:factor=0.5,at_s=2, flashing_light:colour=orange,hz=2, reflections, "
                        "camera_noise:sigma=8, low_bitrate:quality=12 (see vigie.evaluate.transforms)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--threads", type=bounded(int, 1), default=1, help="CPU threads torch may use (default 1)")


def main(args: argparse.Namespace) -> int:
    """Run ``vigie evaluate`` with parsed ``args``; returns the exit code.

    0: done; 1: a target of the suite is missed, or no clip of the suite is in its folder;
    2: an unusable clip (missing, not a video, a folder without one), said in one line on stderr,
    or a collection without a clip. The device, the kinds and the label files are checked before
    any work.

    Raises:
        ConfigError: unknown kind, device, camera, bad settings, a malformed label file (its path
            and line named), or a missing ``--suite`` folder (the ``vigie`` command prints it, exit 2).
    """
    import torch

    from vigie.core.options import resolve_device
    from vigie.core.errors import ConfigError
    from vigie.detector.analytics.registry import PLUGINS
    from vigie.evaluate import groundtruth, report, runner
    from vigie.grabber.errors import SourceError

    device = resolve_device(args.device)
    for kind in args.kinds or ():
        if kind not in PLUGINS:
            raise ConfigError(f"--kinds: unknown kind {kind!r} (known kinds: {', '.join(sorted(PLUGINS))})")
    torch.set_num_threads(args.threads)
    from vigie.evaluate import collection

    several = args.suite or collection.is_collection(args.path)
    if args.plot and several:
        raise ConfigError("--plot draws one clip; for a collection (or --suite) give --plots DIR, one PNG per clip")
    if args.plots and not several:
        raise ConfigError(f"--plots DIR draws the clips of a collection; {args.path} is one clip: give --plot out.png")
    if several and (args.labels or args.transform):
        given = " and ".join(o for o, v in (("--labels", args.labels), ("--transform", args.transform)) if v)
        raise ConfigError(f"{given} apply to one clip; in a collection each clip reads the labels beside it "
                          "(evaluate a transformed clip on its own)")
    if args.suite:
        from vigie.evaluate import suite

        return suite.main(args.path, as_json=args.json, device=device, object_classes=args.object_classes,
                          jobs=args.jobs, plots=_plots(args.plots))
    if several:
        return _collection(args, str(device))
    try:
        clip = runner.resolve_clip(args.path, args.stills_fps)
        gt = groundtruth.load(clip.source, clip.stills_fps, args.labels)
        ev = runner.evaluate(args.path, fps=args.fps, warmup=args.warmup or gt.warmup, warmup_min_s=args.warmup_min_s,
                             kinds=args.kinds, cameras=args.cameras, camera_id=args.camera, device=device,
                             stills_fps=args.stills_fps, object_classes=args.object_classes,
                             transform=args.transform)
        if not ev.times_s:
            raise ValueError(f"{args.path}: no frame could be decoded")
    except (OSError, ValueError, SourceError) as exc:
        print(f"vigie evaluate: {exc}", file=sys.stderr)
        return 2
    summary, curves = report.summarize(ev, gt, args.tolerance_s)
    if args.plot:
        report.plot(summary, curves, args.plot)
    _emit(summary, args.json, lambda: report.print_table(summary))
    return 0


def _plots(folder: str | None) -> str | None:
    if folder is not None:
        from pathlib import Path

        Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def _emit(obj: dict, json_to: str | None, table) -> None:
    """Print ``obj`` as JSON on stdout (``json_to`` "-"), or write it to ``json_to`` and print ``table()``."""
    if json_to == "-":
        print(json.dumps(obj))
        return
    if json_to is not None:
        with open(json_to, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
    table()


def _collection(args: argparse.Namespace, device: str) -> int:
    """``vigie evaluate FOLDER`` on a collection of clips (see :mod:`vigie.evaluate.collection`)."""
    from vigie.evaluate import collection

    items = collection.discover(args.path)
    if not items:
        print(f"vigie evaluate: {args.path} holds no clip", file=sys.stderr)
        return 2
    options = collection.Options(
        fps=args.fps, warmup=args.warmup, warmup_min_s=args.warmup_min_s, kinds=args.kinds, cameras=args.cameras,
        camera_id=args.camera, device=device, stills_fps=args.stills_fps, object_classes=args.object_classes,
        tolerance_s=args.tolerance_s, plots=_plots(args.plots), threads=args.threads)
    results = collection.run(items, options, args.jobs)
    kinds = collection.aggregate(results)
    _emit(collection.as_json(args.path, results, kinds, options.plots, options), args.json,
          lambda: collection.print_tables(args.path, results, kinds))
    return 0
