"""Find a clip's ground truth by the files beside it and their content, never by the folder's name.

The clip's *home* is the folder its labels lie in: the folder of a video file, the
folder above ``frames/`` or ``img1/``, or a folder of stills itself. A video's home files
count as its own only when no other clip shares the folder (except files named after it,
such as ``house6.xml`` beside ``house6.mp4``). Recognised there:

=============  ==================================================  ===============================
format         files (checked by content)                          kinds labelled
=============  ==================================================  ===============================
ucsd           ``gt_frames.txt`` frame ranges, ``gt_masks/`` PNGs   crowd_movement
mot            ``gt/gt.txt`` (or the one ``gt/*.txt``) MOT rows,     intrusion, density
               ``seqinfo*.ini``
furg-xml       an XML with ``<frames>`` of ``frameNumber`` entries   fire
vigie-labels   ``labels.yaml`` (:mod:`vigie.evaluate.labels`)        its ``labelled_kinds``
=============  ==================================================  ===============================

A Vigie label file adds to what the others give: its kinds are labelled too, and its
events replace theirs for the kinds it has events of. Frames of a video are counted
from its first frame (a video whose first PTS is one frame in, as PETS 2009 re-encodes,
is aligned by that PTS).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import numpy as np

from vigie.evaluate import groundtruth as gtm
from vigie.evaluate import labels as labels_mod
from vigie.grabber.errors import SourceError
from vigie.grabber.sources import image_sequence

_MOT_ROW = re.compile(r"^\s*-?\d+(\.\d+)?(\s*,\s*-?\d+(\.\d+)?(e[-+]?\d+)?){5,}\s*$", re.IGNORECASE)


def _is_stills(folder: Path) -> bool:
    try:
        image_sequence("eval", str(folder))
    except (SourceError, OSError):
        return False
    return True


def _is_video(path: Path) -> bool:
    from vigie.evaluate.runner import VIDEO_SUFFIXES

    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def home(clip: Path) -> tuple[Path, bool]:
    """``(folder of the clip's labels, whether the clip is alone in it)``."""
    if clip.is_dir():
        if clip.name in gtm.STILLS_FOLDERS:
            return clip.parent, True
        return clip, True
    return clip.parent, not [p for p in _clips_in(clip.parent) if p != clip]


def _clips_in(folder: Path) -> list[Path]:
    """The videos and folders of stills directly in ``folder``, in name order."""
    return sorted(p for p in folder.iterdir() if _is_video(p) or (
        p.is_dir() and p.name not in gtm.GT_FOLDERS and _is_stills(p)))


def _video_timing(path: Path) -> tuple[float, int, tuple[int, int]]:
    """``(declared rate, index of its first frame by PTS, (W, H))`` of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25.0)
        frame = next(container.decode(video=0))
        first = int(round((frame.time or 0.0) * rate))
        return rate, first, (frame.width, frame.height)


def _timing(clip: Path, fps: float | None, default: float) -> tuple[float, int]:
    """``(rate of ground-truth frames, offset)`` of ``clip``: a video's own, a folder of stills' ``fps``."""
    if clip.is_dir():
        return fps or default, 0
    rate, first, _ = _video_timing(clip)
    return rate, -first


def _frame_size(clip: Path) -> tuple[int, int]:
    if clip.is_dir():
        pattern, first = image_sequence("eval", str(clip))
        with av.open(pattern % first) as container:
            frame = next(container.decode(video=0))
            return frame.width, frame.height
    return _video_timing(clip)[2]


def duration_s(clip: Path, rate: float) -> float | None:
    """Length of ``clip`` in seconds: a folder of stills' count at ``rate``, a video's declared duration
    (None when it declares none).

    Raises:
        av.FFmpegError, OSError: the video cannot be opened.
    """
    if clip.is_dir():
        suffix = Path(image_sequence("eval", str(clip))[0]).suffix
        return len(list(clip.glob(f"*{suffix}"))) / rate
    with av.open(str(clip)) as container:  # the header's count first: a truncated AVI's duration is estimated
        stream = container.streams.video[0]
        if stream.frames and stream.average_rate:
            return stream.frames / float(stream.average_rate)
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration else None


def read_labels(path: Path, clip: Path, fps: float | None) -> labels_mod.LabelFile:
    """The Vigie label file at ``path``, checked against ``clip`` (:func:`vigie.evaluate.labels.check`);
    ``fps``: the rate of a folder of stills.

    A clip that cannot be read is not checked for length (its evaluation says why it fails).

    Raises:
        vigie.core.config.ConfigError: malformed, or not fitting the clip (file, line and field named).
    """
    labels = labels_mod.read(path)
    try:
        rate = _timing(clip, fps, 10.0)[0]
        duration, size = duration_s(clip, rate), _frame_size(clip)
    except (av.FFmpegError, SourceError, OSError, StopIteration):
        rate, duration, size = None, None, None
    labels_mod.check(path, labels, duration, rate, size)
    return labels


def _ucsd(gt: gtm.GroundTruth, folder: Path, clip: Path, fps: float | None) -> None:
    frames = folder / "gt_frames.txt"
    if not frames.is_file():
        return
    masks = folder / "gt_masks"
    n = len([p for p in clip.iterdir() if p.stem.isdigit()]) if clip.is_dir() else None
    boxes, size = gtm.read_masks(masks) if masks.is_dir() and _is_stills(masks) else (None, None)
    if n is None and boxes is not None:
        n = len(boxes)
    rate, offset = _timing(clip, fps, 10.0)
    gt.truths["crowd_movement"] = gtm.KindTruth(rate, gtm.read_ucsd_frames(frames, n), boxes, size, offset=offset)
    _add(gt, "ucsd", frames if boxes is None else f"{frames} + {masks}/", {"crowd_movement"})


def _furg_file(folder: Path, clip: Path, alone: bool) -> Path | None:
    candidates = [folder / f"{clip.stem}.xml"] if clip.is_file() else []
    if alone:
        candidates += sorted(folder.glob("*.xml"))
    for path in candidates:
        if path.is_file():
            try:
                gtm.read_furg_boxes(path)
            except ValueError:
                continue
            return path
    return None


def _furg(gt: gtm.GroundTruth, folder: Path, clip: Path, fps: float | None, alone: bool) -> None:
    path = _furg_file(folder, clip, alone)
    if path is None:
        return
    boxes, size, header_rate = gtm.read_furg_xml(path)
    rate, offset = _timing(clip, fps or header_rate or None, 25.0)
    gt.truths["fire"] = gtm.KindTruth(rate, np.array([bool(b) for b in boxes]), boxes, size, offset=offset)
    _add(gt, "furg-xml", path, {"fire"})


def _mot_file(folder: Path) -> Path | None:
    gt_dir = folder / "gt"
    if not gt_dir.is_dir():
        return None
    texts = sorted(gt_dir.glob("*.txt"))
    chosen = [gt_dir / "gt.txt"] if (gt_dir / "gt.txt").is_file() else texts if len(texts) == 1 else []
    for path in chosen:
        with open(path, errors="replace") as f:
            first = f.readline()
        if _MOT_ROW.match(first):
            return path
    return None


def _mot(gt: gtm.GroundTruth, folder: Path, clip: Path, fps: float | None) -> None:
    path = _mot_file(folder)
    if path is None:
        return
    inis = [folder / "seqinfo.ini"] if (folder / "seqinfo.ini").is_file() else sorted(folder.glob("seqinfo*.ini"))
    info = gtm.read_seqinfo(inis[0]) if len(inis) >= 1 else {}
    n = int(info.get("seqlength", 0)) or None
    rate, offset = _timing(clip, fps or float(info.get("framerate", 0)) or None, 25.0)
    size = (int(info["imwidth"]), int(info["imheight"])) if "imwidth" in info and "imheight" in info \
        else _frame_size(clip)
    gt.persons = gtm.Persons(rate, gtm.read_mot(path, n), size, offset=offset)
    _add(gt, "mot", path if not inis else f"{path} + {inis[0]}", set(gtm.PERSON_KINDS))


def _add(gt: gtm.GroundTruth, fmt: str, file: str | os.PathLike[str], kinds: set[str]) -> None:
    gt.files.append((fmt, str(file)))
    gt.kinds_present = frozenset((gt.kinds_present or frozenset()) | kinds)


def _own(gt: gtm.GroundTruth, path: Path, clip: Path, fps: float | None) -> None:
    """Add the Vigie label file at ``path`` (raises ConfigError when malformed, ValueError)."""
    labels = read_labels(path, clip, fps)
    clip_fps = None if labels.fps or not any(e.unit == "frame" for e in labels.events) else _timing(clip, fps, 10.0)[0]
    gt.truths.update(labels_mod.truths(labels, clip_fps))
    kinds = set() if labels.labelled_kinds == "all" else set(labels.labelled_kinds)
    gt.labelled_all = gt.labelled_all or labels.labelled_kinds == "all"
    gt.approximate = gt.approximate or labels.approximate
    gt.warmup = [os.path.abspath(path.parent / w) for w in labels.warmup]
    _add(gt, labels_mod.FORMAT, path, kinds)


def check_plain_labels(clip: Path, own: Path | None) -> None:
    """Refuse a plain ``labels.yaml`` (``.yml``, ``.json``) beside ``clip`` that is not ``own``, the
    clip's label file: it labels no clip (a folder of several clips names each file after its clip),
    and its clips would silently go unjudged.

    Raises:
        vigie.core.config.ConfigError: such a file, named, with the name to give it.
    """
    from vigie.core.config import ConfigError, ConfigProblem

    if clip.name in gtm.STILLS_FOLDERS:  # its folder's labels.yaml is its own
        return
    for suffix in labels_mod.SUFFIXES:
        plain = clip.parent / f"labels{suffix}"
        if plain.is_file() and plain != own:
            if clip.is_dir():
                why = (f"a folder of stills such as {clip.name} reads labels{suffix} inside it, "
                       f"or {clip.name}.labels{suffix} beside it")
            else:
                names = ", ".join(p.name for p in _clips_in(clip.parent))
                why = (f"its folder holds several clips ({names}): name the file after the one it labels, "
                       f"e.g. {clip.stem}.labels{suffix} for {clip.name}")
            raise ConfigError(plain, [ConfigProblem(0, "", f"labels no clip: {why}")])


def find(clip: str | os.PathLike[str], fps: float | None = None,
         labels: str | os.PathLike[str] | None = None) -> gtm.GroundTruth:
    """The ground truth of ``clip`` (a video file or a folder of stills) from the files of its home.

    ``fps``: rate of a folder of stills; ``labels``: a Vigie label file read instead of
    the one beside the clip. Without any file, ``kinds_present`` is None (nothing judged).

    Raises:
        ValueError: a recognised ground-truth file cannot be read.
        vigie.core.config.ConfigError: a malformed label file (path and line named), or a
            ``labels.yaml`` that labels no clip (:func:`check_plain_labels`).
    """
    clip = Path(os.path.abspath(clip))  # not resolved: the labels lie beside a link, not its target
    folder, alone = home(clip)
    gt = gtm.GroundTruth(dataset=None, kinds_present=None)
    if alone:
        _ucsd(gt, folder, clip, fps)
        _mot(gt, folder, clip, fps)
    _furg(gt, folder, clip, fps, alone)
    own = Path(labels) if labels is not None else labels_mod.label_file(clip, alone)
    if labels is None:
        check_plain_labels(clip, own)
    if own is not None:
        _own(gt, own, clip, fps)
    if gt.files:
        gt.dataset = folder.name
        gt.source = "; ".join(f"{f}: {p}" for f, p in gt.files) + (" (APPROXIMATE)" if gt.approximate else "")
    return gt
