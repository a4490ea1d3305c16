"""Camera passwords never leave the grabber: a real grabber process against a real RTSP server and an
MJPEG server that ask for a password (with characters that URLs must encode), given in the URL, from an
environment variable or from a file, and wrong ones (401); then every output is searched for the
passwords, as written, percent-encoded and JSON-escaped. `vigie validate` names a missing password
variable or file with its camera, file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, quote_plus

import pydantic
import pytest

from tests.clips import DATA
from tests.stack import consume, health, service
from tests.support.mjpeg_server import MjpegServer
from vigie.core.authorisations import authorise_cameras
from vigie.chaos import rtsp_server as rtsp
from vigie.core.cameras import CameraConfig
from vigie.core.secrets import redact, register_url_password
from vigie.core.topics import Topics

CLIP = DATA / "aboda_video4" / "video4.avi"
PASSWORD = "Cam p@ss/7%e3:x"  # a space, '@', '/', '%' and ':': every one must be percent-encoded in a URL
WRONG = "Wrong#pw 4b1?"
ENV = "VIGIE_TEST_CAMERA_PASSWORD"


def spellings(secret: str) -> set[str]:
    """The ways a password may be written out: as is, percent-encoded, form-encoded, JSON-escaped."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


def test_redaction_covers_urls_reprs_and_errors() -> None:
    """Defects: a password with '/' or a space escaped the URL pattern, the repr of a camera config and
    the text of its validation errors printed the source with its password."""
    url = "rtsp://admin:Odd pa/ss@10.0.0.7/stream"  # hand-written, unencoded
    register_url_password(url)
    for text in (url, "av error: password Odd pa/ss refused", json.dumps({"e": "Odd pa/ss"})):
        assert "Odd pa/ss" not in redact(text) and "***" in redact(text)
    camera = CameraConfig(id="c", source="rtsp://admin:Repr%2Fpw9@10.0.0.7/s")
    for text in (repr(camera), str(camera), repr([camera])):
        assert not any(spelling in text for spelling in spellings("Repr/pw9")), text
    with pytest.raises(pydantic.ValidationError) as caught:
        CameraConfig(id="c", source="rtsp://admin:Err%2Fpw9@10.0.0.7/s", fps=99)
    assert "Err%2Fpw9" not in str(caught.value) and "Err/pw9" not in str(caught.value)
    with pytest.raises(pydantic.ValidationError, match="already holds a user"):
        CameraConfig(id="c", source="rtsp://admin@h/s", credentials={"username": "u", "password_env": ENV})
    with pytest.raises(pydantic.ValidationError, match="not file"):
        CameraConfig(id="c", source="clip.mp4", credentials={"username": "u", "password_file": "/run/secrets/x"})


def test_validate_names_missing_password_variable_and_file(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras(
        "cameras:\n"
        "  - id: gate-1\n"
        "    source: rtsp://10.0.0.1/s\n"
        f"    credentials: {{username: viewer, password_env: {ENV}_UNSET}}\n"
        "  - id: gate-2\n"
        "    source: http://10.0.0.2/video.mjpg\n"
        "    credentials:\n"
        "      username: viewer\n"
        f"      password_file: {tmp_path / 'absent'}\n"
        "  - id: gate-3\n"
        "    source: rtsp://10.0.0.3/s\n"
        f"    credentials: {{username: viewer, password_file: {tmp_path / 'present'}}}\n"))
    (tmp_path / "present").write_text("Present-pw-1\n")
    done = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != f"{ENV}_UNSET"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"{cameras}:7: cameras[0].credentials.password_env: camera gate-1: environment variable "
            f"{ENV}_UNSET is not set or empty") in done.stderr
    assert (f"{cameras}:13: cameras[1].credentials.password_file: camera gate-2: cannot read secret file "
            f"{tmp_path / 'absent'}") in done.stderr
    assert "gate-3" not in done.stderr and "Present-pw-1" not in done.stderr + done.stdout


