"""The right of access: a filmed person obtains the images of them, everyone else masked.

A supervisor answers a person's request by cutting one camera's frames over a time range out of the
``frames`` topic and marking, on one frame, the box of the requester. :func:`access_export` then:

1. finds the people in every frame (:func:`person_boxes`): the *person* boxes of the object-class
   stage (:mod:`vigie.detector.objects`, SSD-MobileNet-v2 COCO) when it is installed, else the
   foreground blobs of the detector's background model (:class:`vigie.detector.analytics.blobs.Foreground`
   run over the frames in capture order, :func:`~vigie.detector.analytics.blobs.find_blobs`);
2. follows the marked box forward and backward by box overlap only (:func:`follow`);
3. blurs (or blacks out) every other box, enlarged by a margin (:func:`anonymise`); privacy masks stay black;
4. encodes the result as an H.264 MP4 (:func:`vigie.evidence.clip.encode_clip`) and describes it in a
   manifest (range, requester box and frame, method, person source, counts, SHA-256 of the MP4).

Nothing identifies anyone: no face is detected, no appearance is compared. The requester is the box the
supervisor marked, carried from frame to frame by its overlap (IoU) with the boxes of the next frame,
which is why a requester who crosses someone may be lost (then blurred like anyone else: an export
errs on the side of third parties), and why boxes that grow past :data:`MAX_GROWTH` times the followed
box (two people merged into one blob) are never taken for the requester.

Units: boxes in pixels of the published frames (x, y of the top-left corner, width, height), times in ns
since the Unix epoch UTC (``capture_ns``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import simplejpeg

import vigie
from vigie.contracts.v1 import Frame
from vigie.core.authorisations import DAY_NS
from vigie.core.cameras import CamerasFile
from vigie.core.errors import ConfigError
from vigie.core.geometry import rasterize_outward
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.detector.analytics.base import Box
from vigie.evidence.catalogue import EvidenceError
from vigie.evidence.clip import Clip, decode_rgb, encode_clip, frames_between

__all__ = ["AccessError", "Box", "access_export", "anonymise", "follow", "person_boxes"]

log = logging.getLogger(__name__)

Method = Literal["blur", "black"]
METHODS = ("blur", "black")
#: Smallest IoU between the followed box and a box of the adjacent frame for it to be the requester's.
MIN_IOU = 0.3
#: Frames the last box is kept when nothing overlaps it enough, before the requester is lost.
HOLD_FRAMES = 3
#: A box larger than this many times the followed box is not the requester (two people merged in one blob).
MAX_GROWTH = 1.8
#: Each anonymised box is enlarged by this fraction of its width and height on every side (at least 3 px).
MARGIN = 0.15
#: Person score of the object-class stage: below the detector's default (0.4), as a missed person is
#: exposed while an extra box only blurs some background (on PETS 2009: 94 % of the other people's box
#: area hidden at 0.25, 89 % at 0.3 without the spread below).
PERSON_SCORE = 0.25
#: A person box also hides its place on this many frames before and after (a person the stage missed there).
SPREAD_FRAMES = 2
#: Pixelation block, as a fraction of the box's shorter side (at least 6 px): a face spans one or two blocks.
BLOCK_FRACTION = 1 / 5
#: Working size of the background model, and the smallest blob kept as a fraction of the frame area.
WORK_SIZE = (160, 120)
MIN_BLOB_FRACTION = 0.001


class AccessError(EvidenceError):
    """A refused access export (a :class:`~vigie.core.errors.VigieError`); the message says why (unknown camera,
    range past retention, no frames...)."""


def _area(box: Box) -> int:
    return box.w * box.h


def _track(boxes_per_frame: list[list[Box]], start: int, box: Box, step: int, min_iou: float, hold: int,
           max_growth: float, out: list[Box | None]) -> None:
    """Carry ``box`` (the requester's on frame ``start``) frame by frame in direction ``step`` (+1/-1) into ``out``."""
    current, misses = box, 0
    i = start + step
    while 0 <= i < len(boxes_per_frame):
        best, best_iou = None, min_iou
        for candidate in boxes_per_frame[i]:
            if _area(candidate) > max_growth * _area(current):
                continue
            overlap = current.iou(candidate)
            if overlap >= best_iou:
                best, best_iou = candidate, overlap
        if best is not None:
            current, misses = best, 0
        else:
            misses += 1
            if misses > hold:
                return
        out[i] = current
        i += step


def follow(boxes_per_frame: list[list[Box]], frame_index: int, marked: Box, min_iou: float = MIN_IOU, *,
           hold: int = HOLD_FRAMES, max_growth: float = MAX_GROWTH) -> list[Box | None]:
    """The requester's box in every frame, from the box marked on one frame, by box overlap only.

    On ``frame_index`` the requester is the box of that frame with the greatest IoU with ``marked``
    (at least ``min_iou``), else ``marked`` itself. From there, forward then backward, the requester of
    the adjacent frame is its box of greatest IoU with the requester's current box, when that IoU is at
    least ``min_iou`` and the box is at most ``max_growth`` times as large (a larger one is a group);
    when none qualifies the current box is kept for ``hold`` frames (a missed detection), then the
    requester is lost for the rest of that direction (no re-identification is attempted). Greedy
    frame-to-frame IoU association, as in E. Bochinski, V. Eiselein, T. Sikora, "High-speed
    tracking-by-detection without using image information", AVSS 2017.

    Args:
        boxes_per_frame: the person boxes of each frame, pixels.
        frame_index: the frame the supervisor marked, 0-based.
        marked: the requester's box on that frame, pixels.
        min_iou: smallest IoU, in (0, 1], of a match.
        hold: frames the last box is kept without a match.
        max_growth: largest area ratio of a match to the current box.

    Returns:
        One entry per frame: the requester's box (a box of that frame, or a kept one), or None where
        the requester is not followed.

    Raises:
        ValueError: ``frame_index`` out of range, ``marked`` empty, ``min_iou`` not in (0, 1].
    """
    if not 0 <= frame_index < len(boxes_per_frame):
        raise ValueError(f"frame_index {frame_index} is not a frame of the {len(boxes_per_frame)} given")
    if marked.w <= 0 or marked.h <= 0:
        raise ValueError(f"the marked box {marked} is empty")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be within (0, 1], got {min_iou}")
    out: list[Box | None] = [None] * len(boxes_per_frame)
    scored = [(marked.iou(b), b) for b in boxes_per_frame[frame_index]]
    best = max(scored, key=lambda s: s[0], default=(0.0, marked))
    out[frame_index] = best[1] if best[0] >= min_iou else marked
    for step in (1, -1):
        _track(boxes_per_frame, frame_index, out[frame_index], step, min_iou, hold, max_growth, out)
    return out


def _enlarged(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``box`` grown by ``margin`` of its size on each side (at least 3 px), clipped: ``(x0, y0, x1, y1)`` or None."""
    mx, my = max(3, round(box.w * margin)), max(3, round(box.h * margin))
    x0, y0 = max(0, box.x - mx), max(0, box.y - my)
    x1, y1 = min(width, box.x + box.w + mx), min(height, box.y + box.h + my)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _pixelate(region: np.ndarray, block: int) -> np.ndarray:
    """``region`` (h, w, 3) uint8 as blocks of ``block`` pixels, each its mean colour."""
    h, w = region.shape[:2]
    bh, bw = -(-h // block), -(-w // block)
    padded = np.pad(region.astype(np.float32), ((0, bh * block - h), (0, bw * block - w), (0, 0)), mode="edge")
    means = padded.reshape(bh, block, bw, block, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(np.rint(means).astype(np.uint8), block, 0), block, 1)[:h, :w]


def anonymise(picture: np.ndarray, others: Sequence[Box], method: Method = "blur", *, margin: float = MARGIN,
              masked: np.ndarray | None = None) -> np.ndarray:
    """``picture`` with every box of ``others`` pixelated (``blur``) or blacked out (``black``).

    Each box is enlarged by ``margin`` of its width and height on each side (at least 3 px) and clipped
    to the picture. ``blur`` replaces it with blocks of its mean colour, a block being a fifth of the
    box's shorter side (at least 6 px): a face, a tenth of a standing person's height, spans one or two
    blocks and cannot be recognised. Pixels black in ``picture`` (0 in every channel: a privacy mask
    blacked out by the grabber) and those of ``masked`` are 0 in the result: black stays black.

    Args:
        picture: ``(H, W, 3) uint8`` RGB frame (not modified).
        others: boxes to hide, pixels.
        method: ``"blur"`` or ``"black"``.
        margin: enlargement, fraction of the box's size per side.
        masked: optional ``(H, W) bool`` privacy-mask pixels, forced to 0.

    Returns:
        A new ``(H, W, 3) uint8`` array.

    Raises:
        ValueError: ``picture`` is not ``(H, W, 3) uint8``, ``masked`` has another size, unknown ``method``.
    """
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise ValueError(f"picture must be (H, W, 3) uint8 RGB, got {picture.shape} {picture.dtype}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    height, width = picture.shape[:2]
    if masked is not None and masked.shape != (height, width):
        raise ValueError(f"masked is {masked.shape}, the picture {(height, width)}")
    out = picture.copy()
    for box in others:
        area = _enlarged(box, margin, width, height)
        if area is None:
            continue
        x0, y0, x1, y1 = area
        if method == "black":
            out[y0:y1, x0:x1] = 0
        else:
            block = max(6, round(min(box.w, box.h) * BLOCK_FRACTION))
            out[y0:y1, x0:x1] = _pixelate(picture[y0:y1, x0:x1], block)
    black = ~picture.any(axis=2)
    if masked is not None:
        black |= masked
    out[black] = 0
    return out


def _object_boxes(pictures: Sequence[np.ndarray], detector: object) -> list[list[Box]]:
    return [[o.box for o in detector.detect(p) if o.label == "person"] for p in pictures]  # type: ignore[attr-defined]


def _blob_boxes(pictures: Sequence[np.ndarray], times_ns: Sequence[int], fps: float) -> list[list[Box]]:
    """Foreground blobs of the detector's background model, run twice over the frames in capture order:
    the first pass learns the background (someone standing in the first frame would otherwise be part of
    it), the second finds the blobs."""
    import torch

    from vigie.detector.analytics.background import dilate
    from vigie.detector.analytics.blobs import ForegroundSettings, find_blobs
    from vigie.detector.preprocess import to_batch

    model = ForegroundSettings().foreground("cpu")
    span = (times_ns[-1] - times_ns[0]) + int(1e9 / fps)
    out: list[list[Box]] = []
    with torch.inference_mode():
        for rewind in (0, span):
            for picture, t in zip(pictures, times_ns):
                batch = to_batch([picture], ["access"], [t + rewind], fps, WORK_SIZE)
                maps = model.update(batch)
                if rewind:
                    size = batch.frame_sizes[0]
                    fg = maps.fg[0, 0].numpy()
                    grouped = dilate(maps.fg, 3)[0, 0].numpy()
                    blobs, _ = find_blobs(fg, size, MIN_BLOB_FRACTION * size[0] * size[1], grouped=grouped)
                    out.append([b.box for b in blobs])
    return out


def person_boxes(pictures: Sequence[np.ndarray], times_ns: Sequence[int], *, objects: bool | None = None,
                 detector: object | None = None) -> tuple[list[list[Box]], str]:
    """The people of each frame and where they come from.

    Args:
        pictures: the frames of one camera in capture order, each ``(H, W, 3) uint8`` RGB.
        times_ns: their capture times, ns.
        objects: True: the object-class stage (person boxes, score >= :data:`PERSON_SCORE`); False: foreground
            blobs; None: the object-class stage when it is installed, else foreground blobs (logged).
        detector: an object-class stage to use (``detect(picture) -> [ObjectBox]``); default a new
            :class:`~vigie.detector.objects.ObjectDetector` with person boxes only.

    Returns:
        ``(boxes, source)``: one list of boxes (pixels) per frame, and ``"objects"`` or ``"foreground"``.

    Raises:
        ConfigError: ``objects`` is True and the stage cannot be loaded (OpenCV or weights missing).
    """
    if objects is not False:
        try:
            if detector is None:
                from vigie.detector.objects import ObjectDetector, ObjectDetectorConfig

                detector = ObjectDetector(ObjectDetectorConfig(labels=["person"], score_threshold=PERSON_SCORE))
                detector.load()
            return _object_boxes(pictures, detector), "objects"
        except ConfigError as exc:
            if objects:
                raise
            log.warning("access export: the object-class stage is unavailable (%s): foreground blobs instead", exc)
    if len(pictures) < 2:
        fps = 5.0
    else:
        fps = max(0.5, min(30.0, (len(pictures) - 1) * 1e9 / max(1, times_ns[-1] - times_ns[0])))
    return _blob_boxes(pictures, times_ns, fps), "foreground"


def _iso_ms(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def check_request(cameras_file: CamerasFile, camera_id: str, start_ns: int, end_ns: int, marked_at_ns: int,
                  marked: Box, now_ns: int, method: str) -> str:
    """The camera's authorisation id once the request is found acceptable. Raises AccessError saying why not:
    an unknown camera or one without authorisation, an end before the start, a start older than the
    authorised retention (those images are destroyed), a marked time outside the range, an empty box,
    an unknown method."""
    if not any(c.id == camera_id for c in cameras_file.cameras):
        raise AccessError(f"unknown camera {camera_id!r} (cameras: {', '.join(c.id for c in cameras_file.cameras)})")
    authorisation = cameras_file.authorisation_of(camera_id)
    if authorisation is None:
        raise AccessError(f"camera {camera_id} names no authorisation: no retention to export within")
    if end_ns < start_ns:
        raise AccessError(f"the range ends ({_iso_ms(end_ns)}) before it starts ({_iso_ms(start_ns)})")
    oldest = now_ns - authorisation.max_retention_days * DAY_NS
    if start_ns < oldest:
        raise AccessError(f"the range starts {_iso_ms(start_ns)}, beyond camera {camera_id}'s authorised retention "
                          f"of {authorisation.max_retention_days} day(s) (authorisation {authorisation.id}): "
                          f"images before {_iso_ms(oldest)} are not kept")
    if not start_ns <= marked_at_ns <= end_ns:
        raise AccessError(f"the requester is marked at {_iso_ms(marked_at_ns)}, outside the range "
                          f"{_iso_ms(start_ns)}..{_iso_ms(end_ns)}")
    if marked.w <= 0 or marked.h <= 0 or marked.x < 0 or marked.y < 0:
        raise AccessError(f"the requester's box {marked.x},{marked.y},{marked.w},{marked.h} is empty or off the frame")
    if method not in METHODS:
        raise AccessError(f"unknown method {method!r}: {' or '.join(METHODS)}")
    return authorisation.id


def _masks_of(cameras_file: CamerasFile, camera_id: str, size: tuple[int, int]) -> np.ndarray | None:
    """The camera's privacy masks on a ``size`` (width, height) frame, rounded outward, or None."""
    camera = next(c for c in cameras_file.cameras if c.id == camera_id)
    if not camera.privacy_masks or camera.privacy_masks_reference_size is None:
        return None  # the blacked-out pixels themselves are kept black by anonymise
    return rasterize_outward(camera.privacy_masks, camera.privacy_masks_reference_size, size)


def _anonymised_frames(frames: list[Frame], marked_at_ns: int, marked: Box, method: Method,
                       masks: Callable[[tuple[int, int]], np.ndarray | None], objects: bool | None,
                       detector: object | None) -> tuple[list[Frame], dict]:
    """The frames with everyone but the requester hidden (CPU-bound), and the figures for the manifest."""
    decoded = [(f, decode_rgb(f)) for f in frames]
    decoded = [(f, p) for f, p in decoded if p is not None]
    if not decoded:
        raise AccessError("none of the frames in the range is a decodable JPEG")
    kept = [f for f, _ in decoded]
    pictures = [p for _, p in decoded]
    boxes, source = person_boxes(pictures, [f.capture_ns for f in kept], objects=objects, detector=detector)
    index = min(range(len(kept)), key=lambda i: abs(kept[i].capture_ns - marked_at_ns))
    h, w = pictures[index].shape[:2]
    if marked.x + marked.w > w or marked.y + marked.h > h:
        raise AccessError(f"the requester's box {marked.x},{marked.y},{marked.w},{marked.h} exceeds the {w}x{h} frame")
    requester = follow(boxes, index, marked)
    out, hidden = [], 0
    for i, (frame, picture) in enumerate(zip(kept, pictures)):
        others = [b for b in boxes[i] if b is not requester[i]]
        # a person missed on this frame is still hidden by the boxes of the frames beside it
        others += [b for j in range(max(0, i - SPREAD_FRAMES), min(len(boxes), i + SPREAD_FRAMES + 1)) if j != i
                   for b in boxes[j] if b is not requester[j]]
        mask = masks((picture.shape[1], picture.shape[0]))
        hidden += len(boxes[i]) - (requester[i] is not None and any(b is requester[i] for b in boxes[i]))
        data = simplejpeg.encode_jpeg(anonymise(picture, others, method, masked=mask), quality=95, colorspace="RGB")
        copy = Frame()
        copy.CopyFrom(frame)
        copy.data = data
        out.append(copy)
    figures = {"frame_index": index, "capture_ns": kept[index].capture_ns, "box": requester[index],
               "tracked": sum(r is not None for r in requester), "source": source, "hidden": hidden}
    return out, figures


async def access_export(kafka: KafkaSettings, topics: Topics, cameras_file: CamerasFile, camera_id: str,
                        start_ns: int, end_ns: int, marked_at_ns: int, marked: Box, *, now_ns: int,
                        method: Method = "blur", objects: bool | None = None,
                        detector: object | None = None) -> tuple[Clip, dict]:
    """The MP4 of ``camera_id`` over ``start_ns..end_ns`` showing the requester, everyone else hidden, and its manifest.

    The request is checked first (:func:`check_request`); the frames are read from ``topics.frames``
    (:func:`~vigie.evidence.clip.frames_between`); the frame captured nearest ``marked_at_ns`` is the one
    ``marked`` (the requester's box, pixels of the published frames) is drawn on; people are found with
    :func:`person_boxes`, followed with :func:`follow`, hidden with :func:`anonymise` (privacy masks stay
    black), and the frames encoded with :func:`~vigie.evidence.clip.encode_clip`. The CPU work runs in a
    worker thread: about 0.15 s per frame with the object-class stage, a few ms with foreground blobs.

    Args:
        kafka, topics: the cluster, namespace and topics.
        cameras_file: the cameras and their authorisations (retention).
        camera_id: the camera.
        start_ns, end_ns: the range, ns since the Unix epoch UTC, both included.
        marked_at_ns: capture time of the frame the requester is marked on, ns, within the range.
        marked: the requester's box on that frame.
        now_ns: the current time, ns (the retention is counted back from it).
        method: ``"blur"`` (pixelated) or ``"black"``.
        objects: person source, as for :func:`person_boxes`.
        detector: an object-class stage to use, as for :func:`person_boxes`.

    Returns:
        ``(clip, manifest)``: the :class:`~vigie.evidence.clip.Clip`, and a JSON-ready dict: ``camera``,
        ``authorisation``, ``from``/``to`` (the range asked, ISO 8601 UTC), ``clip_start``/``clip_end`` (its
        first and last frames), ``requester`` (``frame`` 0-based index, ``at`` its capture time, ``box``
        ``[x, y, w, h]``, ``frames_followed``), ``method``, ``person_source`` (``objects`` or
        ``foreground``), ``frames``, ``boxes_anonymised`` (person boxes hidden, summed over the frames),
        ``privacy_masks``, ``width``/``height``, ``bytes``, ``sha256`` (hex, of the MP4), ``tool``.

    Raises:
        AccessError: the request is refused (see :func:`check_request`), no frame in the range, or the box
            exceeds the frames.
        ConfigError: the frames topic does not exist; ``objects`` is True and the stage is unavailable.
        BrokerUnavailable: no broker answers.
    """
    authorisation = check_request(cameras_file, camera_id, start_ns, end_ns, marked_at_ns, marked, now_ns, method)
    frames = await frames_between(kafka, topics.frames, camera_id, start_ns, end_ns)
    if not frames:
        raise AccessError(f"camera {camera_id} has no frame between {_iso_ms(start_ns)} and {_iso_ms(end_ns)} "
                          "(past the frames topic's retention, or not filmed)")

    def masks(size: tuple[int, int]) -> np.ndarray | None:
        return _masks_of(cameras_file, camera_id, size)

    def work() -> tuple[Clip, dict]:
        hidden_frames, figures = _anonymised_frames(frames, marked_at_ns, marked, method, masks, objects, detector)
        return encode_clip(hidden_frames), figures

    clip, figures = await asyncio.to_thread(work)
    box = figures["box"]
    manifest = {
        "kind": "access", "camera": camera_id, "authorisation": authorisation,
        "from": _iso_ms(start_ns), "to": _iso_ms(end_ns),
        "clip_start": _iso_ms(clip.start_ns), "clip_end": _iso_ms(clip.end_ns),
        "requester": {"frame": figures["frame_index"], "at": _iso_ms(figures["capture_ns"]),
                      "box": list(dataclasses.astuple(box)), "frames_followed": figures["tracked"]},
        "method": method, "person_source": figures["source"], "frames": clip.frames,
        "boxes_anonymised": figures["hidden"], "privacy_masks": list(clip.privacy_masks),
        "width": clip.width, "height": clip.height, "bytes": len(clip.data),
        "sha256": hashlib.sha256(clip.data).hexdigest(), "tool": f"vigie {vigie.__version__}",
    }
    return clip, manifest
