"""Contracts: generated code is current, every topic round-trips its message, bad bytes are rejected."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigie.contracts.v1 import Anomaly, Frame, Incident, RecordRef, Region
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.settings import MAX_RETENTION_MS
from vigie.core.topics import Topics, TopicSpec

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "services" / "vigie" / "contracts" / "v1"


def test_generated_code_is_current(tmp_path: Path) -> None:
    """`make proto` output equals the committed code: a changed .proto without regeneration fails here."""
    protos = sorted(str(p) for p in (ROOT / "proto" / "vigie" / "contracts" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *protos],
        check=True,
    )
    fresh = tmp_path / "vigie" / "contracts" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in GENERATED.glob("*_pb2.py*")), "generated file set differs"
    stale = [n for n in names if not filecmp.cmp(fresh / n, GENERATED / n, shallow=False)]
    assert not stale, f"stale generated code, run `make proto`: {stale}"


def test_protoc_from_debian_decodes_a_frame(tmp_path: Path) -> None:
    """A control-room client with plain protoc reads our records: the .proto files are the contract."""
    if not shutil.which("protoc"):
        pytest.skip("protoc is not installed (make system-deps-test installs protobuf-compiler)")
    topics = Topics("x.")
    value = topics.frames.encode(Frame(camera_id="cam-1", seq=7, capture_ns=123, width=640, height=360,
                                       encoding=Frame.ENCODING_JPEG, data=b"\xff\xd8", privacy_masks=["win"]))
    out = subprocess.run(
        ["protoc", "-I", str(ROOT / "proto"), "--decode", "vigie.v1.Frame", "vigie/contracts/v1/frame.proto"],
        input=value, capture_output=True, check=True,
    ).stdout.decode()
    assert 'camera_id: "cam-1"' in out and "seq: 7" in out and 'privacy_masks: "win"' in out


def test_topics_round_trip_and_reject_garbage() -> None:
    topics = Topics("ns.")
    anomaly = Anomaly(id="a", camera_id="c", kind="abandoned_object", score=0.9,
                      regions=[Region(x=1, y=2, w=3, h=4)], frame=RecordRef(topic="ns.frames", partition=1, offset=5))
    assert topics.anomalies.decode(topics.anomalies.encode(anomaly)) == anomaly
    assert topics.anomalies.name == "ns.anomalies"
    with pytest.raises(MalformedMessage, match="not a vigie.v1.Anomaly"):
        topics.anomalies.decode(b"\xff\xff\xff\xff garbage")
    with pytest.raises(MalformedMessage, match="tombstone"):
        topics.incidents.decode(None)
    with pytest.raises(TypeError, match="carries Incident"):
        topics.incidents.encode(anomaly)
    assert isinstance(topics.alerts("main").decode(topics.alerts("main").encode(Incident(id="i"))), Incident)


def test_retention_never_exceeds_thirty_days() -> None:
    for topic in Topics().all(["a", "b"]):
        assert topic.spec.retention_ms + topic.spec.segment_ms + 5 * 60_000 <= MAX_RETENTION_MS, topic
    with pytest.raises(ConfigError, match="30 days"):
        TopicSpec("frames", 1, MAX_RETENTION_MS)  # the segment roll would push records past 30 days
    with pytest.raises(ConfigError, match="station id"):
        Topics().alerts("Main Station")
