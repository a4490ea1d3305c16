"""Ground truth of an evaluated clip, read from the label files beside it, recognised by their content.

:func:`load` finds (:mod:`vigie.evaluate.formats`), wherever the clip's folder is and
whatever it is called:

* UCSD anomaly ground truth (Mahadevan et al., CVPR 2010): ``gt_frames.txt`` (abnormal
  frame ranges, 1-based, inclusive) and ``gt_masks/NNN.png`` (pixel masks; their
  component boxes): events of ``crowd_movement`` (movers that are not walkers);
* FURG fire annotations (Steffens et al., LARS 2015): an OpenCV FileStorage XML with
  the flame rectangles of every frame (:func:`read_furg_xml`): events of ``fire``;
* MOTChallenge ``gt/gt.txt`` lines ``frame,id,x,y,w,h,...`` (person boxes) with
  ``seqinfo.ini``: turned into ``intrusion`` and ``density`` events for a given
  analytic's zones and limit;
* Vigie's own label file (:mod:`vigie.evaluate.labels`), for any clip and any kind.

Each format says which kinds it labels (:attr:`GroundTruth.kinds_present`): an alarm of
a labelled kind outside its events is a false alarm, an alarm of another kind is
*unlabelled* (counted apart, not judged). Times are seconds of the clip's stream time
(its PTS); ground-truth frame ``k`` (0-based) is at ``k / fps``.
"""

from __future__ import annotations

import configparser
import functools
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from vigie.core.geometry import rasterize_polygons
from vigie.evaluate.metrics import BoxT, runs

#: Config fields read as a density analytic's person-count limit (a zone is over when its
#: count *exceeds* it), first found wins.
COUNT_LIMIT_FIELDS = ("max_persons", "max_people", "max_count")

#: Sub-folders of a clip's folder that hold its stills (the clip's labels lie beside them).
STILLS_FOLDERS = ("frames", "img1")

#: Sub-folders of ground truth (UCSD masks, MOTChallenge files): never clips.
GT_FOLDERS = ("gt", "gt_masks")

#: Kinds judged against person boxes (MOTChallenge ground truth).
PERSON_KINDS = ("intrusion", "density")

_FPS_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*fps\b", re.IGNORECASE)


@dataclass(slots=True)
class KindTruth:
    """Frame labels (and boxes, when known) of one kind over one clip.

    Ground-truth frame ``k`` (0-based) is at ``(k - offset) / fps`` seconds of stream
    time. ``labels[k]``: abnormal; frames past the end take ``after``. ``boxes[k]``:
    boxes ``(x, y, w, h)`` in pixels of a ``size`` = (W, H) frame, or None for a kind
    judged by time alone. ``approximate``: not official ground truth.
    """

    fps: float
    labels: np.ndarray
    boxes: list[list[BoxT]] | None = None
    size: tuple[int, int] | None = None
    after: bool = False
    offset: int = 0
    approximate: bool = False

    def index(self, t_s: float) -> int:
        """Ground-truth frame index at stream time ``t_s`` (may lie outside the labels)."""
        return int(round(t_s * self.fps)) + self.offset

    def label(self, t_s: float) -> bool:
        """Whether the frame at ``t_s`` is abnormal."""
        k = self.index(t_s)
        if k < 0:
            return False
        return bool(self.labels[k]) if k < len(self.labels) else self.after

    def boxes_at(self, t_s: float, frame_size: tuple[int, int] | None) -> list[BoxT] | None:
        """Boxes at ``t_s`` (nearest annotated frame), scaled to ``frame_size`` pixels; None when unknown."""
        if self.boxes is None or not self.boxes:
            return None
        k = min(max(self.index(t_s), 0), len(self.boxes) - 1)
        sx = sy = 1.0
        if frame_size is not None and self.size is not None:
            sx, sy = frame_size[0] / self.size[0], frame_size[1] / self.size[1]
        return [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in self.boxes[k]]

    def events(self, end_s: float) -> list[tuple[float, float]]:
        """Maximal runs of abnormal frames as ``(start_s, end_s)`` spans, up to ``end_s``."""
        labels = self.labels
        last = self.index(end_s)
        if self.after and last >= len(labels):
            labels = np.r_[labels, np.ones(last + 1 - len(labels), dtype=bool)]
        return [((a - self.offset) / self.fps, min((b - self.offset) / self.fps, end_s))
                for a, b in runs(labels) if (a - self.offset) / self.fps <= end_s]


