"""Ground truth of the evaluation clips in ``../shared/data`` (each folder's SOURCE.md describes it):

* UCSD ped2 (Mahadevan et al., CVPR 2010): ``gt_frames.txt`` (abnormal frame ranges,
  1-based, inclusive) and ``gt_masks/NNN.png`` (pixel masks; their component boxes);
* FURG fire (Steffens et al., LARS 2015): ``house6.xml``, OpenCV FileStorage XML with
  the flame rectangles of every frame (:func:`read_furg_xml`);
* MOTChallenge / PETS 2009: ``gt/*.txt`` lines ``frame,id,x,y,w,h,...`` (person boxes),
  turned into intrusion and density events for a given analytic's zones and limit;
* ABODA video4: no annotation ships with it; :data:`ABODA_TIMELINE` encodes the *approximate*
  observation of its SOURCE.md (bag unattended from ~19 s, box ~x 452 y 385 50x50 of 720x480).

:data:`KINDS_PRESENT` says which analytic kinds each dataset contains: an alarm of a
kind the dataset does not contain is a false alarm. Times are seconds of the clip's
stream time (its PTS); ground-truth frame ``k`` (0-based) is at ``k / fps``.
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

#: Dataset folder name -> the analytic kinds whose events it contains (alarms of the
#: other kinds are false alarms). Normal scenes contain none.
KINDS_PRESENT: dict[str, frozenset[str]] = {
    "ucsd_ped2_test001": frozenset({"crowd_movement"}),  # cyclist among walkers (frames 61-180)
    "ucsd_ped2_test004": frozenset({"crowd_movement"}),  # cart and cyclist (frames 31-180)
    "ucsd_ped2_train": frozenset(),  # normal walkers only
    "furg_fire_house6": frozenset({"fire", "smoke"}),  # flames (boxes) and smoke from the first frame
    "fire_smoke_hillside": frozenset({"fire", "smoke"}),  # whole clip, by eye, no boxes
    "aboda_video4": frozenset({"abandoned_object"}),  # bag left (approximate timeline)
    "mot15_tud_campus": frozenset({"intrusion", "density"}),  # person boxes: counts in zones
    "pets2009_s2l1_view001": frozenset({"intrusion", "density"}),  # person boxes: counts in zones
    "intel_sample_videos": frozenset(),
    "bgslibrary_traffic": frozenset(),
}

#: ABODA video4, approximate (the helper's own observation in SOURCE.md, not official):
#: the owner walks away from the bag at about 19 s and it stays until the end (1169
#: frames at 29.97 fps); the bag's box in 720x480 pixels.
ABODA_TIMELINE: dict[str, dict[str, Any]] = {
    "aboda_video4": {"kind": "abandoned_object", "fps": 29.97, "frames": 1169, "start_s": 19.0,
                     "box": (452, 385, 50, 50), "size": (720, 480)},
}

#: Config fields read as a density analytic's person-count limit (a zone is over when its
#: count *exceeds* it), first found wins.
COUNT_LIMIT_FIELDS = ("max_persons", "max_people", "max_count")

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
    """What a dataset folder says about its clip.

    ``dataset``: folder name (None when the clip is in no known dataset);
    ``kinds_present``: kinds whose events the clip contains (None: unknown, alarms are
    not judged); ``truths``: labelled kinds; ``persons``: person boxes for the
    count-based kinds; ``source``: where the truth comes from, for the report.
    """

    dataset: str | None
    kinds_present: frozenset[str] | None
    truths: dict[str, KindTruth] = field(default_factory=dict)
    persons: Persons | None = None
    source: str = "none"
    approximate: bool = False

    def truth(self, kind: str, config: Any = None, frame_size: tuple[int, int] | None = None) -> KindTruth | None:
        """The :class:`KindTruth` of ``kind`` for an analytic with ``config`` on ``frame_size`` frames.

        None when the kind is not present (every alarm false), unknown (not judged) or
        present without labels. Intrusion and density are derived from person boxes:
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


def read_ucsd_frames(path: str | os.PathLike[str], n_frames: int) -> np.ndarray:
    """``gt_frames.txt`` (lines ``a-b`` or ``a``, 1-based inclusive; ``#`` comments) -> ``(n_frames,) bool``.

    Raises:
        ValueError: a line that is not a range.
    """
    labels = np.zeros(n_frames, dtype=bool)
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for part in line.replace(",", " ").split():
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if m is None:
                raise ValueError(f"{path}: not a frame range: {part!r}")
            a, b = int(m[1]), int(m[2] or m[1])
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


def video_rate(path: str | os.PathLike[str]) -> float:
    """Frame rate declared by a video file's first video stream (frames per second)."""
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    return float(rate) if rate else 25.0


