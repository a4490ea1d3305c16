"""Intrusion analytic: someone (or something) present in a forbidden or sensitive zone.

Method (classic zone-intrusion by background subtraction, as in the PETS/i-LIDS
"sterile zone" scenario; see Wren et al., "Pfinder", IEEE PAMI 1997 for the
background model):

1. :class:`~vigie.detector.analytics.blobs.Foreground` gives each camera's foreground
   (running-average background with selective update, ghosts healed, opened)
   and a frame-difference *moving* mask, batched on the device.
2. Cameras with foreground near a zone get their connected components (scipy, CPU),
   kept from ``min_area_px`` frame pixels; each blob's *footprint* is the bottom-centre
   of its box (where a person stands) and it is *in* a zone when the footprint is.
3. Blobs are followed by :class:`~vigie.detector.analytics.blobs.BlobTracker`
   (positions only). A track is an intrusion once its footprint has stayed in a zone
   for ``min_duration_s`` and its blob has moved at least once (a *ghost*, the
   background uncovered by someone who was there when the camera started, never moves).
4. Optional confirmation by the object-class stage: with ``require_classes`` set and the
   stage on, a candidate is raised only when a box of one of those classes (score at
   least ``class_min_score``) covers at least half of the smaller of the two boxes;
   without the stage it is raised on the foreground evidence alone.

Each intruding track keeps one ``track_id`` (``"<camera>/intrusion/<n>"``) and emits on
the frame it is raised, then every ``repeat_s`` while its footprint is in a zone.
Frame score (``last_scores``): over blobs whose footprint is in a zone,
``min(1, 0.5 * stay_s / min_duration_s)``: 0.5 when the stay reaches ``min_duration_s``.
Nobody is identified: only foreground positions are used.
"""

from __future__ import annotations

import torch
from pydantic import Field

from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch
from vigie.detector.analytics.blobs import Blob, BlobTrack, ForegroundSettings, zone_of
from vigie.detector.analytics.zones import Zone
from vigie.detector.analytics.zonetracks import ZoneTracks


class IntrusionConfig(ForegroundSettings):
    """Settings of :class:`Intrusion` (times in seconds, sizes in frame pixels)."""

    zones: list[Zone] = Field(default_factory=list, max_length=64, description=(
        "Forbidden zones; empty means the whole frame."))
    min_area_px: float = Field(300.0, ge=1.0, le=1e7, description="Smallest blob area, frame pixels squared.")
    min_duration_s: float = Field(0.5, ge=0.0, le=3600.0, description=(
        "Seconds a blob's footprint must stay in a zone before it is an intrusion."))
    require_motion: bool = Field(True, description=(
        "Raise only blobs that have moved at least once (drops ghosts of start-up occupants)."))
    require_classes: list[str] = Field(default_factory=list, max_length=32, description=(
        "Object classes (COCO labels, e.g. 'person', 'car') that must confirm a candidate when the "
        "object-class stage is on; empty: no confirmation."))
    class_min_score: float = Field(0.4, ge=0.0, le=1.0, description="Smallest confidence of a confirming box.")
    linger_s: float = Field(1.0, ge=0.0, le=60.0, description="Seconds a blob track survives without its blob.")
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an intrusion every this many seconds while it lasts; 0 emits every frame."))


def overlaps(a: Box, b: Box, min_cover: float = 0.5) -> bool:
    """Whether the intersection of ``a`` and ``b`` covers ``min_cover`` of the smaller box."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.w * a.h, b.w * b.h)
    return smaller > 0 and ix * iy >= min_cover * smaller


class Intrusion(ZoneTracks, Analytic):
    """Zone-intrusion detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`IntrusionConfig`.
        device: torch device of the batches.

    State: the background of each camera (:class:`Foreground`) and its blob tracks (Python).
    """

    kind = "intrusion"
    config_model = IntrusionConfig

    def __init__(self, config: IntrusionConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or IntrusionConfig()
        self._setup(self.config, device, "intrusion")

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the intrusion detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w)`` and ``gray (N, 1, h, w)`` float32 in [0, 1].

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"intrusion"``), one box (the blob, frame pixels), ``attributes``:
            ``stay_s`` (seconds in the zone), ``area_px`` (frame pixels squared), ``zone`` (index
            in ``zones``, 0 for the whole frame).
        """
        maps = self._fg.update(batch)
        selected = [i for i, near in enumerate(self._gate.near(batch, maps.fg)) if near]
        scores = [0.0] * len(batch)
        out: list[Detection] = []
        for _, i, seen, _, zmask in self._tracked(batch, maps, selected, self.config.min_area_px):
            cam = batch.camera_ids[i]
            for track in seen:
                det, score = self._step(i, cam, batch, track, zone_of(track.blob, zmask, batch.frame_sizes[i]))
                scores[i] = max(scores[i], score)
                if det is not None:
                    out.append(det)
        self.last_scores = torch.tensor(scores, dtype=torch.float32)
        return out

    def _step(self, i: int, cam: str, batch: FrameBatch, track: BlobTrack,
              zone: int) -> tuple[Detection | None, float]:
        """Advance one track's zone timer; returns its detection (or None) and its frame score."""
        c = self.config
        now, st = batch.time_ns[i], track.state
        if zone < 0:
            st.pop("since", None)
            return None, 0.0
        if st.get("zone") != zone or "since" not in st:
            st["zone"], st["since"] = zone, now
        stay = (now - st["since"]) / 1e9
        if c.require_motion and not track.moved:
            return None, 0.0
        score = min(1.0, 0.5 * stay / c.min_duration_s) if c.min_duration_s > 0 else 1.0
        if stay + 1e-9 < c.min_duration_s:
            return None, score
        if "track_id" not in st and c.require_classes and not self._confirmed(batch, i, track.blob):
            return None, score
        track_id = self._emission(st, cam, now)
        if track_id is None:
            return None, score
        return Detection(index=i, kind=self.kind, score=score, boxes=[track.blob.box], track_id=track_id,
                         attributes={"stay_s": stay, "area_px": track.blob.area_px, "zone": float(zone)}), score

    def _confirmed(self, batch: FrameBatch, i: int, blob: Blob) -> bool:
        """Object-class confirmation of a candidate blob; True when the stage is off."""
        objects = batch.objects(i)
        if objects is None:
            return True
        c = self.config
        return any(o.label in c.require_classes and o.score >= c.class_min_score and overlaps(o.box, blob.box)
                   for o in objects)
