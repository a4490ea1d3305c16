"""Services tell the register about their own life: started, stopped, cameras configured, streaming, stopped.

Against the real broker: a grabber with one synthetic camera and one RTSP camera whose server is
down (its URL carries a password) runs, then gets SIGTERM; the ``audit`` topic then holds, once
each, the service's start and stop, both cameras' configurations (digest, redacted source), the
synthetic camera starting and stopping to stream, and never the password.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.stack import consume, free_port, service
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import AuditQueue, entry, kind_name
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker
SECRET = "s3cr3t-Pa55"


def _entries(kafka, until) -> list[AuditEntry]:  # noqa: ANN001
    topic = Topics(kafka.namespace).audit
    records = consume(kafka, topic.name, lambda rs: until([topic.decode(r.value) for r in rs]), timeout_s=30)
    assert all(SECRET.encode() not in r.value for r in records)
    return [topic.decode(r.value) for r in records]


def test_grabber_records_its_start_stop_and_cameras(kafka, tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras(
        "cameras:\n"
        "  - id: syn\n    source: synthetic://scene?seed=3&w=320&h=240&fps=10\n    fps: 5\n"
        f"  - id: down\n    source: rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/live\n    timeout_s: 1\n"))

    def kinds(entries: list[AuditEntry]) -> list[tuple[str, str]]:
        return [(kind_name(e.kind), e.camera_id) for e in entries]

    with service(kafka, "grabber", "--cameras", str(cameras), log_dir=tmp_path) as (proc, _):
        _entries(kafka, lambda es: ("camera_started", "syn") in kinds(es))
    assert proc.returncode == 0
    assert SECRET not in (tmp_path / "grabber.log").read_text()
    entries = _entries(kafka, lambda es: ("service_stopped", "") in kinds(es))
    seen = kinds(entries)
    assert sorted(seen) == sorted([("service_started", ""), ("authorisation", ""), ("camera_config", "syn"),
                                   ("camera_config", "down"),
                                   ("camera_started", "syn"), ("camera_stopped", "syn"), ("service_stopped", "")])
    assert len({e.id for e in entries}) == len(entries)
    assert all(e.service == "grabber" and e.at_ns > 0 for e in entries)
    config = {e.camera_id: e.detail for e in entries if e.kind == AuditEntry.KIND_CAMERA_CONFIG}
    assert "rtsp://admin:***@" in config["down"] and "config sha256:" in config["down"]
    assert seen.index(("service_started", "")) < seen.index(("camera_started", "syn"))
    assert seen.index(("camera_stopped", "syn")) < seen.index(("service_stopped", ""))
    stopped = next(e for e in entries if e.kind == AuditEntry.KIND_SERVICE_STOPPED)
    assert "exit 0" in stopped.detail


def test_entry_refuses_an_unknown_kind_and_redacts_detail() -> None:
    with pytest.raises(ValueError, match="kind"):
        entry(AuditEntry.KIND_UNSPECIFIED, service="x")
    with pytest.raises(ValueError, match="kind"):
        entry(999, service="x")
    made = entry(AuditEntry.KIND_CAMERA_STOPPED, service="grabber", detail=f"rtsp://u:{SECRET}@h/x failed")
    assert SECRET not in made.detail and "u:***@" in made.detail


def test_audit_queue_waits_out_a_broker_outage(tmp_path: Path) -> None:
    """Entries queued while the broker is down are sent, in order and once each, when it comes back."""
    from vigie.chaos.cluster import PrivateBroker
    from vigie.core.audit import AuditLog
    from vigie.core.kafka import apply_topics, make_producer
    from vigie.core.settings import KafkaSettings

    async def scenario(broker: PrivateBroker) -> None:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, namespace="q.")
        topics = Topics("q.")
        await apply_topics(kafka, [topics.audit])
        producer = make_producer(kafka)
        await producer.start()
        queue, stop = AuditQueue(capacity=100), asyncio.Event()
        sender = asyncio.create_task(queue.run(AuditLog(producer, topics.audit), stop, retry_s=0.2, retry_max_s=1))
        queue.put(entry(AuditEntry.KIND_CAMERA_STARTED, service="t", camera_id="c", detail="0"))
        await asyncio.sleep(2)
        await asyncio.to_thread(broker.stop)
        for n in range(1, 6):
            queue.put(entry(AuditEntry.KIND_CAMERA_STARTED, service="t", camera_id="c", detail=str(n)))
        await asyncio.sleep(3)
        assert len(queue) >= 5  # nothing was sent while the broker was down
        await asyncio.to_thread(broker.start)
        deadline = time.monotonic() + 60
        while len(queue) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await sender
        assert await queue.drain(AuditLog(producer, topics.audit), timeout_s=1) == 0
        await producer.stop()
        got = await asyncio.to_thread(consume, kafka, topics.audit.name, lambda rs: len(rs) >= 6, 30)
        assert [topics.audit.decode(r.value).detail for r in got] == [str(n) for n in range(6)]

    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    try:
        asyncio.run(scenario(broker))
    finally:
        broker.stop()