@dataclass(slots=True)
class Persons:
    """Person boxes per ground-truth frame (MOTChallenge style): ``boxes[k]`` in ``size`` pixels."""

    fps: float
    boxes: list[list[BoxT]]
    size: tuple[int, int]
    offset: int = 0


@dataclass(slots=True)
class GroundTruth:
    """What the label files of a clip say about it.

    ``dataset``: the folder the labels were found in (its name, for the report; None
    without labels); ``kinds_present``: the kinds the clip is labelled for (None: no
    label file found, nothing is judged); ``labelled_all``: every kind is labelled (the
    clip holds no event but those given); ``truths``: events per kind (:class:`KindTruth`
    or :class:`vigie.evaluate.labels.SpanTruth`); ``persons``: person boxes for the
    count-based kinds; ``files``: ``(format, path)`` of each file read; ``source``:
    where the truth comes from, in words; ``warmup``: warm-up clips the label file names.
    """

    dataset: str | None
    kinds_present: frozenset[str] | None
    truths: dict[str, Any] = field(default_factory=dict)
    persons: Persons | None = None
    source: str = "none"
    approximate: bool = False
    labelled_all: bool = False
    files: list[tuple[str, str]] = field(default_factory=list)
    warmup: list[str] = field(default_factory=list)

    @property
    def format(self) -> str | None:
        """The formats read, joined with `` + `` (None without labels)."""
        return " + ".join(f for f, _ in self.files) or None

    @property
    def file(self) -> str | None:
        """The files read, joined with ``, `` (None without labels)."""
        return ", ".join(p for _, p in self.files) or None

    def labelled(self, kind: str) -> bool:
        """Whether the clip is labelled for ``kind`` (its alarms outside events are false)."""
        return self.labelled_all or kind in (self.kinds_present or ())

    def judge(self, kind: str, config: Any = None, frame_size: tuple[int, int] | None = None) -> tuple[bool, Any]:
        """``(judged, truth)`` of ``kind``: not judged when unlabelled, or when its truth needs a
        setting the analytic lacks (density without a count limit); judged with ``truth`` None:
        the clip holds no event of that kind, every alarm is false."""
        if not self.labelled(kind):
            return False, None
        truth = self.truth(kind, config, frame_size)
        if truth is None and self.persons is not None and kind in PERSON_KINDS and kind in (self.kinds_present or ()):
            return False, None
        return True, truth

    def truth(self, kind: str, config: Any = None, frame_size: tuple[int, int] | None = None) -> KindTruth | None:
        """The :class:`KindTruth` of ``kind`` for an analytic with ``config`` on ``frame_size`` frames.

        None when the clip holds no event of the kind, or it is not labelled (see :meth:`judge`). Intrusion and density are derived from person boxes:
        a frame is abnormal when a person's foot point (bottom centre) lies in one of
        the config's zones (all the frame when it has none), resp. when more people
        than the config's count limit (:func:`count_limit`) do. (A density analytic
        that measures foreground occupancy is thus judged against head counts.)
        """
        if kind in self.truths:
            return self.truths[kind]
        if self.persons is None or kind not in (self.kinds_present or ()):
            return None
        if kind == "intrusion":
            return _count_truth(self.persons, getattr(config, "zones", []) or [], 1, frame_size)
        if kind == "density":
            limit = count_limit(config)
            if limit is None:
                return None
            return _count_truth(self.persons, getattr(config, "zones", []) or [], limit, frame_size)
        return None


def count_limit(config: Any) -> int | None:
    """Fewest people that make a zone over for a density analytic's ``config``: one more than
    the first of :data:`COUNT_LIMIT_FIELDS` it has ("exceeds"), or None."""
    for name in COUNT_LIMIT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(np.floor(value)) + 1
    return None


def _count_truth(persons: Persons, zones: list[Any], limit: int, frame_size: tuple[int, int] | None) -> KindTruth:
    """Frames with at least ``limit`` people whose foot point is in ``zones`` (frame pixels)."""
    size = frame_size or persons.size
    sx, sy = size[0] / persons.size[0], size[1] / persons.size[1]
    inside = rasterize_polygons(zones, size, size) if zones else np.ones((size[1], size[0]), dtype=bool)
    labels = np.zeros(len(persons.boxes), dtype=bool)
    boxes: list[list[BoxT]] = []
    for k, frame_boxes in enumerate(persons.boxes):
        kept = []
        for x, y, w, h in frame_boxes:
            fx = int(np.clip((x + w / 2) * sx, 0, size[0] - 1))
            fy = int(np.clip((y + h) * sy, 0, size[1] - 1))
            if inside[fy, fx]:
                kept.append((x, y, w, h))
        labels[k] = len(kept) >= limit
        boxes.append(kept)
    return KindTruth(persons.fps, labels, boxes, persons.size, offset=persons.offset)