# --- datasets ------------------------------------------------------------------------------


def dataset_dir(clip: str | os.PathLike[str]) -> Path | None:
    """The dataset folder of ``clip``: itself, its parent or grandparent, whichever holds SOURCE.md first."""
    path = Path(clip).resolve()
    for folder in (path, *list(path.parents)[:2]):
        if folder.is_dir() and (folder / "SOURCE.md").is_file():
            return folder
    return None


def stills_fps(folder: str | os.PathLike[str], default: float = 10.0) -> float:
    """Frame rate of a folder of stills: ``seqinfo.ini`` beside it, else the first ``N fps`` of its
    dataset's SOURCE.md (UCSD: "~10 fps"), else ``default``."""
    folder = Path(folder).resolve()
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        rate = read_seqinfo(ini).get("framerate") if ini.is_file() else None
        if rate:
            return float(rate)
    dataset = dataset_dir(folder)
    if dataset is not None:
        m = _FPS_IN_TEXT.search((dataset / "SOURCE.md").read_text(errors="replace"))
        if m:
            return float(m[1])
    return default


def load(clip: str | os.PathLike[str], fps: float | None = None) -> GroundTruth:
    """Ground truth of ``clip`` (a video file or a folder of stills) from its dataset folder.

    ``fps``: the frame rate the stills are played at (their ground-truth frames are
    timed with it); video files use their own declared rate.

    Raises:
        ValueError: a ground-truth file of a known dataset cannot be read.
    """
    folder = dataset_dir(clip)
    name = folder.name if folder is not None else None
    present = KINDS_PRESENT.get(name) if name is not None else None
    gt = GroundTruth(dataset=name, kinds_present=present, source="none" if present is None else "no events")
    if folder is None or present is None:
        return gt
    clip = Path(clip).resolve()
    if name.startswith("ucsd_ped2_test"):
        n = len([p for p in (folder / "frames").iterdir() if p.stem.isdigit()])
        labels = read_ucsd_frames(folder / "gt_frames.txt", n)
        boxes, size = read_masks(folder / "gt_masks")
        gt.truths["crowd_movement"] = KindTruth(fps or 10.0, labels, boxes, size)
        gt.source = "gt_frames.txt + gt_masks (official UCSD)"
    elif name == "furg_fire_house6":
        boxes, size, _ = read_furg_xml(folder / "house6.xml")
        rate = video_rate(folder / "house6.mp4")
        labels = np.array([bool(b) for b in boxes])
        gt.truths["fire"] = KindTruth(rate, labels, boxes, size)
        gt.truths["smoke"] = KindTruth(rate, np.ones(len(boxes), dtype=bool), after=True)
        gt.source = "house6.xml flame boxes (official FURG); smoke: whole clip (SOURCE.md)"
    elif name == "fire_smoke_hillside":
        for kind in ("fire", "smoke"):
            gt.truths[kind] = KindTruth(24.0, np.ones(1, dtype=bool), after=True, approximate=True)
        gt.source, gt.approximate = "whole clip, by eye (SOURCE.md), approximate", True
    elif name in ABODA_TIMELINE:
        row = ABODA_TIMELINE[name]
        k0 = int(round(row["start_s"] * row["fps"]))
        labels = np.arange(row["frames"]) >= k0
        boxes = [[tuple(map(float, row["box"]))] if on else [] for on in labels]
        gt.truths[row["kind"]] = KindTruth(row["fps"], labels, boxes, row["size"], after=True, approximate=True)
        gt.source, gt.approximate = "built-in timeline from SOURCE.md (helper's observation), APPROXIMATE", True
    elif name == "mot15_tud_campus":
        info = read_seqinfo(folder / "seqinfo.ini")
        n = int(info.get("seqlength", 0)) or None
        gt.persons = Persons(float(info.get("framerate", fps or 25.0)), read_mot(folder / "gt" / "gt.txt", n),
                             (int(info.get("imwidth", 640)), int(info.get("imheight", 480))))
        gt.source = "gt/gt.txt person boxes (MOT15)"
    elif name == "pets2009_s2l1_view001":
        info = read_seqinfo(folder / "seqinfo_original.ini")
        video = next(folder.glob("*.avi"))
        # the video's pts count frames from 1 at its declared rate; GT frame n+1 = video frame n
        gt.persons = Persons(video_rate(video), read_mot(folder / "gt" / "gt_768x576.txt"),
                             (int(info.get("imwidth", 768)), int(info.get("imheight", 576))), offset=-1)
        gt.source = "gt/gt_768x576.txt person boxes (MOT15 PETS09-S2L1)"
    return gt

