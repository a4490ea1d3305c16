"""Cameras spread over grabber replicas by Kafka: ``vigie cameras apply`` and ``vigie grabber --cameras-topic``,
on the real broker with real grabber processes and synthetic cameras.

Every frame record names the grabber that published it (header ``grabber``: ``host:pid``), so the frames
topic itself says which replica ran which camera, and when.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2

from tests.stack import consume, health, produce, service, terminate, wait_until
from vigie.cli import main
from vigie.core.authorisations import authorise_cameras
from vigie.core.camera_records import records_of
from vigie.core.cameras import CamerasFile
from vigie.core.config import validate_yaml_text
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.topics import CAMERAS_PARTITIONS, Topics
from vigie.grabber.cameras_cli import apply_file, read_cameras

pytestmark = pytest.mark.broker

#: Generous bound on a handover; the measured figures are printed.
HANDOVER_BOUND_S = 60.0


def one_camera_per_partition() -> list[str]:
    """Camera ids whose keys land on every partition of the cameras topic once (Kafka's default partitioner)."""
    ids: dict[int, str] = {}
    k = 0
    while len(ids) < CAMERAS_PARTITIONS:
        camera_id = f"cam-{k:02d}"
        ids.setdefault((murmur2(camera_id.encode()) & 0x7FFFFFFF) % CAMERAS_PARTITIONS, camera_id)
        k += 1
    return sorted(ids.values())


def cameras_yaml(ids: list[str], fps: int = 2, extra: str = "") -> str:
    """A cameras file of small synthetic cameras (160x120 at ``fps``), every one under the drill authorisation."""
    return authorise_cameras("cameras:\n" + "".join(
        f"  - id: {c}\n    source: synthetic://scene?w=160&h=120&fps=4\n    fps: {fps}\n    width: 160\n" for c in ids)
        + extra)


def apply_cli(kafka, capsys, path: Path, *extra: str) -> tuple[int, str, str]:  # noqa: ANN001
    """``vigie cameras apply PATH`` (in this process: the analytics it checks are imported once); returns its exit
    code, what it printed and its errors."""
    code = main(["--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "cameras", "apply", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def held(kafka) -> dict[str, bytes]:  # noqa: ANN001
    return asyncio.run(read_cameras(kafka, Topics(kafka.namespace).cameras))


def test_apply_refuses_an_invalid_file_and_writes_a_valid_one(kafka, tmp_path: Path, capsys) -> None:
    """Nothing is written while any camera is invalid (errors name file, line, field: the grabber's --apply-cameras
    stops on them too); a camera whose source holds a password is refused (the topic keeps references only); a
    valid file writes one record per camera, a second apply only what changed, and --prune tombstones the cameras
    gone from the file."""
    bad = tmp_path / "cameras.yaml"
    bad.write_text(cameras_yaml(["cam-a"]) + "  - id: cam-b\n    authorisation: drill\n    source: synthetic://scene\n"
                   "    fps: 99\n")
    with pytest.raises(ConfigError, match=re.escape(f"{bad}:12: cameras[1].fps: Input should be less than or equal")):
        asyncio.run(apply_file(kafka, str(bad)))  # the child process the grabber runs for --apply-cameras
    secret = tmp_path / "secret.yaml"
    secret.write_text(cameras_yaml(["cam-a"]) + "  - id: cam-c\n    authorisation: drill\n"
                      "    source: rtsp://viewer:hunter2hunter@10.0.0.9/live\n")
    code, out, err = apply_cli(kafka, capsys, secret)
    assert code == 2 and f"{secret}:11: cameras[1].source: camera cam-c: its source holds a password" in err, err
    assert "hunter2hunter" not in out + err
    assert held(kafka) == {}  # nothing written

    good = tmp_path / "good.yaml"
    good.write_text(cameras_yaml(["cam-a", "cam-b", "cam-c"]))
    code, out, err = apply_cli(kafka, capsys, good)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()[:3]] == [["added", c] for c in ("cam-a", "cam-b", "cam-c")]
    topic = Topics(kafka.namespace).cameras
    records = {c: topic.decode(v, c.encode()) for c, v in held(kafka).items()}
    assert set(records) == {"cam-a", "cam-b", "cam-c"}
    assert records["cam-b"].camera.fps == 2 and records["cam-b"].authorisation.id == "drill"

    good.write_text(cameras_yaml(["cam-a"]) + cameras_yaml(["cam-b"], fps=3).split("cameras:\n")[1])
    code, out, err = apply_cli(kafka, capsys, good, "--prune")
    assert code == 0, err
    assert out.splitlines()[:2] == ["changed  cam-b", "removed  cam-c"]
    assert "0 added, 1 changed, 1 removed, 1 unchanged" in out
    records = {c: topic.decode(v, c.encode()) for c, v in held(kafka).items()}
    assert set(records) == {"cam-a", "cam-b"} and records["cam-b"].camera.fps == 3


def test_a_camera_record_is_held_to_the_rules_of_the_file() -> None:
    """What a grabber refuses in a record another client wrote: not JSON, a field out of bounds, a key that is
    not its camera's id, a password in the source, an authorisation that is not the one the camera names."""
    topic = Topics("x.").cameras
    record = records_of(validate_yaml_text(cameras_yaml(["cam-a"]), CamerasFile))["cam-a"]
    assert topic.decode(topic.encode(record), b"cam-a").same_as(record)
    value = json.loads(topic.encode(record))
    cases = {"not a valid camera record: value: Invalid JSON": (b"{not json", b"cam-a"),
             "camera.fps: Input should be less than or equal to 30": (
                 json.dumps({**value, "camera": {**value["camera"], "fps": 99}}).encode(), b"cam-a"),
             "record key 'cam-b' is not its camera's id 'cam-a'": (topic.encode(record), b"cam-b"),
             "its source holds a password": (json.dumps(
                 {**value, "camera": {**value["camera"], "source": "rtsp://u:hunter2hunter@h/s"}}).encode(), b"cam-a"),
             "names authorisation 'drill', the record carries None": (
                 json.dumps({"camera": value["camera"]}).encode(), b"cam-a")}
    for reason, (raw, key) in cases.items():
        with pytest.raises(MalformedMessage, match=re.escape(reason)):
            topic.decode(raw, key)


def _identity(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def _held_cameras(port: int) -> set[str] | None:
    """The cameras a replica runs once its partitions are loaded (None while loading or not answering)."""
    h = health(port)
    if not h or "assignment" not in h or h["assignment"]["loading"]:
        return None
    return set(h["assignment"]["cameras"])


def _frames(kafka, until=lambda rs: False, timeout_s: float = 3.0) -> list:  # noqa: ANN001
    """Every frame record so far: (camera id, publishing grabber, timestamp ms)."""
    records = consume(kafka, Topics(kafka.namespace).frames.name, until, timeout_s=timeout_s)
    return [(r.key.decode(), dict(r.headers).get("grabber", b"").decode(), r.timestamp) for r in records]


def _first_after(frames: list, cameras: set[str], grabber: str, after_ms: int) -> dict[str, int]:
    first: dict[str, int] = {}
    for camera, who, ts in frames:
        if camera in cameras and who == grabber and ts > after_ms:
            first[camera] = min(first.get(camera, ts), ts)
    return first


def _handover(kafka, cameras: set[str], grabber: str, at_s: float) -> float:  # noqa: ANN001
    """Seconds from ``at_s`` until every camera of ``cameras`` had a frame published by ``grabber``."""
    at_ms = int(at_s * 1000)
    frames = _frames(kafka, lambda rs: len(_first_after(
        [(r.key.decode(), dict(r.headers).get("grabber", b"").decode(), r.timestamp) for r in rs],
        cameras, grabber, at_ms)) == len(cameras), timeout_s=HANDOVER_BOUND_S)
    first = _first_after(frames, cameras, grabber, at_ms)
    assert set(first) == cameras, f"not handed over within {HANDOVER_BOUND_S} s: {sorted(cameras - set(first))}"
    return (max(first.values()) - at_ms) / 1000


def test_replicas_share_the_cameras_and_hand_them_over(kafka, tmp_path: Path) -> None:
    """Two replicas: every camera published by exactly one, the one whose /healthz holds it; a replica stopped
    (SIGTERM) or killed (SIGKILL) hands its cameras to the other, measured; a malformed record is dead-lettered
    with its reason while the replicas go on; a tombstone stops its camera; no camera ever has two publishers
    at once (its publisher changes at most once per membership change of the group)."""
    topics = Topics(kafka.namespace)
    cameras = one_camera_per_partition()
    path = tmp_path / "cameras.yaml"
    path.write_text(cameras_yaml(cameras))
    everything = set(cameras)
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with service(kafka, "grabber", "--cameras-topic", "--apply-cameras", str(path), log_dir=tmp_path) as (a, port_a):
        wait_until("replica a runs every camera", lambda: _held_cameras(port_a) == everything, 30, a)
        with service(kafka, "grabber", "--cameras-topic", log_dir=tmp_path / "b") as (b, port_b):
            def shared() -> bool:
                ha, hb = _held_cameras(port_a), _held_cameras(port_b)
                return ha is not None and hb is not None and ha | hb == everything and not ha & hb and ha and hb
            wait_until("the replicas share the cameras", shared, 30, a, b)
            of_a, of_b = _held_cameras(port_a), _held_cameras(port_b)
            pa, pb = set(health(port_a)["assignment"]["partitions"]), set(health(port_b)["assignment"]["partitions"])
            assert pa | pb == set(range(CAMERAS_PARTITIONS)) and not pa & pb
            start = time.time()
            time.sleep(3.0)
            window = [(c, who) for c, who, ts in _frames(kafka) if start * 1000 < ts < (start + 3.0) * 1000]
            publishers = defaultdict(set)
            for camera, who in window:
                publishers[camera].add(who)
            assert {c: publishers[c] for c in of_a} == {c: {_identity(a)} for c in of_a}
            assert {c: publishers[c] for c in of_b} == {c: {_identity(b)} for c in of_b}
            assert "secret" not in json.dumps(health(port_b))  # /healthz: cameras and partitions, no source
            stopped_at = time.time()
            terminate(b, 45)
            assert b.returncode == 0, (tmp_path / "b" / "grabber.log").read_text()[-2000:]
        graceful = _handover(kafka, of_b, _identity(a), stopped_at)
        print(f"\nhandover after a graceful stop (SIGTERM, leaves the group): {graceful:.1f} s for {len(of_b)} cameras")
        wait_until("replica a runs every camera again", lambda: _held_cameras(port_a) == everything, 30, a)

        joined_at = time.time()
        with service(kafka, "grabber", "--cameras-topic", log_dir=tmp_path / "c") as (c, port_c):
            wait_until("the replicas share the cameras again", lambda: bool(_held_cameras(port_c)), 30, a, c)
            of_c = _held_cameras(port_c)
            killed_at = time.time()
            c.kill()  # SIGKILL: no goodbye, the group notices when its session times out
            c.wait()
        killed = _handover(kafka, of_c, _identity(a), killed_at)
        print(f"handover after SIGKILL (session.timeout 6 s, heartbeat 1 s): {killed:.1f} s for {len(of_c)} cameras")
        assert killed < HANDOVER_BOUND_S

        valid = json.loads(held(kafka)[cameras[0]])
        valid["camera"]["fps"] = 99
        valid["camera"]["id"] = "cam-wrong"
        produce(kafka, topics.cameras.name, [(b"cam-junk", b"{not json"), (b"cam-wrong", json.dumps(valid).encode())])
        letters = consume(kafka, topics.deadletter.name, lambda rs: len(rs) >= 2, timeout_s=20)
        decoded = [topics.deadletter.decode(r.value) for r in letters]
        assert {letter.source_topic for letter in decoded} == {topics.cameras.name}
        reasons = {letter.key.decode(): letter.reason for letter in decoded}
        assert "not a valid camera record" in reasons["cam-junk"]
        assert "camera.fps: Input should be less than or equal to 30" in reasons["cam-wrong"]
        statuses = consume(kafka, topics.camera_status.name,
                           lambda rs: any(r.key == b"cam-wrong" for r in rs), timeout_s=20)
        status = topics.camera_status.decode(next(r.value for r in statuses if r.key == b"cam-wrong"))
        assert status.state == "failed" and "invalid camera record" in status.error
        assert set(health(port_a)["degraded"]["invalid_camera_records"]) == {"cam-junk", "cam-wrong"}

        gone = cameras[1]
        produce(kafka, topics.cameras.name, [(gone.encode(), None)])
        wait_until("the tombstoned camera stops", lambda: _held_cameras(port_a) == everything - {gone}, 20, a)
        stopped_ms = int(time.time() * 1000)
        time.sleep(2.0)
        late = _frames(kafka)
        assert not [ts for camera, _, ts in late if camera == gone and ts > stopped_ms]
        assert {camera for camera, _, ts in late if ts > stopped_ms} == everything - {gone}  # the others go on
        assert a.poll() is None
    assert a.returncode == 0, (tmp_path / "grabber.log").read_text()[-2000:]

    switches = defaultdict(int)
    last: dict[str, str] = {}
    frames = sorted(_frames(kafka), key=lambda f: f[2])
    for camera, who, _ in frames:
        switches[camera] += camera in last and last[camera] != who
        last[camera] = who
    assert max(switches.values()) <= 4, dict(switches)  # b joins, b leaves, c joins, c dies
    kept = defaultdict(list)  # the cameras a kept while c joined: held during the rebalance, then resumed
    for camera, who, ts in frames:
        if camera not in of_c and who == _identity(a) and joined_at * 1000 <= ts <= killed_at * 1000:
            kept[camera].append(ts)
    pause = max(max(later - earlier for earlier, later in zip(ts, ts[1:])) for ts in kept.values()) / 1000
    print(f"longest pause of a camera its replica kept while another joined (hold, resume; 0.5 s between "
          f"frames at 2 fps): {pause:.1f} s")


def test_a_record_on_another_partition_than_its_key_is_ignored(kafka, tmp_path: Path, capsys) -> None:
    """kcat's default partitioner is not Kafka's (murmur2): a record of a camera written to another partition than
    its key's would be run by that partition's replica too. The grabber dead-letters it (the reason names both
    partitions and the kcat option) and goes on with the camera's own record; `cameras list` leaves it out."""
    topics = Topics(kafka.namespace)
    first, second = one_camera_per_partition()[:2]
    path = tmp_path / "cameras.yaml"
    path.write_text(cameras_yaml([first]))
    home = (murmur2(first.encode()) & 0x7FFFFFFF) % CAMERAS_PARTITIONS
    elsewhere = (home + 1) % CAMERAS_PARTITIONS
    with service(kafka, "grabber", "--cameras-topic", "--apply-cameras", str(path), log_dir=tmp_path) as (a, port):
        wait_until("the replica runs the camera", lambda: _held_cameras(port) == {first}, 30, a)
        stray = json.loads(held(kafka)[first])
        stray["camera"]["id"] = second
        produce(kafka, topics.cameras.name, [(first.encode(), None), (second.encode(), json.dumps(stray).encode())],
                partition=elsewhere)  # a tombstone of `first` and a new camera, both on the wrong partition
        letters = consume(kafka, topics.deadletter.name, lambda rs: len(rs) >= 2, timeout_s=20)
        reasons = {r.key.decode(): topics.deadletter.decode(r.value).reason for r in letters}
        assert f"belongs to partition {home}" in reasons[first] and "partitioner=murmur2_random" in reasons[first]
        assert set(reasons) == {first, second}
        assert _held_cameras(port) == {first} and a.poll() is None  # the tombstone did not stop it
        assert set(held(kafka)) == {first}
        assert apply_cli(kafka, capsys, path)[1].splitlines()[-1].endswith("0 added, 0 changed, 0 removed, "
                                                                           f"1 unchanged in {topics.cameras.name}")


def _camera_series(port: int, camera: str) -> list[str]:
    """The lines of the replica's /metrics that name ``camera``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return [line for line in response.read().decode().splitlines() if f'camera="{camera}"' in line]


def test_a_camera_stopped_leaves_no_series_behind(kafka, tmp_path: Path) -> None:
    """A camera the replica no longer runs (removed, or gone to another replica) has no series left on its
    /metrics: a published-frames counter kept constant there would fire VigieCameraNoFrames for a camera that
    streams elsewhere, or no longer exists."""
    topics = Topics(kafka.namespace)
    kept, gone = one_camera_per_partition()[:2]
    path = tmp_path / "cameras.yaml"
    path.write_text(cameras_yaml([kept, gone]))
    with service(kafka, "grabber", "--cameras-topic", "--apply-cameras", str(path), log_dir=tmp_path) as (a, port):
        wait_until("both cameras publish", lambda: any('stage="published"' in s for s in _camera_series(port, gone))
                   and _held_cameras(port) == {kept, gone}, 30, a)
        produce(kafka, topics.cameras.name, [(gone.encode(), None)])
        wait_until("the removed camera stops", lambda: _held_cameras(port) == {kept}, 20, a)
        assert _camera_series(port, gone) == []
        assert any('stage="published"' in s for s in _camera_series(port, kept))