# --- readers -------------------------------------------------------------------------------


def read_ucsd_frames(path: str | os.PathLike[str], n_frames: int | None = None) -> np.ndarray:
    """``gt_frames.txt`` (lines ``a-b`` or ``a``, 1-based inclusive; ``#`` comments) -> ``(n_frames,) bool``
    (``n_frames`` None: up to the last abnormal frame).

    Raises:
        ValueError: a range that is not one, ends before it starts, starts at 0, or ends past
            ``n_frames``; the message names ``path:line``.
    """
    ranges = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for part in line.replace(",", " ").split():
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if m is None:
                raise ValueError(f"{path}:{number}: not a frame range: {part!r} (a-b or a, 1-based, inclusive)")
            a, b = int(m[1]), int(m[2] or m[1])
            if not 1 <= a <= b:
                raise ValueError(f"{path}:{number}: {part}: frames count from 1 and a range ends at or after its start")
            if n_frames is not None and b > n_frames:
                raise ValueError(f"{path}:{number}: {part}: past the clip's last frame, {n_frames}")
            ranges.append((a, b))
    labels = np.zeros(max((b for _, b in ranges), default=0) if n_frames is None else n_frames, dtype=bool)
    for a, b in ranges:
        labels[a - 1:b] = True
    return labels


def _decode_grey(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="gray")


def read_masks(folder: str | os.PathLike[str]) -> tuple[list[list[BoxT]], tuple[int, int]]:
    """Boxes of the connected components of each mask ``NNN.png`` (sorted by number), and the mask (W, H)."""
    boxes, size = _read_masks(str(Path(folder).resolve()))
    return [list(b) for b in boxes], size


@functools.lru_cache(maxsize=4)
def _read_masks(folder: str) -> tuple[tuple[tuple[BoxT, ...], ...], tuple[int, int]]:
    from scipy import ndimage

    files = sorted((p for p in Path(folder).iterdir() if p.stem.isdigit()), key=lambda p: int(p.stem))
    boxes, size = [], (0, 0)
    for file in files:
        mask = _decode_grey(file) > 127
        size = (mask.shape[1], mask.shape[0])
        labelled, _ = ndimage.label(mask)
        boxes.append(tuple((float(sx.start), float(sy.start), float(sx.stop - sx.start), float(sy.stop - sy.start))
                           for sy, sx in ndimage.find_objects(labelled) if sy is not None))
    return tuple(boxes), size


