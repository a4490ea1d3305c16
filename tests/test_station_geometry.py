"""What the console draws on a snapshot: the camera's zones and allowed headings from the cameras file
(``GET /api/cameras/{id}/geometry``; nothing without the file)."""

from __future__ import annotations

import pytest

from tests.station_console import running_station
from tests.station_support import add_user_async, console_http, login
from vigie.core.authorisations import authorise_cameras
from vigie.core.cameras import load_cameras
from vigie.station.geometry import camera_geometry

CAMERAS = """cameras:
  - id: cam-1
    source: synthetic://scene
    analytics:
      wrong_way:
        zones:
          - {name: exit, polygon: [[0, 0], [100, 0], [100, 50]], heading_deg: 90, tolerance_deg: 30}
      intrusion:
        zones:
          - {name: rails, polygon: [[10, 10], [20, 10], [20, 20], [10, 20]]}
  - id: cam-2
    source: synthetic://scene
    analytics: {wrong_way: {heading_deg: 180}, fire: false}
"""


def test_geometry_lists_zones_with_their_index_and_headings(tmp_path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(authorise_cameras(CAMERAS))
    cameras = load_cameras(path)
    one = camera_geometry(cameras, "cam-1")
    assert one == {"cameraId": "cam-1", "headings": [], "configured": True, "zones": [
        {"kind": "intrusion", "index": 0, "name": "rails", "polygon": [[10, 10], [20, 10], [20, 20], [10, 20]]},
        {"kind": "wrong_way", "index": 0, "name": "exit", "polygon": [[0, 0], [100, 0], [100, 50]],
         "headingDeg": 90.0, "toleranceDeg": 30.0}]}
    assert camera_geometry(cameras, "cam-2") == {"cameraId": "cam-2", "zones": [], "configured": True, "headings": [
        {"kind": "wrong_way", "headingDeg": 180.0, "toleranceDeg": None}]}
    assert camera_geometry(cameras, "cam-9") is None


@pytest.mark.broker
async def test_geometry_route_with_and_without_the_cameras_file(kafka, tmp_path) -> None:
    """With the cameras file the route answers the camera's geometry (404 for a camera it does not list);
    without it, nothing to draw (and no failed request in the browser)."""
    path = tmp_path / "cameras.yaml"
    path.write_text(authorise_cameras(CAMERAS))
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "agent7", "operator", "main")
    for cameras_file in (str(path), None):
        async with running_station(kafka, db_url, cameras_file=cameras_file) as (_, base), console_http() as http:
            await login(http, base, "agent7")
            async with http.get(f"{base}/api/cameras/cam-1/geometry") as response:
                body = await response.json()
            async with http.get(f"{base}/api/cameras/cam-9/geometry") as response:
                missing = response.status
            if cameras_file:
                assert body["configured"] and body["zones"][1]["headingDeg"] == 90.0 and missing == 404
            else:
                assert body == {"cameraId": "cam-1", "zones": [], "headings": [], "configured": False}
