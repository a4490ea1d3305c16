"""Checks of a cameras file against the frames and files it names: privacy masks and analytics zones wholly
outside frames whose size the file gives, file sources that do not exist (:func:`vigie.core.cameras.load_cameras`
runs them; ``vigie validate`` asks for all of them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from vigie.core.cameras import CameraConfig, CamerasFile, parse_synthetic_url
from vigie.core.config import ConfigProblem, locate_problems
from vigie.core.geometry import covers_any_pixel


def frame_size(camera: CameraConfig) -> tuple[int, int] | None:
    """(width, height) in pixels of the camera's upright source frames when its configuration says it: its
    ``privacy_masks_reference_size``, else a ``synthetic://`` source's ``w`` and ``h``; None for files and live
    streams without a reference size (their size is known only once opened)."""
    if camera.privacy_masks_reference_size is not None:
        return tuple(camera.privacy_masks_reference_size)  # type: ignore[return-value]
    if camera.kind == "synthetic":
        params = parse_synthetic_url(camera.source)
        return params.w, params.h
    return None


def published_size(camera: CameraConfig, source: tuple[int, int]) -> tuple[int, int]:
    """Size of the frames the grabber publishes for ``source``-sized frames: scaled to the camera's ``width``,
    aspect kept, never upscaled (the rule of :mod:`vigie.grabber.source_base`)."""
    w, h = source
    return (w, h) if w <= camera.width else (camera.width, max(1, round(h * camera.width / w)))


def _zones(section: object) -> list[tuple[int, str, object]]:
    """``(index, name, polygon)`` of the zones of one analytics section (its shape checked elsewhere)."""
    zones = section.get("zones") if isinstance(section, Mapping) else None
    return [(k, str(zone.get("name", f"zones[{k}]")), zone.get("polygon"))
            for k, zone in enumerate(zones if isinstance(zones, list) else []) if isinstance(zone, Mapping)]


def frame_problems(text: str, cameras: CamerasFile, *, zones: bool = False) -> list[ConfigProblem]:
    """Privacy masks (and with ``zones``, analytics zones) that cover no pixel of their camera's frames (wholly
    outside them) where the configuration gives the frame size (:func:`frame_size`), located in ``text`` at the
    polygon. Masks are in pixels of the source frame, zones in pixels of the published frame
    (:func:`published_size`). Masks with a reference size are checked by :class:`CameraConfig` itself."""
    issues = []
    for i, camera in enumerate(cameras.cameras):
        size = frame_size(camera)
        if size is None:
            continue
        if camera.privacy_masks_reference_size is None:
            for j, (mask, name) in enumerate(zip(camera.privacy_masks, camera.mask_names())):
                if not covers_any_pixel(mask, size):
                    issues.append((("cameras", i, "privacy_masks", j, "polygon"), (
                        f"camera {camera.id}: privacy mask {name!r} covers no pixel of its {size[0]}x{size[1]} "
                        "frames (wholly outside them): it would hide nothing; check its coordinates (pixels, "
                        "origin top-left)")))
        out = published_size(camera, size)
        for kind, section in (camera.analytics or {}).items() if zones else ():
            for k, name, polygon in _zones(section):
                try:
                    covered = covers_any_pixel(polygon, out)
                except (ValueError, TypeError, IndexError):
                    continue  # a malformed zone: the analytics check reports it
                if not covered:
                    issues.append((("cameras", i, "analytics", kind, "zones", k, "polygon"), (
                        f"camera {camera.id}: {kind} zone {name!r} covers no pixel of its {out[0]}x{out[1]} "
                        "published frames (wholly outside them): it would watch nothing; zones are in pixels of "
                        "the published frame (the source scaled to the camera's width)")))
    return locate_problems(text, issues) if issues else []


def file_of(source: str, base: Path) -> str:
    """The path the grabber opens for a file source: ``file://`` stripped; a relative plain path from ``base``."""
    if source.startswith("file://"):
        return source[len("file://"):]
    return source if os.path.isabs(source) else str(base / source)


def file_problems(text: str, cameras: CamerasFile, base: Path) -> list[ConfigProblem]:
    """File sources (paths or ``file://`` URLs; relative paths from ``base``, the cameras file's folder) that do
    not exist here and now, located in ``text`` at the camera's ``source``."""
    issues = []
    for i, camera in enumerate(cameras.cameras):
        if camera.kind == "file" and not os.path.exists(path := file_of(camera.source, base)):
            shown = path if path == camera.source else f"{path} (source: {camera.source})"
            issues.append((("cameras", i, "source"), f"camera {camera.id}: file not found: {shown}"))
    return locate_problems(text, issues) if issues else []
