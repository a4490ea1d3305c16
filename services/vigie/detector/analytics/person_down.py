"""Person-down analytic: someone lying on the ground after a fall.

Classical silhouette aspect-ratio fall detection: a fall is the transition of a
tall, moving foreground blob into a wide blob that then stays still (B. U.
Töreyin, Y. Dedeoğlu, A. E. Çetin, "HMM based falling person detection using both
audio and video", IEEE ICCV-HCI workshop 2005, LNCS 3766, which models the
bounding-box aspect ratio of moving regions; D. Anderson et al., "Recognizing
falls from silhouettes", IEEE EMBS 2006; C. Rougier et al., "Fall detection from
human shape and motion history using video surveillance", AINA workshops 2007).

1. :class:`~vigie.detector.analytics.background.DualBackground` gives the
   long-term foreground (what is not the empty scene); consecutive-frame
   differences (3x3-smoothed grey-level difference above ``diff_threshold``)
   give what moves *now* (the short-term foreground right after a stream restart).
2. Foreground blobs (connected components of the long-term foreground, pieces up
   to 4 working pixels apart joined; scipy on the CPU, only for cameras that have
   foreground) are tracked by box IoU, or by centre distance when the box changed
   shape (a fall turns a tall box into a wide one): positions only, no
   appearance.
3. Per track, in frame pixels (the working grid does not keep the aspect ratio):
   *upright* when ``h / w >= upright_aspect`` (its height is remembered);
   *lying* when ``w / h >= min_aspect``, its height is at most ``height_drop`` times
   the last upright height, its area is within ``[min_area_frac, max_area_frac]``
   of the frame, and its centre is in a zone; a blob touching the frame's edge is
   neither (partly out of view). *Moving* when at least ``move_frac`` of its
   pixels changed since the previous frame, *still* when at most ``still_frac`` did.
4. A lying track gains stillness evidence (seconds) while still and loses
   ``decay`` times as much while not; short ambiguous spells (neither upright nor
   lying, e.g. an occlusion) up to ``hold_s`` keep the state, an upright frame
   resets it (the person stood up). It is raised when its evidence reaches
   ``dwell_s``, the lying phase began at most ``fall_window_s`` after the track
   was last upright, and the track moved since ``fall_window_s`` before that.
5. With the object-class stage on (``batch.objects``), a candidate mostly covered
   by a ``reject_labels`` box (a vehicle) is not raised, and with
   ``require_person`` it needs a ``person`` box covering ``confirm_overlap`` of it;
   refused candidates are checked again every ``recheck_s``. With the stage off,
   both checks are skipped (COCO detectors rarely see a person lying, hence
   ``require_person`` is off by default). Parked cars are excluded without the
   stage: they were never upright (side views), or their blob exceeds
   ``max_area_frac`` (a car seen from above turning into a bay).

Emission: a raised condition emits on the frame it is raised, then every
``repeat_s`` while the track lies; each condition gets its own ``track_id``
(``"<camera>/person_down/<n>"``). ``attributes``: ``dwell_s`` (stillness
evidence, seconds), ``aspect`` (w/h), ``height_ratio`` (lying / upright height),
``area_frac``, ``person_score`` (best confirming person box, 0 when none or the
stage is off). ``last_scores``: per frame, the largest ``min(1, evidence /
dwell_s)`` of tracks that qualify apart from stillness and the class stage.

Cost: about 1.1x the abandoned-object analytic (same background model), i.e.
~2 ms of CPU per frame at batch 8 on one thread on a loaded shared machine.

Limitations: a fall along the camera's line of sight does not widen the
silhouette; a person who lies down slowly over more than ``fall_window_s``, who
was never seen upright (entered while occluded) or who lies at the frame's edge
is not reported; people who walked side by side and then crouch together can
look like one wide blob. Nobody is identified: only blob shapes and motion are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

from vigie.detector.analytics.background import DualBackground, DualBackgroundConfig, box_sum3, dilate
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch, ObjectBox
from vigie.detector.analytics.episodes import EmissionSchedule, TrackIds
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock

_EIGHT = np.ones((3, 3), dtype=bool)


class PersonDownConfig(BaseModel):
    """Settings of :class:`PersonDown` (times in seconds, ratios of frame pixels)."""

    model_config = ConfigDict(extra="forbid")

    zones: list[Zone] = Field(default_factory=list, max_length=64, description=(
        "Where a fallen person is reported (the candidate's centre); empty: the whole frame."))
    dwell_s: float = Field(3.0, ge=0.5, le=600.0, description=(
        "Seconds a lying blob must stay still before it is reported."))
    min_aspect: float = Field(1.2, ge=1.0, le=20.0, description=(
        "Width / height (frame pixels) from which a blob is lying."))
    upright_aspect: float = Field(1.3, ge=1.0, le=20.0, description=(
        "Height / width (frame pixels) from which a blob is an upright person."))
    height_drop: float = Field(0.7, gt=0.0, le=1.0, description=(
        "A lying blob is at most this fraction of the track's last upright height."))
    fall_window_s: float = Field(5.0, ge=0.2, le=120.0, description=(
        "The lying phase must begin within this many seconds after the track was last upright, "
        "and the track must have moved within this many seconds before that."))
    still_frac: float = Field(0.1, ge=0.0, le=1.0, description=(
        "Fraction of a blob's pixels changed since the previous frame at or below which it is still."))
    move_frac: float = Field(0.2, gt=0.0, le=1.0, description=(
        "Fraction of a blob's pixels changed since the previous frame from which it is moving."))
    decay: float = Field(1.0, ge=0.0, le=20.0, description=(
        "Stillness evidence lost per second while a lying blob is not still, relative to the gain."))
    hold_s: float = Field(2.0, ge=0.0, le=60.0, description=(
        "Seconds a lying track may look neither lying nor upright (occlusion, merging) and keep its state."))
    min_area_frac: float = Field(0.001, gt=0.0, le=1.0, description=(
        "Smallest lying blob, as a fraction of the frame area."))
    max_area_frac: float = Field(0.08, gt=0.0, le=1.0, description=(
        "Largest lying blob, as a fraction of the frame area (excludes vehicles seen from above)."))
    match_iou: float = Field(0.1, ge=0.0, le=1.0, description="Box IoU that links a blob to a track.")
    match_distance: float = Field(0.75, ge=0.0, le=5.0, description=(
        "Without IoU, a blob whose centre is within this many track-box sizes (the larger side) "
        "of the track's centre continues it."))
    linger_s: float = Field(2.0, ge=0.0, le=60.0, description="Seconds a track survives without its blob.")
    require_person: bool = Field(False, description=(
        "With the object-class stage on, raise only when a 'person' box covers the candidate "
        "(ignored when the stage is off)."))
    reject_labels: list[str] = Field(default_factory=lambda: ["car", "truck", "bus", "motorcycle", "bicycle"],
                                     max_length=32, description=(
        "With the object-class stage on, a candidate covered by a box of one of these labels is not raised."))
    confirm_overlap: float = Field(0.3, gt=0.0, le=1.0, description=(
        "Fraction of the candidate's box an object box must cover to confirm (person) or reject it."))
    recheck_s: float = Field(2.0, ge=0.0, le=600.0, description=(
        "Seconds before a candidate refused by the object-class stage is checked again."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit a raised condition every this many seconds while it lasts; 0 emits every frame."))
    long_tau_s: float = Field(120.0, ge=5.0, le=3600.0, description=(
        "Long-term background time constant, seconds (a lying person fades into it after ~0.5-1.5x this)."))
    short_tau_s: float = Field(1.5, ge=0.1, le=60.0, description="Short-term background time constant, seconds.")
    diff_threshold: float = Field(0.06, gt=0.0, lt=1.0, description=(
        "Threshold, intensity in [0, 1], on the smoothed difference to the backgrounds (max over "
        "colours) and to the previous frame (grey)."))
    open_px: int = Field(3, ge=1, le=9, description="Opening size for foreground masks, working pixels.")

    @model_validator(mode="after")
    def _check(self) -> "PersonDownConfig":
        if self.max_area_frac < self.min_area_frac:
            raise ValueError("max_area_frac must be >= min_area_frac")
        if self.move_frac < self.still_frac:
            raise ValueError("move_frac must be >= still_frac")
        if self.long_tau_s <= 2 * self.short_tau_s:
            raise ValueError("long_tau_s must be more than twice short_tau_s")
        return self


@dataclass(slots=True)
class _Blob:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    area_frac: float  # foreground pixels / frame pixels
    moving: float  # fraction of the blob's pixels that changed since the previous frame
    centre_in_zone: bool
    at_border: bool  # touches the frame's edge: its shape is not known


@dataclass(slots=True)
class _Track:
    box: tuple[float, float, float, float]
    last_ns: int
    upright_ns: int | None = None
    upright_h: float = 0.0
    moved_ns: int | None = None
    down_ns: int | None = None  # start of the current lying phase
    still_s: float = 0.0  # stillness evidence of the lying phase
    off_s: float = 0.0  # seconds of the current ambiguous spell
    track_id: str = ""  # set while a condition is raised
    last_emit_ns: int | None = None
    next_check_ns: int = 0
    person_score: float = 0.0


def _cover(obj: Box, box: tuple[float, float, float, float]) -> float:
    """Fraction of ``box`` covered by ``obj``."""
    ix = max(0.0, min(obj.x + obj.w, box[2]) - max(obj.x, box[0]))
    iy = max(0.0, min(obj.y + obj.h, box[3]) - max(obj.y, box[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 0.0


class PersonDown(Analytic):
    """Fallen-person detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`PersonDownConfig`.
        device: torch device of the batches.

    Per-camera state: the two backgrounds and the previous grey frame ``(1, h, w) float32``
    in :class:`~vigie.detector.state.CameraStateBank` slots; blob tracks in Python.
    :meth:`process` runs under ``torch.inference_mode``.
    """

    kind = "person_down"
    relearns_on_lighting = "any"
    config_model = PersonDownConfig

    def __init__(self, config: PersonDownConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or PersonDownConfig()
        self.device = torch.device(device)
        c = self.config
        self._bg = DualBackground(DualBackgroundConfig(
            long_tau_s=c.long_tau_s, short_tau_s=c.short_tau_s, diff_threshold=c.diff_threshold,
            open_px=c.open_px), device=self.device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._zones: ZoneMasks | None = None
        self._zone_cpu: dict[tuple[int, int], np.ndarray] = {}
        self._tracks: dict[str, list[_Track]] = {}
        self._ids = TrackIds(self.kind)
        self._schedule = EmissionSchedule(c.repeat_s)
        self.last_scores = None

    # -- per-pixel stage (batched, on the device) ---------------------------------
    def _masks(self, batch: FrameBatch) -> tuple[list[float], torch.Tensor, torch.Tensor]:
        """Frame intervals ``N`` seconds, ``(N, 1, h, w) bool`` long-term foreground and motion."""
        ids, rgb = batch.camera_ids, batch.rgb
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        fg_long, fg_short = self._bg.update(rgb, ids, dt)
        if self._bank is None:
            self._bank = CameraStateBank({"prev": (tuple(batch.gray.shape[1:]), torch.float32)}, device=self.device)
        idx = self._bank.index(ids)
        prev = self._bank.gather(ids, "prev", index=idx)
        diff = box_sum3((batch.gray - prev).abs_()) > 9.0 * self.config.diff_threshold
        if any(restarts):  # no previous frame to compare with: what the short-term background sees
            diff = torch.where(torch.tensor(restarts, device=self.device).view(-1, 1, 1, 1), fg_short, diff)
        self._bank.scatter(ids, batch.gray, "prev", index=idx)
        return dts, fg_long, diff

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the person-down detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w) float32`` in [0, 1] on this analytic's device.

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"person_down"``), one box each in original frame pixels.
            Sets ``last_scores`` to ``(N,) float32`` in [0, 1] on the CPU.
        """
        dts, fg_long, moving = self._masks(batch)
        flags = fg_long.flatten(1).any(1).tolist()
        fg_cpu = grouped_cpu = mov_cpu = None
        if any(flags):
            fg_cpu = fg_long[:, 0].cpu().numpy()
            grouped_cpu = dilate(fg_long, 5)[:, 0].cpu().numpy()  # joins pieces up to 4 px apart
            mov_cpu = moving[:, 0].cpu().numpy()
        out: list[Detection] = []
        scores = []
        for i, cam in enumerate(batch.camera_ids):
            blobs = self._blobs(fg_cpu[i], grouped_cpu[i], mov_cpu[i], batch, i) if flags[i] else []
            dets, score = self._track(i, cam, batch, blobs, dts[i])
            out.extend(dets)
            scores.append(score)
        self.last_scores = torch.tensor(scores, dtype=torch.float32)
        return out

    # -- per-blob stage (CPU, only where there is foreground) ----------------------
    def _zone_mask(self, batch: FrameBatch, frame_size: tuple[int, int]) -> np.ndarray | None:
        if not self.config.zones:
            return None
        h, w = batch.gray.shape[-2:]
        if self._zones is None or self._zones.work_size != (w, h):
            self._zones, self._zone_cpu = ZoneMasks(self.config.zones, (w, h), self.device), {}
        mask = self._zone_cpu.get(frame_size)
        if mask is None:
            mask = self._zone_cpu[frame_size] = self._zones.get(frame_size).any(0).cpu().numpy()
        return mask

    def _blobs(self, fg: np.ndarray, grouped: np.ndarray, moving: np.ndarray, batch: FrameBatch,
               i: int) -> list[_Blob]:
        """Blobs of frame ``i``: ``fg``, ``grouped``, ``moving`` are ``(h, w) bool`` working-grid masks."""
        frame_size = batch.frame_sizes[i]
        h, w = fg.shape
        sx, sy = frame_size[0] / w, frame_size[1] / h
        labels, n = ndimage.label(grouped, structure=_EIGHT)
        if n == 0:
            return []
        core = np.where(fg, labels, 0)
        areas = np.bincount(core.ravel(), minlength=n + 1)
        changed = np.bincount(labels[moving], minlength=n + 1)  # motion anywhere on the blob or its trail
        keep = np.flatnonzero(areas[1:] >= self.config.min_area_frac * h * w) + 1
        if keep.size == 0:
            return []
        slices = ndimage.find_objects(core, max_label=n)
        zone = self._zone_mask(batch, frame_size)
        blobs = []
        for k in keep.tolist():
            sl = slices[k - 1]
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            in_zone = zone is None or bool(zone[(y0 + y1) // 2, (x0 + x1) // 2])
            blobs.append(_Blob(box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy), area_frac=float(areas[k]) / (h * w),
                               moving=min(1.0, changed[k] / areas[k]), centre_in_zone=in_zone,
                               at_border=x0 == 0 or y0 == 0 or x1 == w or y1 == h))
        return blobs

    def _match(self, tracks: list[_Track], blobs: list[_Blob]) -> dict[int, int]:
        """Blob index -> track index, one to one: best IoU first, then nearest centres."""
        if not tracks or not blobs:
            return {}
        c = self.config
        b = np.array([bl.box for bl in blobs], dtype=np.float64)[:, None, :]  # (B, 1, 4)
        t = np.array([tr.box for tr in tracks], dtype=np.float64)[None, :, :]  # (1, T, 4)
        iw = (np.minimum(b[..., 2], t[..., 2]) - np.maximum(b[..., 0], t[..., 0])).clip(min=0)
        ih = (np.minimum(b[..., 3], t[..., 3]) - np.maximum(b[..., 1], t[..., 1])).clip(min=0)
        inter = iw * ih
        area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
        iou = inter / np.maximum(area(b) + area(t) - inter, 1e-9)
        size = np.maximum(t[..., 2] - t[..., 0], t[..., 3] - t[..., 1])
        dist = np.hypot((b[..., 0] + b[..., 2] - t[..., 0] - t[..., 2]) / 2,
                        (b[..., 1] + b[..., 3] - t[..., 1] - t[..., 3]) / 2) / np.maximum(size, 1e-9)
        by_iou = (iou >= c.match_iou) & (iou > 0)
        # one ordering key: IoU pairs (best first) before distance pairs (nearest first)
        key = np.where(by_iou, -iou, np.where(dist <= c.match_distance, 1.0 + dist, np.inf))
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for flat in np.argsort(key, axis=None, kind="stable"):
            b_i, t_i = divmod(int(flat), len(tracks))
            if not np.isfinite(key[b_i, t_i]):
                break
            if b_i not in assigned and t_i not in used:
                assigned[b_i] = t_i
                used.add(t_i)
        return assigned

    def _track(self, i: int, cam: str, batch: FrameBatch, blobs: list[_Blob],
               dt: float) -> tuple[list[Detection], float]:
        c = self.config
        now = batch.time_ns[i]
        tracks = self._tracks.setdefault(cam, [])
        assigned = self._match(tracks, blobs)
        out: list[Detection] = []
        score = 0.0
        for b_i, blob in enumerate(blobs):
            t_i = assigned.get(b_i)
            if t_i is None:
                tracks.append(_Track(box=blob.box, last_ns=now))
                t_i = len(tracks) - 1
            t = tracks[t_i]
            t.box, t.last_ns = blob.box, now
            s, det = self._update(i, cam, batch, t, blob, dt)
            score = max(score, s)
            if det is not None:
                out.append(det)
        self._tracks[cam] = [t for t in tracks if (now - t.last_ns) <= c.linger_s * 1e9]
        return out, score

    def _update(self, i: int, cam: str, batch: FrameBatch, t: _Track, blob: _Blob,
                dt: float) -> tuple[float, Detection | None]:
        """Advance one track with its blob of this frame; returns its frame score and a detection or None."""
        c = self.config
        now = batch.time_ns[i]
        x0, y0, x1, y1 = blob.box
        w, h = x1 - x0, y1 - y0
        if blob.moving >= c.move_frac:
            t.moved_ns = now
        # a blob touching the frame's edge (entering, leaving) is partly out of view: shape unknown
        if not blob.at_border and h >= c.upright_aspect * w:  # standing (again): a lying phase is over
            t.upright_ns, t.upright_h = now, h
            self._reset(t)
            return 0.0, None
        lying = (not blob.at_border and t.upright_ns is not None and w >= c.min_aspect * h
                 and h <= c.height_drop * t.upright_h and blob.centre_in_zone
                 and c.min_area_frac <= blob.area_frac <= c.max_area_frac)
        if not lying:
            t.off_s += dt
            if t.off_s > c.hold_s:
                self._reset(t)
            return 0.0, None
        t.off_s = 0.0
        if t.down_ns is None:
            t.down_ns = now
        fell = (t.down_ns - t.upright_ns <= c.fall_window_s * 1e9 and t.moved_ns is not None
                and t.moved_ns >= t.upright_ns - c.fall_window_s * 1e9)
        if not fell:
            return 0.0, None
        if blob.moving <= c.still_frac:
            t.still_s += dt
        else:
            t.still_s = max(0.0, t.still_s - c.decay * dt)
        score = min(1.0, t.still_s / c.dwell_s)
        if not t.track_id:
            if t.still_s < c.dwell_s or now < t.next_check_ns or not self._confirmed(i, batch, t):
                return score, None
            t.track_id = self._ids.new(cam)
        if not self._schedule.due(t.last_emit_ns, now):
            return score, None
        t.last_emit_ns = now
        fw, fh = batch.frame_sizes[i]
        bx0, by0 = max(0, int(round(x0))), max(0, int(round(y0)))
        bx1, by1 = min(fw, int(round(x1))), min(fh, int(round(y1)))
        det = Detection(
            index=i, kind=self.kind, score=0.5 + 0.5 * min(1.0, t.still_s / (2 * c.dwell_s)),
            boxes=[Box(bx0, by0, max(1, bx1 - bx0), max(1, by1 - by0))], track_id=t.track_id,
            attributes={"dwell_s": round(t.still_s, 2), "aspect": round(w / max(h, 1e-6), 3),
                        "height_ratio": round(h / max(t.upright_h, 1e-6), 3),
                        "area_frac": round(blob.area_frac, 5), "person_score": round(t.person_score, 3)})
        return score, det

    def _confirmed(self, i: int, batch: FrameBatch, t: _Track) -> bool:
        """Object-class check of a candidate (always True with the stage off)."""
        c = self.config
        objects: list[ObjectBox] | None = batch.objects(i)
        if objects is None:
            return True
        reject = set(c.reject_labels)
        if any(o.label in reject and _cover(o.box, t.box) >= c.confirm_overlap for o in objects):
            t.next_check_ns = batch.time_ns[i] + int(c.recheck_s * 1e9)
            return False
        t.person_score = max((o.score for o in objects
                              if o.label == "person" and _cover(o.box, t.box) >= c.confirm_overlap), default=0.0)
        if c.require_person and t.person_score == 0.0:
            t.next_check_ns = batch.time_ns[i] + int(c.recheck_s * 1e9)
            return False
        return True

    @staticmethod
    def _reset(t: _Track) -> None:
        t.down_ns, t.still_s, t.off_s, t.track_id, t.last_emit_ns = None, 0.0, 0.0, "", None
        t.next_check_ns, t.person_score = 0, 0.0

    def forget(self, camera_id: str) -> None:
        """Drop the camera's backgrounds, previous frame and tracks; its next frame starts afresh."""
        self._bg.forget(camera_id)
        self._clock.forget(camera_id)
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._tracks.pop(camera_id, None)  # condition numbers keep counting: ids stay unique
