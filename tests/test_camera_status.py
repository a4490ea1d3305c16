"""Camera health in the console, real broker and processes: a grabber publishes its cameras' statuses to
``camera-status``, the station shows them at ``/api/cameras`` and as ``camera`` events, worst first; when
the grabber is gone its cameras turn stale after three heartbeats."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.browser import chromium_page
from tests.clips import data_path
from tests.stack import consume, free_port, service
from tests.station_support import NS, browser_login, get_json, logged_in_station, metric, publish
from vigie.contracts.v1 import CameraStatus
from vigie.core.authorisations import authorise_cameras
from vigie.core.topics import Topics
from vigie.grabber.status import StatusBeacon

pytestmark = pytest.mark.broker

PASSWORD = "Pw-of-the-gate-camera-7"
HEARTBEAT_S = 0.5


def _cameras_until(port: int, cookie: str, done, timeout_s: float = 40.0) -> list[dict]:  # noqa: ANN001
    """``/api/cameras``'s list once ``done(by_id)`` holds (polled), else AssertionError with the last list."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get_json(port, "/api/cameras", cookie)
        assert status == 200, body
        if done({c["cameraId"]: c for c in body["cameras"]}):
            return body["cameras"]
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def _camera_events(stream, until) -> list[dict]:  # noqa: ANN001
    """``camera`` events read from an open ``/api/events`` response until ``until(events)`` holds."""
    events, event = [], ""
    while not until(events):
        line = stream.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "camera":
            events.append(json.loads(line[5:]))
    return events


def test_console_shows_streaming_failing_and_stale_cameras(kafka, tmp_path: Path) -> None:
    clip = data_path("aboda_video4", "video4.avi")
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras(
        "cameras:\n"
        f"  - id: good\n    source: {clip}\n    fps: 5\n    loop: true\n"
        f"  - id: gate\n    source: rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/cam\n    timeout_s: 1\n"
        "    reconnect: {initial_s: 0.2, max_s: 1}\n"
        f"  - id: gone\n    source: {tmp_path / 'no-such-clip.avi'}\n"))
    with logged_in_station(kafka, log_dir=tmp_path) as (station, port, cookie):
        with service(kafka, "grabber", "--cameras", str(cameras), "--heartbeat-s", str(HEARTBEAT_S),
                     log_dir=tmp_path):
            shown = _cameras_until(port, cookie, lambda c: len(c) == 3 and c["good"]["state"] == "streaming"
                                   and c["gate"]["state"] == "reconnecting" and c["gone"]["state"] == "failed")
            assert [c["cameraId"] for c in shown] == ["gone", "gate", "good"]  # worst first
            by_id = {c["cameraId"]: c for c in shown}
            assert not any(c["stale"] for c in shown)
            assert "file not found" in by_id["gone"]["error"] and by_id["gate"]["error"]
            assert by_id["good"]["error"] == "" and by_id["good"]["lastCaptureNs"] > 0
            assert 0 < by_id["good"]["sinceNs"] <= by_id["good"]["updatedNs"]
            first_update = by_id["good"]["updatedNs"]
            _cameras_until(port, cookie, lambda c: c["good"]["updatedNs"] > first_update)  # the heartbeat
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/events", headers={"Cookie": cookie})
            stream = urllib.request.urlopen(request, timeout=30)
            connected = _camera_events(stream, lambda events: len(events) == 3)  # the whole list on connecting
            assert {e["cameraId"]: e["stale"] for e in connected} == {"good": False, "gate": False, "gone": False}
        stopped = time.monotonic()
        with stream:
            stale = _camera_events(stream, lambda events: {e["cameraId"] for e in events if e["stale"]} == {
                "good", "gate", "gone"})
        took_s = time.monotonic() - stopped
        assert took_s < 20, took_s
        assert {e["cameraId"]: e["state"] for e in stale if e["stale"]} == {
            "good": "streaming", "gate": "reconnecting", "gone": "failed"}  # the last word, but blind
        shown = _cameras_until(port, cookie, lambda c: all(i["stale"] for i in c.values()), timeout_s=5)
        api_text = json.dumps(shown)
        assert metric(port, "vigie_station_cameras", 'state="stale"') == 3
        assert metric(port, "vigie_station_cameras", 'state="streaming"') == 0
    records = consume(kafka, Topics(kafka.namespace).camera_status.name, lambda rs: False, timeout_s=1.5)
    assert {r.key for r in records} == {b"good", b"gate", b"gone"}
    assert len([r for r in records if r.key == b"good"]) >= 3  # on change and every heartbeat
    for where, text in (("topic", b"".join(r.value for r in records)), ("api", api_text.encode())):
        assert PASSWORD.encode() not in text, where
    assert b"viewer:***@127.0.0.1" in b"".join(r.value for r in records if r.key == b"gate")


