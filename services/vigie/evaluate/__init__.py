"""``vigie evaluate``: run the analytics on a labelled clip and measure them against its ground truth.

Usage::

    vigie evaluate PATH [--json] [--plot out.png] [--warmup PATH ...] [--fps 5]
                        [--cameras cameras.yaml] [--camera ID] [--kinds k1,k2]
                        [--transform NAME[:key=value,...]]

``PATH`` is a video file, a folder of numbered stills, or a dataset folder of
``../shared/data`` (with SOURCE.md, holding ``frames/``, ``img1/`` or one video). The
clip goes through the service's own code (grabber pipeline, JPEG, ``to_batch``, the
analytics plan; :mod:`vigie.evaluate.runner`), the ground truth is read from the
dataset folder (:mod:`vigie.evaluate.groundtruth`), and per analytic kind the command
reports frame-level ROC AUC, event-level precision, recall and alarm delay, and false
alarms per hour (:mod:`vigie.evaluate.metrics`, :mod:`vigie.evaluate.report`).
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


def _transform(text: str):
    from vigie.evaluate import transforms

    try:
        return transforms.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``vigie evaluate`` to ``parser``."""
    parser.add_argument("path", help="clip: a video file, a folder of numbered stills, or a dataset folder "
                        "(SOURCE.md with frames/, img1/ or one video); with --suite, the data folder")
    parser.add_argument("--suite", action="store_true",
                        help="run the project's quality measures on the clips of the data folder PATH "
                        "(e.g. ../shared/data) and check them against their targets; exit 1 if one is missed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plot", metavar="PNG", type=output_file,
                        help="draw scores, ground truth and alarms over time to this PNG (its folder must exist)")
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
    2: an unusable clip (missing, not a video, a folder without one), said in one line on stderr.
    The device and the kinds are checked before any work.

    Raises:
        ConfigError: unknown kind, device, camera, bad settings, or a missing ``--suite`` folder
            (the ``vigie`` command prints it, exit 2).
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
    if args.suite:
        from vigie.evaluate import suite

        return suite.main(args.path, as_json=args.json, device=device, object_classes=args.object_classes)
    try:
        ev = runner.evaluate(args.path, fps=args.fps, warmup=args.warmup, warmup_min_s=args.warmup_min_s,
                             kinds=args.kinds, cameras=args.cameras, camera_id=args.camera, device=device,
                             stills_fps=args.stills_fps, object_classes=args.object_classes,
                             transform=args.transform)
        if not ev.times_s:
            raise ValueError(f"{args.path}: no frame could be decoded")
        gt = groundtruth.load(ev.clip.source, ev.clip.stills_fps)
    except (OSError, ValueError, SourceError) as exc:
        print(f"vigie evaluate: {exc}", file=sys.stderr)
        return 2
    summary, curves = report.summarize(ev, gt, args.tolerance_s)
    if args.plot:
        report.plot(summary, curves, args.plot)
    if args.json:
        print(json.dumps(summary))
    else:
        report.print_table(summary)
    return 0
