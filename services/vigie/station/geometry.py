"""A camera's analytics geometry for the console: the zones and allowed headings of its cameras file section.

``GET /api/cameras/{id}/geometry`` (operators and supervisors of the station) answers, when the station
was given the cameras file (``StationSettings.cameras_file``)::

    {"cameraId": "gare-2",
     "zones": [{"kind": "wrong_way", "index": 0, "name": "exit", "polygon": [[x, y], ...],
                "headingDeg": 90.0, "toleranceDeg": 30.0}, ...],
     "headings": [{"kind": "wrong_way", "headingDeg": 0.0, "toleranceDeg": 45.0}]}

``zones`` are every zone of every analytic configured on the camera, in frame pixels of the published
frames (the regions' space), ``index`` their position in the analytic's list (the ``zone`` of its
incidents); ``headingDeg`` (0 = rightwards, 90 = downwards) only for directed zones. ``headings`` are
the whole-frame allowed headings of analytics without zones (wrong way). The console draws them on
the snapshot. Without a cameras file the answer is ``{"cameraId": ..., "zones": [], "headings": [],
"configured": false}`` (nothing to draw, and no failed request in the browser's console); 404 when the file
does not list the camera. Read-only; the file is read once at start-up
(:meth:`vigie.station.app.StationService.prepare`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from vigie.core.cameras import CamerasFile

#: Analytics that judge a direction: their default whole-frame heading when no zone is given (degrees).
WHOLE_FRAME_HEADING = {"wrong_way": 0.0}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _polygon(value: Any) -> list[list[float]] | None:
    """``[[x, y], ...]`` of at least 3 numeric vertices, else None (the detector refuses such a zone anyway)."""
    if not isinstance(value, (list, tuple)) or len(value) < 3:
        return None
    points = []
    for vertex in value:
        if not isinstance(vertex, (list, tuple)) or len(vertex) != 2:
            return None
        x, y = _number(vertex[0]), _number(vertex[1])
        if x is None or y is None:
            return None
        points.append([x, y])
    return points


def camera_geometry(cameras: CamerasFile, camera_id: str) -> dict[str, Any] | None:
    """The geometry of ``camera_id`` (shape in the module's docstring), None when the file does not list it."""
    camera = next((c for c in cameras.cameras if c.id == camera_id), None)
    if camera is None:
        return None
    zones: list[dict[str, Any]] = []
    headings: list[dict[str, Any]] = []
    for kind, settings in sorted((camera.analytics or {}).items()):
        if not isinstance(settings, Mapping):
            continue
        listed = settings.get("zones") if isinstance(settings.get("zones"), list) else []
        for index, zone in enumerate(listed):
            polygon = _polygon(zone.get("polygon")) if isinstance(zone, Mapping) else None
            if polygon is None:
                continue
            item: dict[str, Any] = {"kind": kind, "index": index, "name": str(zone.get("name", index)),
                                    "polygon": polygon}
            heading = _number(zone.get("heading_deg"))
            if heading is not None:
                item.update(headingDeg=heading, toleranceDeg=_number(zone.get("tolerance_deg")))
            zones.append(item)
        if not listed and kind in WHOLE_FRAME_HEADING:
            heading = _number(settings.get("heading_deg"))
            headings.append({"kind": kind, "headingDeg": WHOLE_FRAME_HEADING[kind] if heading is None else heading,
                             "toleranceDeg": _number(settings.get("tolerance_deg"))})
    return {"cameraId": camera.id, "zones": zones, "headings": headings, "configured": True}


def geometry_handler(cameras: Callable[[], CamerasFile | None]) -> Callable[[web.Request], Any]:
    """The ``GET /api/cameras/{id}/geometry`` handler over the station's cameras file (``cameras()``, None
    without one)."""

    async def handle(request: web.Request) -> web.Response:
        loaded = cameras()
        if loaded is None:
            return web.json_response({"cameraId": request.match_info["id"], "zones": [], "headings": [],
                                      "configured": False})
        geometry = camera_geometry(loaded, request.match_info["id"])
        if geometry is None:
            raise web.HTTPNotFound(text="no such camera in the station's cameras file")
        return web.json_response(geometry)

    return handle
