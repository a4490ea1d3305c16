"""What the console draws on a snapshot: the camera's zones and allowed headings from the cameras file
(``GET /api/cameras/{id}/geometry``, 404 without the file), and a snapshot that follows the incident's
snapshot frame when the correlator changes it."""

from __future__ import annotations

import asyncio

import pytest

from tests.station_console import publish_frame, running_station, wait_for_incident
from tests.station_support import add_user_async, console_http, incident, login, publish
from vigie.core.authorisations import authorise_cameras
from vigie.core.cameras import load_cameras
from vigie.core.topics import Topics
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
    assert one == {"cameraId": "cam-1", "headings": [], "zones": [
        {"kind": "intrusion", "index": 0, "name": "rails", "polygon": [[10, 10], [20, 10], [20, 20], [10, 20]]},
        {"kind": "wrong_way", "index": 0, "name": "exit", "polygon": [[0, 0], [100, 0], [100, 50]],
         "headingDeg": 90.0, "toleranceDeg": 30.0}]}
    assert camera_geometry(cameras, "cam-2") == {
        "cameraId": "cam-2", "zones": [], "headings": [{"kind": "wrong_way", "headingDeg": 180.0, "toleranceDeg": None}]}
    assert camera_geometry(cameras, "cam-9") is None


@pytest.mark.broker
async def test_geometry_route_and_a_snapshot_that_follows_its_frame(kafka, tmp_path) -> None:
    """With the cameras file the route answers the camera's geometry (404 for another camera); the snapshot
    of an incident whose snapshot frame changed is the new frame, not the one cached."""
    path = tmp_path / "cameras.yaml"
    path.write_text(authorise_cameras(CAMERAS))
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "agent7", "operator", "main")
    alerts = Topics(kafka.namespace).alerts("main")
    first = incident(1, cameras=10)
    first.snapshot.CopyFrom(await publish_frame(kafka, "cam-1", b"\xff\xd8first\xff\xd9"))
    await publish(kafka, alerts, [first])
    async with running_station(kafka, db_url, cameras_file=str(path)) as (station, base), console_http() as http:
        await wait_for_incident(station, first.id)
        await login(http, base, "agent7")
        async with http.get(f"{base}/api/cameras/cam-1/geometry") as response:
            assert response.status == 200 and (await response.json())["zones"][1]["headingDeg"] == 90.0
        async with http.get(f"{base}/api/cameras/cam-9/geometry") as response:
            assert response.status == 404
        snapshot = f"{base}/api/incidents/{first.id}/snapshot.jpg"
        async with http.get(snapshot) as response:
            assert await response.read() == b"\xff\xd8first\xff\xd9"
        second = incident(1, revision=2, cameras=10)
        second.snapshot.CopyFrom(await publish_frame(kafka, "cam-1", b"\xff\xd8second\xff\xd9"))
        await publish(kafka, alerts, [second])
        while station.incidents.get(first.id).revision < 2:
            await asyncio.sleep(0.05)
        async with http.get(snapshot) as response:
            assert await response.read() == b"\xff\xd8second\xff\xd9"


@pytest.mark.broker
async def test_without_a_cameras_file_there_is_no_geometry(kafka, tmp_path) -> None:
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "agent7", "operator", "main")
    async with running_station(kafka, db_url) as (_, base), console_http() as http:
        await login(http, base, "agent7")
        async with http.get(f"{base}/api/cameras/cam-1/geometry") as response:
            assert response.status == 404 and "cameras file" in await response.text()
