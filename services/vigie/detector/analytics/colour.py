"""Colour-query analytic: the operator's "a red van", "a yellow jacket", on the current frame.

Each camera may carry several queries (:class:`ColourQueryItem`): a colour given by
name (a region of CIELAB LCh space, see :data:`vigie.detector.colours.NAMED_COLOURS`)
or as a CIELAB value ``[L*, a*, b*]`` with a colour-difference tolerance (CIEDE2000 by
default, CIE76 on request), plus optional blob geometry and object class.

Per batch, on the working grid (``batch.rgb``, typically 160x120). The decoded frames
(``batch.images``) are not used: they cost 16 times the pixels, the detector does not
always carry them, and on PETS 2009 a 320x240 grid found the red-clad walkers in 65 %
of their frames against 62 % at 160x120. A patch of about 2x2 working pixels (8x8
frame pixels at 640x480) is the smallest found; the antialiased downscale mixes a
small patch's colour with its surroundings.

1. sRGB -> CIELAB (D65) in torch, CIE 15:2004 formulas (:func:`~vigie.detector.colours.srgb_to_lab`),
   and each query's colour test (in the LCh region, or within the tolerance of the
   query colour), evaluated once per query set over a 64x64x64 grid of quantised sRGB
   colours (:class:`~vigie.detector.colours.ColourTable`, one bit per query).
2. Per frame, each pixel's colour is looked up in that table, giving the pixels that
   match each query, restricted to the configured zones and, with ``moving_only``, to
   the foreground of a long-term background
   (:class:`~vigie.detector.analytics.background.DualBackground`): a parked red car
   is a valid answer by default, a red door of the scene is not with ``moving_only``.
3. A morphological closing (``close_px``) joins fragments of one object split by
   highlights or edges; 8-connected components of the closed mask are the blobs
   (scipy, on the CPU, only for frames and queries with matching pixels).
4. Blobs are kept when their area (frame pixels squared) is in
   ``[min_area_px, max_area_px]``, their box aspect ``w / h`` (frame pixels) in
   ``[min_aspect, max_aspect]`` and their *fill* (fraction of the blob's pixels that
   match the colour) is at least ``min_fill``. When the query names object classes and
   the object-class stage is on (``batch.objects(i)``), a blob must also lie in an
   object of one of those classes (blob centre inside the object box and at least half
   of the blob box inside it); the detection then carries the object's box. When the
   stage is off the blob is reported on its colour and geometry alone.

Emission: a query matching on a camera is one *episode* with a stable ``track_id``
``f"{camera}/colour_query/{name}/{n}"``; it emits on the frame it starts, then every
``repeat_s`` while matches continue (gaps up to ``release_s`` do not end it), one
:class:`Detection` per matching blob, ``score`` = the blob's fill. Nothing is carried
from frame to frame but the episode timer: no tracking, no appearance descriptor, no
re-identification; the answer is "this frame shows something of that colour and shape".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import ndimage

from vigie.detector.analytics.background import DualBackground, DualBackgroundConfig, dilate, erode
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch, ObjectBox
from vigie.detector.analytics.episodes import WITH_SUB, Episodes
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.colours import NAMED_COLOURS, ColourTable, delta_e76, delta_e2000, quantised_lab
from vigie.detector.state import FrameClock

_EIGHT = np.ones((3, 3), dtype=bool)
ColourName = Literal["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white", "grey", "black"]


class ColourQueryItem(BaseModel):
    """One query: a colour (name or CIELAB value), blob geometry, optional object classes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("red", min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "Query name, shown to operators and part of the track id (letters, digits, '_', '.', '-')."))
    colour: ColourName | tuple[float, float, float] = Field("red", description=(
        "A colour name (red, orange, yellow, green, blue, purple, pink, brown, white, grey, black: "
        "regions of CIELAB LCh space) or a CIELAB D65 value [L*, a*, b*] matched within `tolerance`."))
    tolerance: float = Field(10.0, ge=0.5, le=100.0, description=(
        "Largest colour difference from a CIELAB query value, in ΔE units of `metric` "
        "(ignored for named colours, whose regions are fixed)."))
    metric: Literal["ciede2000", "cie76"] = Field("ciede2000", description=(
        "Colour difference for CIELAB query values: CIEDE2000 (CIE 142-2001) or CIE76 (Euclidean ΔE*ab)."))
    min_area_px: float = Field(40.0, ge=1.0, le=1e7, description=(
        "Smallest blob area, frame pixels squared (a working pixel is 16 of them for 640x480 frames at 160x120)."))
    max_area_px: float = Field(1e6, ge=1.0, le=1e8, description="Largest blob area, frame pixels squared.")
    min_aspect: float = Field(0.05, gt=0.0, le=100.0, description="Smallest blob box width / height (frame pixels).")
    max_aspect: float = Field(20.0, gt=0.0, le=100.0, description="Largest blob box width / height (frame pixels).")
    min_fill: float = Field(0.5, ge=0.0, le=1.0, description=(
        "Smallest fraction of the (closed) blob's pixels that match the colour; it is the detection score."))
    object_class: list[str] = Field([], max_length=16, description=(
        "COCO labels the blob must lie in (e.g. 'car', 'truck', 'person'; one label or a list), checked "
        "with the object-class stage when it is on; empty: any object."))
    min_object_score: float = Field(0.3, ge=0.0, le=1.0, description=(
        "Smallest object-class confidence that confirms an object of `object_class`."))

    @field_validator("object_class", mode="before")
    @classmethod
    def _one_label(cls, v: object) -> object:
        return [v] if isinstance(v, str) else ([] if v is None else v)

    @model_validator(mode="after")
    def _check(self) -> "ColourQueryItem":
        if self.max_area_px < self.min_area_px:
            raise ValueError("max_area_px must be >= min_area_px")
        if self.max_aspect < self.min_aspect:
            raise ValueError("max_aspect must be >= min_aspect")
        if not isinstance(self.colour, str):
            l, a, b = self.colour
            if not (0.0 <= l <= 100.0 and -200.0 <= a <= 200.0 and -200.0 <= b <= 200.0):
                raise ValueError("a CIELAB colour needs L* in [0, 100] and a*, b* in [-200, 200]")
        return self


