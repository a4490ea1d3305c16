"""The correlator's incident table survives a rebalance and a SIGKILL, with two workers against the real broker.

Defect covered: the table was read back from its changelog with faust's default JSON
serializer; the worker taking the partitions over logged ``Error in recovery Expecting
value`` and processed nothing, and events were lost or opened twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from vigie.correlator.offsets import is_guard_key
from tests.stack import consume, health, service
from vigie.contracts.v1 import Anomaly, CameraIncidents, RecordRef, Region
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker

CAMERAS = 6
EVENTS = 30
PER_EVENT = 10
S = 1_000_000_000


@dataclass
class Feed:
    """Anomalies of ``EVENTS`` events (``PER_EVENT`` each) on ``CAMERAS`` cameras, sent on a schedule."""

    t0_ns: int
    sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def at_s(event: int, n: int) -> float:
        """Seconds after the start when anomaly ``n`` of ``event`` is sent (events start 0.4 s apart)."""
        return event * 0.4 + n * 0.8

    def anomaly(self, event: int, n: int) -> Anomaly:
        camera, place = f"cam-{event % CAMERAS}", event // CAMERAS
        return Anomaly(id=f"e{event}-a{n}", camera_id=camera, kind="abandoned_object", score=0.7,
                       regions=[Region(x=20 + place * 120, y=200, w=44, h=44)],
                       capture_ns=self.t0_ns + int(self.at_s(event, n) * S),
                       frame=RecordRef(topic="frames", partition=0, offset=n), frame_width=640, frame_height=480)

    def run(self, kafka: KafkaSettings) -> None:
        """Send every anomaly at its time (keyed by camera id), then set ``done``."""
        topic = Topics(kafka.namespace).anomalies
        schedule = sorted((self.at_s(e, n), e, n) for e in range(EVENTS) for n in range(PER_EVENT))

        async def go() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
            await producer.start()
            start = time.monotonic()
            try:
                for at, event, n in schedule:
                    await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                    anomaly = self.anomaly(event, n)
                    await producer.send_and_wait(topic.name, topic.encode(anomaly), key=topic.key(anomaly.camera_id))
                    self.sent += 1
            finally:
                await producer.stop()
                self.done.set()

        asyncio.run(go())


def _table(kafka: KafkaSettings, enough) -> dict[bytes, CameraIncidents]:  # noqa: ANN001
    """The latest value of every key of the incident table's changelog topic."""
    changelog = f"{kafka.namespace}vigie-correlator-incidents-changelog"
    latest: dict[bytes, CameraIncidents] = {}

    def until(records) -> bool:  # noqa: ANN001
        for r in records[len(seen):]:
            if is_guard_key(r.key):  # the next offset of an input partition, not a camera
                continue
            book = CameraIncidents()
            book.ParseFromString(r.value or b"")
            latest[r.key] = book
        seen.extend(records[len(seen):])
        return enough(latest)

    seen: list = []
    consume(kafka, changelog, until, timeout_s=5)
    return latest


def _watch(port: int, states: list[tuple[float, str]], stop: threading.Event) -> None:
    """Poll /healthz every 0.1 s until ``stop``, appending (monotonic seconds, state)."""
    while not stop.wait(0.1):
        answer = health(port)
        states.append((time.monotonic(), answer["state"] if answer else "no answer"))


def test_two_correlators_one_killed_lose_and_duplicate_nothing(kafka, tmp_path: Path) -> None:
    """30 events x 10 anomalies on 6 cameras, fed at ~16/s while a second worker joins and the first is SIGKILLed:
    exactly one incident per event, every anomaly counted once, and /healthz never says running while idle."""
    topics = Topics(kafka.namespace)
    feed = Feed(time.time_ns())
    args = ("correlator", "--session-timeout", "8")
    logs_a, logs_b = tmp_path / "a", tmp_path / "b"
    logs_a.mkdir()
    logs_b.mkdir()
    with service(kafka, *args, log_dir=logs_a) as (first, _):
        feeder = threading.Thread(target=feed.run, args=(kafka,), daemon=True)
        feeder.start()
        time.sleep(2.0)
        with service(kafka, *args, log_dir=logs_b) as (second, port):
            states: list[tuple[float, str]] = []  # (seconds after the SIGKILL, /healthz state) of the survivor
            watching = threading.Event()
            watcher = threading.Thread(target=_watch, args=(port, states, watching), daemon=True)
            watcher.start()
            time.sleep(max(0.0, 7.0 - (time.time_ns() - feed.t0_ns) / S))
            first.kill()
            first.wait()
            killed_ns, sent_at_kill = time.time_ns(), feed.sent
            states.append((0.0, "SIGKILL"))
            feed.done.wait(60)
            complete = lambda t: sum(i.count for b in t.values() for i in b.incidents) >= EVENTS * PER_EVENT  # noqa: E731
            deadline = time.monotonic() + 60
            while not complete(table := _table(kafka, complete)) and time.monotonic() < deadline:
                time.sleep(1.0)
            state = health(port)
            watching.set()
            watcher.join()
        assert second.returncode == 0, (logs_b / "correlator.log").read_text()[-3000:]

    log_b = (logs_b / "correlator.log").read_text()
    records = consume(kafka, topics.incidents.name, lambda rs: False, timeout_s=3)
    incidents = [topics.incidents.decode(r.value) for r in records]
    by_event: dict[str, set[str]] = {}
    for incident in incidents:
        by_event.setdefault(incident.opened_by.split("-")[0], set()).add(incident.id)
    lost = EVENTS - len(by_event)
    duplicated = sum(len(ids) - 1 for ids in by_event.values())
    counts = {i.opened_by.split("-")[0]: i.count for b in table.values() for i in b.incidents}
    resumed: dict[int, int] = {}  # changelog partition: first write after the SIGKILL, ms
    for r in consume(kafka, f"{kafka.namespace}vigie-correlator-incidents-changelog", lambda rs: False, timeout_s=3):
        if r.timestamp * 1_000_000 > killed_ns:
            resumed[r.partition] = min(resumed.get(r.partition, r.timestamp), r.timestamp)
    # the killed worker's partitions are the last to resume: their first write after the kill
    recovery_s = (max(resumed.values()) * 1_000_000 - killed_ns) / S if resumed else float("nan")
    print(f"\nrecovery: events in {EVENTS} ({feed.sent} anomalies, {sent_at_kill} before the SIGKILL), "
          f"incidents out {len(by_event) + duplicated}, lost {lost}, duplicated {duplicated}, "
          f"anomalies counted {sum(counts.values())}, recovery {recovery_s:.1f} s, "
          f"'Error in recovery' logged {log_b.count('Error in recovery')} times; survivor's /healthz: "
          f"{' -> '.join(s for n, (_, s) in enumerate(states) if n == 0 or states[n - 1][1] != s)}")
    assert {s for _, s in states} <= {"running", "recovering", "SIGKILL"}, states
    assert "Error in recovery" not in log_b
    assert (lost, duplicated) == (0, 0), by_event
    assert counts == {f"e{e}": PER_EVENT for e in range(EVENTS)}, "every anomaly counted exactly once"
    assert state is not None and state["state"] == "running", state