def _furg_document(path: str | os.PathLike[str]) -> ET.Element:
    """The root of a FURG annotation file, checked to hold ``<frames>``. Raises ValueError, OSError."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not XML: {exc}") from None
    if root.find("frames") is None:
        raise ValueError(f"{path}: no <frames> element (not a FURG annotation file)")
    return root


def _furg_frames(root: ET.Element, path: str | os.PathLike[str]) -> dict[int, list[tuple[int, int, int, int]]]:
    """``{frame_number: [(x, y, w, h), ...]}`` of a checked FURG document (see :func:`read_furg_boxes`)."""
    out: dict[int, list[tuple[int, int, int, int]]] = {}
    for entry in root.find("frames").findall("_"):
        number = entry.findtext("frameNumber")
        if number is None or not number.strip().lstrip("-").isdigit():
            raise ValueError(f"{path}: frame entry without a frameNumber")
        boxes = []
        annotations = entry.find("annotations")
        for item in annotations.findall("_") if annotations is not None else []:
            values = re.findall(r"-?\d+", item.text or "")
            if len(values) != 4:
                raise ValueError(f"{path}: frame {number}: box {item.text!r} is not 'x y w h'")
            x, y, w, h = (int(v) for v in values)
            boxes.append((x, y, w, h))
        out[int(number)] = boxes
    return out


def read_furg_boxes(path: str | os.PathLike[str]) -> dict[int, list[tuple[int, int, int, int]]]:
    """Flame boxes per frame of a FURG fire-dataset annotation file.

    Dataset: Steffens, Rodrigues, Botelho, "An unconstrained dataset for non-stationary
    video based fire detection", LARS 2015. The file is OpenCV 2.4 FileStorage XML:
    ``<frames>`` holds one ``<_>`` entry per frame with ``<frameNumber>`` and
    ``<annotations>``, a list of ``<_>`` items of four integers ``x y width height``
    (pixels of the dataset's frame, given by ``<frameWidth>``/``<frameHeight>``, top-left origin).

    Returns:
        ``{frame_number: [(x, y, w, h), ...]}``; frames without boxes map to ``[]``.

    Raises:
        OSError: the file cannot be read.
        ValueError: not such an XML file (no ``<frames>``, a frame without a number,
            a box without four integers).
    """
    return _furg_frames(_furg_document(path), path)


def read_furg_xml(path: str | os.PathLike[str]) -> tuple[list[list[BoxT]], tuple[int, int], float]:
    """FURG fire ground truth: per frame (``frameNumber`` 0-based) flame boxes, with the header's
    frame size and rate (boxes read as by :func:`read_furg_boxes`).

    Returns ``(boxes, (width, height), frame_rate)``; ``boxes[k]`` lists ``(x, y, w, h)``
    pixels of frame ``k`` (frames without an entry have none).

    Raises:
        ValueError: the file is not such a document.
    """
    root = _furg_document(path)
    size = (int(root.findtext("frameWidth", "0")), int(root.findtext("frameHeight", "0")))
    rate = float(root.findtext("frameRate", "0") or 0)
    by_frame = {k: [tuple(float(v) for v in b) for b in boxes] for k, boxes in _furg_frames(root, path).items()}
    n = max(by_frame, default=-1) + 1
    return [by_frame.get(k, []) for k in range(n)], size, rate


def read_mot(path: str | os.PathLike[str], n_frames: int | None = None) -> list[list[BoxT]]:
    """MOTChallenge ``gt.txt`` (``frame,id,x,y,w,h,conf,...``, frame 1-based): boxes per frame, 0-based.

    Rows with ``conf`` 0 (ignored regions) are skipped.
    """
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    n = int(rows[:, 0].max()) if n_frames is None else n_frames
    boxes: list[list[BoxT]] = [[] for _ in range(n)]
    for row in rows:
        k = int(row[0]) - 1
        if 0 <= k < n and (row.shape[0] < 7 or row[6] != 0):
            boxes[k].append((float(row[2]), float(row[3]), float(row[4]), float(row[5])))
    return boxes


def read_seqinfo(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini`` (empty when absent)."""
    parser = configparser.ConfigParser()
    parser.read(path)
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


# --- datasets ------------------------------------------------------------------------------


def dataset_dir(clip: str | os.PathLike[str]) -> Path | None:
    """The folder of ``clip`` that describes it: itself, its parent or grandparent, whichever holds SOURCE.md first."""
    path = Path(clip).resolve()
    for folder in (path, *list(path.parents)[:2]):
        if folder.is_dir() and (folder / "SOURCE.md").is_file():
            return folder
    return None


def stills_fps(folder: str | os.PathLike[str], default: float = 10.0) -> float:
    """Frame rate of a folder of stills: ``seqinfo.ini`` beside it, else the ``fps`` of its label
    file (:mod:`vigie.evaluate.labels`), else the first ``N fps`` of a SOURCE.md beside it or
    above (UCSD: "~10 fps"), else ``default``.

    Raises:
        vigie.core.config.ConfigError: a malformed label file.
    """
    from vigie.evaluate import labels

    folder = Path(os.path.abspath(folder))
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        rate = read_seqinfo(ini).get("framerate") if ini.is_file() else None
        if rate:
            return float(rate)
    label_file = labels.label_file(folder, alone=folder.name in STILLS_FOLDERS)
    label_fps = labels.read(label_file).fps if label_file is not None else None
    if label_fps:
        return float(label_fps)
    dataset = dataset_dir(folder)
    if dataset is not None:
        m = _FPS_IN_TEXT.search((dataset / "SOURCE.md").read_text(errors="replace"))
        if m:
            return float(m[1])
    return default


def load(clip: str | os.PathLike[str], fps: float | None = None,
         labels: str | os.PathLike[str] | None = None) -> GroundTruth:
    """Ground truth of ``clip`` (a video file or a folder of stills) from the label files
    beside it, recognised by their content (see the module docstring).

    ``fps``: the frame rate the stills are played at (their ground-truth frames are
    timed with it); video files use their own declared rate. ``labels``: a label file of
    Vigie's format to read instead of the one beside the clip.

    Raises:
        ValueError: a ground-truth file cannot be read.
        vigie.core.config.ConfigError: a malformed label file (its path and line named).
    """
    from vigie.evaluate import formats

    return formats.find(clip, fps, labels)