class ColourQueryConfig(BaseModel):
    """Settings of :class:`ColourQuery` (times in seconds)."""

    model_config = ConfigDict(extra="forbid")

    queries: list[ColourQueryItem] = Field([], max_length=16, description=(
        "The colour queries of this camera; empty: the analytic does nothing."))
    moving_only: bool = Field(False, description=(
        "Only look at foreground pixels (differing from a long-term background), e.g. to ignore a red "
        "door of the scene; off by default since a parked red car is a valid answer."))
    zones: list[Zone] = Field([], max_length=64, description="Where to look (frame pixels); empty: the whole frame.")
    close_px: int = Field(3, ge=1, le=9, description=(
        "Size of the morphological closing that joins fragments of one blob, working pixels (1 = none)."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit a matching query every this many seconds; 0 emits every frame it matches."))
    release_s: float = Field(2.0, ge=0.0, le=3600.0, description=(
        "Seconds without a match after which a query's episode ends (the next match gets a new track id)."))
    max_detections: int = Field(8, ge=1, le=100, description="Most detections per query and frame (best fill first).")
    long_tau_s: float = Field(120.0, ge=5.0, le=3600.0, description=(
        "Time constant of the long-term background used by `moving_only`, seconds."))
    diff_threshold: float = Field(0.06, gt=0.0, lt=1.0, description=(
        "Foreground threshold of `moving_only` on the smoothed max-channel difference, intensity in [0, 1]."))

    @field_validator("queries")
    @classmethod
    def _unique(cls, v: list[ColourQueryItem]) -> list[ColourQueryItem]:
        names = [q.name for q in v]
        if len(set(names)) != len(names):
            raise ValueError(f"query names must be unique, got {names}")
        return v


@dataclass(slots=True)
class _Blob:
    box: Box  # frame pixels
    fill: float
    area_px: float
    obj: ObjectBox | None = None


@functools.lru_cache(maxsize=256)
def _column(colour: str | tuple[float, float, float], tolerance: float, metric: str) -> torch.Tensor:
    """Which colours of the quantised sRGB grid match a query: ``(64**3,) bool`` (cached: cameras
    and restarts with the same query share it)."""
    lab = quantised_lab()
    if isinstance(colour, str):
        return NAMED_COLOURS[colour].contains(lab)
    de = delta_e2000 if metric == "ciede2000" else delta_e76
    return de(lab, colour) <= tolerance


def _inside(blob: Box, obj: Box) -> bool:
    """Whether the blob's centre lies in ``obj`` and at least half of the blob box is inside it."""
    cx, cy = blob.x + blob.w / 2, blob.y + blob.h / 2
    if not (obj.x <= cx <= obj.x + obj.w and obj.y <= cy <= obj.y + obj.h):
        return False
    ix = max(0, min(blob.x + blob.w, obj.x + obj.w) - max(blob.x, obj.x))
    iy = max(0, min(blob.y + blob.h, obj.y + obj.h) - max(blob.y, obj.y))
    return 2 * ix * iy >= blob.w * blob.h


class ColourQuery(Analytic):
    """Colour-and-shape search over batches of cameras (see the module docstring).

    Args:
        config: :class:`ColourQueryConfig`.
        device: torch device of the batches.

    State: with ``moving_only``, each camera's backgrounds (``(3, h, w) float32`` pair in
    a :class:`~vigie.detector.state.CameraStateBank` inside a ``DualBackground``); per
    camera and query, the current episode (track id and times) in Python. :meth:`process`
    runs under ``torch.inference_mode``.
    """

    kind = "colour_query"
    config_model = ColourQueryConfig

    def __init__(self, config: ColourQueryConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or ColourQueryConfig()
        self.device = torch.device(device)
        c = self.config
        self._zones = ZoneMasks(c.zones, (160, 120), self.device)
        self._bg = DualBackground(DualBackgroundConfig(long_tau_s=c.long_tau_s, diff_threshold=c.diff_threshold),
                                  device=self.device) if c.moving_only else None
        columns = [_column(q.colour, 0.0, "") if isinstance(q.colour, str) else _column(q.colour, q.tolerance, q.metric)
                   for q in c.queries]
        self._table = ColourTable(columns, self.device) if columns else None
        self._clock = FrameClock()
        # one episode per camera and query (names are unique): "<camera>/colour_query/<name>/<n>"
        self._episodes = Episodes("colour_query", c.repeat_s, c.release_s, template=WITH_SUB)

    # -- per-pixel stage (batched, on the device) ---------------------------------
    def masks(self, batch: FrameBatch) -> torch.Tensor:
        """Update the backgrounds (``moving_only``) and return matches ``(N, Q, h, w) bool``
        within the zones (and the foreground), on the batch's device."""
        if self._table is None:
            return torch.zeros((len(batch), 0, *batch.rgb.shape[-2:]), dtype=torch.bool, device=self.device)
        bits = self._table.lookup(batch.rgb)  # (N, h, w) int32, bit q: query q's colour
        match = torch.stack([(bits & (1 << q)) != 0 for q in range(len(self.config.queries))], 1)
        if self.config.zones:
            match &= self._zones.for_batch(batch).any(1, keepdim=True)
        if self._bg is not None:
            dts, _ = self._clock.tick(batch.camera_ids, batch.time_ns, batch.fps)
            dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
            fg_long, _ = self._bg.update(batch.rgb, batch.camera_ids, dt)
            match &= fg_long
        return match

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Search every frame of ``batch`` for each query; returns the detections to emit.

        Args:
            batch: frames with ``rgb (N, 3, h, w) float32`` in [0, 1] on this analytic's device.

        Raises:
            ValueError: with ``moving_only``, the working size differs from the first batch's.

        Returns:
            Detections (kind ``"colour_query"``), one per matching blob of an emitting query,
            box in original frame pixels (the object's box when an object class confirmed it),
            ``score`` = fill, ``attributes``: ``query`` (index in ``queries``), ``fill``,
            ``area_px``, ``aspect`` and, when an object confirmed it, ``object_score``.
            ``last_scores``: per frame, the best fill of a blob passing geometry and class.
        """
        n = len(batch)
        scores = torch.zeros(n, dtype=torch.float32)
        if not self.config.queries:
            self.last_scores = scores
            return []
        match = self.masks(batch)
        h, w = match.shape[-2:]
        # a blob needs at least min_fill * min_area_px matching pixels: skip frames and
        # queries with fewer in all (most of them) before any CPU work
        cell = torch.tensor([W * H / (w * h) for W, H in batch.frame_sizes]).view(-1, 1)
        need = torch.tensor([max(q.min_fill * q.min_area_px, 1.0) for q in self.config.queries]).view(1, -1)
        flags = (match.flatten(2).sum(2).cpu() * cell >= need).numpy()  # (N, Q)
        match_cpu = grouped_cpu = None
        if flags.any():
            k = self.config.close_px
            grouped = erode(dilate(match, k), k) if k > 1 else match
            match_cpu, grouped_cpu = match.cpu().numpy(), grouped.cpu().numpy()
        out: list[Detection] = []
        for i, cam in enumerate(batch.camera_ids):
            now = batch.time_ns[i]
            for qi, q in enumerate(self.config.queries):
                blobs: list[_Blob] = []
                if flags[i, qi]:
                    blobs, best = self._blobs(q, match_cpu[i, qi], grouped_cpu[i, qi], batch, i)
                    scores[i] = max(float(scores[i]), best)
                out.extend(self._emit(i, cam, qi, q, blobs, now))
        self.last_scores = scores
        return out

    # -- per-blob stage (CPU, only where a query matches) ---------------------------
    def _blobs(self, q: ColourQueryItem, match: np.ndarray, grouped: np.ndarray, batch: FrameBatch,
               i: int) -> tuple[list[_Blob], float]:
        """Blobs of one frame and query that pass geometry, fill and class; and the best fill
        among blobs passing geometry and class (for ``last_scores``)."""
        h, w = match.shape
        W, H = batch.frame_sizes[i]
        sx, sy = W / w, H / h
        rows, cols = np.flatnonzero(grouped.any(1)), np.flatnonzero(grouped.any(0))
        oy, ox = int(rows[0]), int(cols[0])  # label the bounding crop of the matches only
        crop = (slice(oy, int(rows[-1]) + 1), slice(ox, int(cols[-1]) + 1))
        grouped, match = grouped[crop], match[crop]
        labels, n = ndimage.label(grouped, structure=_EIGHT)
        areas = np.bincount(labels.ravel(), minlength=n + 1) * (sx * sy)
        hits = np.bincount(labels.ravel(), weights=match.ravel(), minlength=n + 1) * (sx * sy)
        keep = np.flatnonzero((areas >= q.min_area_px) & (areas <= q.max_area_px) & (hits > 0))
        blobs, best = [], 0.0
        if keep.size == 0:
            return blobs, best
        slices = ndimage.find_objects(labels, max_label=n)
        objects: list[ObjectBox] | None = None
        for lab_k in keep.tolist():
            sl = slices[lab_k - 1]
            x0, y0 = int(np.floor((sl[1].start + ox) * sx)), int(np.floor((sl[0].start + oy) * sy))
            x1, y1 = min(W, int(np.ceil((sl[1].stop + ox) * sx))), min(H, int(np.ceil((sl[0].stop + oy) * sy)))
            box = Box(x0, y0, x1 - x0, y1 - y0)
            if not (q.min_aspect <= box.w / max(box.h, 1) <= q.max_aspect):
                continue
            obj = None
            if q.object_class:
                if objects is None:
                    objects = batch.objects(i)  # None: the stage is off, decide on colour alone
                if objects is not None:
                    cands = [o for o in objects if o.label in q.object_class and o.score >= q.min_object_score
                             and _inside(box, o.box)]
                    if not cands:
                        continue
                    obj = max(cands, key=lambda o: o.score)
            fill = float(hits[lab_k] / areas[lab_k])
            best = max(best, fill)
            if fill >= q.min_fill:
                blobs.append(_Blob(box=box, fill=fill, area_px=float(areas[lab_k]), obj=obj))
        blobs.sort(key=lambda b: -b.fill)
        return blobs[: self.config.max_detections], best

    def _emit(self, i: int, cam: str, qi: int, q: ColourQueryItem, blobs: list[_Blob],
              now: int) -> list[Detection]:
        """Advance query ``qi``'s episode on ``cam`` at ``now`` (stream ns); its detections when due."""
        emit = self._episodes.update(cam, now, bool(blobs), q.name)
        if emit is None:
            return []
        out = []
        for b in blobs:
            attrs = {"query": float(qi), "fill": b.fill, "area_px": b.area_px, "aspect": b.box.w / max(b.box.h, 1)}
            if b.obj is not None:
                attrs["object_score"] = float(b.obj.score)
            out.append(Detection(index=i, kind=self.kind, score=b.fill, boxes=[b.obj.box if b.obj else b.box],
                                 track_id=emit.track_id, attributes=attrs))
        return out

    def forget(self, camera_id: str) -> None:
        """Drop the camera's background and episodes (track numbers keep counting)."""
        if self._bg is not None:
            self._bg.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.forget(camera_id)
