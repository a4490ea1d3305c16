"""A camera received from a WHEP endpoint (WebRTC, aiortc): the grabber publishes its frames, privacy mask
blacked out, like any other source's; it reconnects when the endpoint drops the session; wrong credentials
put the camera in the 'unauthorised' state without a password in its error; the grabber deletes its WHEP session when it stops."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from tests.clips import data_path
from tests.stack import consume, health, service
from tests.whep_server import WhepServer
from vigie.core.authorisations import authorise_cameras
from vigie.core.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.data]
SECRET = "Whep-S3cret-9"


def test_a_whep_camera_is_published_masked_and_wrong_credentials_are_unauthorised(kafka, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    clip = data_path("pets2009_s2l1_view001", "pets2009_s2l1_view001_480x360.avi")
    monkeypatch.setenv("VIGIE_TEST_WHEP_PASSWORD", SECRET)
    monkeypatch.setenv("VIGIE_TEST_WHEP_WRONG", "not-" + SECRET)
    with WhepServer(clip, user="viewer", password=SECRET) as server:
        cameras = tmp_path / "cameras.yaml"
        cameras.write_text(authorise_cameras(
            "cameras:\n"
            f"  - id: whep-good\n    source: {server.url}\n    fps: 5\n"
            "    credentials: {username: viewer, password_env: VIGIE_TEST_WHEP_PASSWORD}\n"
            "    privacy_masks: [{name: corner, polygon: [[0, 0], [200, 0], [200, 150], [0, 150]]}]\n"
            f"  - id: whep-wrong\n    source: {server.url}\n    timeout_s: 2\n"
            "    credentials: {username: viewer, password_env: VIGIE_TEST_WHEP_WRONG}\n"
            "    reconnect: {unauthorised_s: 1, jitter: 0}\n"))
        topic = Topics(kafka.namespace).frames
        with service(kafka, "grabber", "--cameras", str(cameras), log_dir=tmp_path) as (_, port):
            records = consume(kafka, topic.name, lambda rs: len(rs) >= 10, timeout_s=30)
            deadline = time.monotonic() + 15
            while (cams := health(port)["cameras"])["whep-wrong"]["state"] != "unauthorised":
                assert time.monotonic() < deadline, cams
                time.sleep(0.3)
            server.drop()  # the endpoint restarts: the camera reconnects
            while (good := health(port)["cameras"]["whep-good"])["connects"] < 2:
                assert time.monotonic() < deadline, good
                time.sleep(0.3)
        assert server.answered >= 2 and server.refused >= 1 and server.deleted >= 1
    frames = [topic.decode(r.value) for r in records]
    assert {f.camera_id for f in frames} == {"whep-good"}
    assert all(f.privacy_masks == ["corner"] and (f.width, f.height) == (480, 360) for f in frames)
    image = simplejpeg.decode_jpeg(frames[-1].data, colorspace="RGB")
    assert image[:142, :192].max() < 20  # blacked out (JPEG ringing at its edge allowed)
    assert image[200:, 250:].mean() > 40  # the street is there
    captures = [f.capture_ns for f in frames]
    assert captures == sorted(captures) and (captures[-1] - captures[0]) / 1e9 > 0.8  # paced live, ~5 fps
    assert good["reconnects"] >= 1 and "stream ended" in good["last_error"], good
    wrong = cams["whep-wrong"]
    assert "unauthorised" in wrong["last_error"] and "401" in wrong["last_error"], wrong
    assert SECRET not in str(cams)