@pytest.mark.broker
@pytest.mark.skipif(not CLIP.exists() or rtsp.rtsp_server_unavailable() is not None,
                    reason=f"RTSP server or clip unavailable: {rtsp.rtsp_server_unavailable()}")
def test_grabber_leaks_no_camera_password(kafka, tmp_path: Path) -> None:
    secret_file = tmp_path / "cam-file.secret"
    secret_file.write_text(PASSWORD + "\n")
    secret_file.chmod(0o600)
    mjpeg = MjpegServer(["good"] * 5, fps=10, then="repeat", auth=("viewer", PASSWORD))
    with rtsp.RtspServer(CLIP, auth=f"viewer:{PASSWORD}", repeat=5) as server, mjpeg:
        host = f"127.0.0.1:{server.port}/{server.name}"
        cameras = {
            "in-url": f"source: rtsp://viewer:{quote(PASSWORD, safe='')}@{host}",
            "from-env": f"source: rtsp://{host}\n    credentials: {{username: viewer, password_env: {ENV}}}",
            "from-file": f"source: rtsp://{host}\n    credentials: {{username: viewer, password_file: '{secret_file}'}}",
            "refused": f"source: rtsp://viewer:{quote(WRONG, safe='')}@{host}",
            "mjpeg-file": f"source: {mjpeg.url()}\n    credentials: {{username: viewer, password_file: '{secret_file}'}}",
            "mjpeg-refused": f"source: {mjpeg.url('viewer', quote(WRONG, safe=''))}",
            "no-file": f"source: rtsp://{host}\n    credentials: {{username: viewer, password_file: "
                       f"'{tmp_path / 'absent.secret'}'}}",
        }
        path = tmp_path / "cameras.yaml"
        path.write_text(authorise_cameras("cameras:\n" + "".join(
            f"  - id: {camera_id}\n    {source}\n    fps: 5\n    timeout_s: 2\n"
            "    reconnect: {initial_s: 0.2, max_s: 1, unauthorised_s: 1}\n" for camera_id, source in cameras.items())))
        os.environ[ENV] = PASSWORD  # the grabber process inherits it
        try:
            with service(kafka, "grabber", "--cameras", str(path), log_dir=tmp_path) as (proc, port):
                deadline = time.monotonic() + 40
                while True:
                    cams = health(port)["cameras"]
                    if (all(cams[c]["captured"] >= 3 for c in ("in-url", "from-env", "from-file", "mjpeg-file"))
                            and all(cams[c]["auth_failures"] >= 2 for c in ("refused", "mjpeg-refused"))
                            and cams["no-file"]["reconnects"] >= 2):
                        break
                    assert time.monotonic() < deadline, cams
                    time.sleep(0.3)
                time.sleep(1.2)  # metrics follow the pipelines every second
                outputs = {p: urllib.request.urlopen(f"http://127.0.0.1:{port}{p}", timeout=5).read().decode()
                           for p in ("/healthz", "/metrics")}
        finally:
            del os.environ[ENV]
    assert proc.returncode == 0
    outputs["log"] = (tmp_path / "grabber.log").read_text()
    topics = Topics(kafka.namespace)
    for topic in (topics.audit, topics.deadletter, topics.camera_status):  # records a service writes about a camera
        records = consume(kafka, topic.name, lambda rs: False, timeout_s=1.5)
        outputs[topic.name] = "\n".join(repr(r.key) + repr(r.value) for r in records)
    assert "from-file" in outputs[topics.audit.name]  # the register's entries on the cameras were searched
    cams = json.loads(outputs["/healthz"])["cameras"]
    for camera_id in ("refused", "mjpeg-refused"):
        assert cams[camera_id]["state"] == "unauthorised" and "401" in cams[camera_id]["error"], cams[camera_id]
    assert cams["no-file"]["state"] == "reconnecting" and "cannot read secret file" in cams["no-file"]["error"]
    assert "viewer:***@127.0.0.1" in outputs["log"]  # the URLs are logged, redacted
    for where, text in outputs.items():
        for secret in (PASSWORD, WRONG):
            for spelling in spellings(secret):
                assert spelling not in text, f"{secret!r} as {spelling!r} in {where}"