def _publish(kafka, statuses: list[CameraStatus]) -> None:  # noqa: ANN001
    """Publish ``statuses`` to camera-status as a grabber would (in a thread: Playwright holds this one's loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish(kafka, Topics(kafka.namespace).camera_status, statuses)).result()


def _chips(page, expected: list[str], timeout_s: float = 20.0) -> list[str]:  # noqa: ANN001
    """The console's camera chips (text and blind/seeing), polled until they read ``expected``."""
    deadline = time.monotonic() + timeout_s
    while True:
        chips = page.locator("#cameras li")
        texts = [f"{text} [{'blind' if 'blind' in cls else 'seeing'}]"
                 for text, cls in zip(chips.all_inner_texts(), [chips.nth(i).get_attribute("class")
                                                                for i in range(chips.count())])]
        if texts == expected:
            return texts
        assert time.monotonic() < deadline, texts
        time.sleep(0.2)


def test_console_lists_blind_cameras_first_and_live(kafka, tmp_path: Path) -> None:
    """In the browser: the camera chips, worst first, the blind ones marked, the error in the tooltip; a camera
    whose grabber falls silent turns blind by itself (a `camera` event), without reloading the page. The station
    has a cameras file: it shows those cameras only, one that never reported as stale."""
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n" + "".join(
        f"  - id: {camera_id}\n    source: synthetic://scene\n" for camera_id in ("north", "gate", "quiet"))))
    now = time.time_ns()
    statuses = [
        CameraStatus(camera_id="north", state="streaming", since_ns=now - 60 * NS, updated_ns=now, heartbeat_s=600,
                     last_capture_ns=now, grabber="host-a:12"),
        CameraStatus(camera_id="gate", state="unauthorised", error="rtsp://viewer:***@10.0.0.7/cam: 401",
                     since_ns=now - 30 * NS, updated_ns=now, heartbeat_s=600, grabber="host-a:12"),
        CameraStatus(camera_id="old", state="streaming", since_ns=now - 7200 * NS, updated_ns=now - 3600 * NS,
                     heartbeat_s=10, grabber="host-b:7"),  # its grabber went an hour ago
    ]
    _publish(kafka, statuses)
    with (logged_in_station(kafka, "--cameras", str(cameras), log_dir=tmp_path) as (_, port, _cookie),
          chromium_page() as page):
        browser_login(page, f"http://127.0.0.1:{port}", "op-main")
        _chips(page, ["quiet: never reported [blind]", "gate: unauthorised [blind]",
                      "north: streaming [seeing]"])  # not "old": another station's camera
        assert "401" in page.locator("#cameras li[data-camera=gate]").get_attribute("title")
        assert page.locator("#cameras-summary").inner_text() == "3 shown, 2 blind"
        _publish(kafka, [CameraStatus(camera_id="north", state="streaming", since_ns=now - 60 * NS,
                                      updated_ns=time.time_ns(), heartbeat_s=0.5)])
        _chips(page, ["quiet: never reported [blind]", "north: no news (grabber gone) [blind]",
                      "gate: unauthorised [blind]"])  # stale ones first


async def test_a_status_not_published_is_counted_and_sent_at_a_later_tick(kafka) -> None:
    """Publishing never raises nor waits in the grabber's loop: with no broker at the address, each round fails,
    is counted and stays due; the statuses go out at the first tick that reaches a broker."""
    failures: list[str] = []
    topic = Topics(kafka.namespace).camera_status
    nowhere = kafka.model_copy(update={"bootstrap": f"127.0.0.1:{free_port()}"})
    beacon = StatusBeacon(nowhere, topic, heartbeat_s=60, on_failed=failures.append)
    beacon.observe("cam", "failed", f"rtsp://viewer:{PASSWORD}@10.0.0.9/cam: refused", 0)
    for _ in range(2):
        beacon.tick()  # returns at once
        await beacon.settle(30)
    assert beacon.failures == 2 and len(failures) == 2
    await beacon.close()
    beacon.settings = kafka  # the broker is back
    beacon.tick()
    await beacon.settle(30)
    await beacon.close()
    assert beacon.failures == 2
    records = await asyncio.to_thread(consume, kafka, topic.name, lambda rs: len(rs) >= 1, 20)
    [status] = [topic.decode(r.value) for r in records]
    assert (status.camera_id, status.state, status.heartbeat_s) == ("cam", "failed", 60)
    assert status.error == "rtsp://viewer:***@10.0.0.9/cam: refused" and status.since_ns <= status.updated_ns
