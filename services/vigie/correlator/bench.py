"""The correlator's added latency: anomalies in, incidents out on a station topic, real broker and process.

``python -m vigie.correlator.bench`` (and ``vigie bench``) starts a real correlator in a fresh
namespace, publishes anomalies one by one (each on its own camera, so each opens an incident)
and then in bursts of ``burst`` at once, and reads the station topic ``alerts.main``. For each
incident opened it takes:

- *added*: the incident record's timestamp (set by the correlator's producer when it sends)
  minus the anomaly record's timestamp (set by the bench's producer): what the correlator
  adds, independent of how fast the reader is;
- *seen*: the time the bench's consumer holds the incident minus the anomaly's send time
  (the same clock: this process's), what a station sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from vigie.benchkit import fresh_namespace, percentiles_ms, start_service, stop
from vigie.contracts.v1 import Anomaly, RecordRef, Region
from vigie.core.kafka import make_producer
from vigie.core.kafka_security import client_options
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics


def _anomaly(camera: str, now_ns: int) -> Anomaly:
    return Anomaly(id=f"{camera}-{now_ns}", camera_id=camera, kind="abandoned_object", score=0.8,
                   regions=[Region(x=100, y=100, w=40, h=40)], capture_ns=now_ns, published_ns=now_ns,
                   frame=RecordRef(topic="frames", partition=0, offset=0), frame_width=640, frame_height=360)


async def echo(kafka: KafkaSettings) -> None:
    """The floor a correlator is compared with: each anomaly of ``kafka``'s namespace, one at a time, becomes an
    incident (revision 1, its camera) on ``alerts.main``, acknowledged before the next (one broker round trip;
    the correlator makes two: the incident, then its table's changelog record). Runs until cancelled."""
    from vigie.contracts.v1 import Incident  # noqa: PLC0415

    topics = Topics(kafka.namespace)
    consumer = AIOKafkaConsumer(topics.anomalies.name, **client_options(kafka), auto_offset_reset="latest",
                                group_id=None, fetch_max_wait_ms=50)
    producer = make_producer(kafka, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        async for record in consumer:
            anomaly = topics.anomalies.decode(record.value)
            incident = Incident(id=f"inc-{anomaly.id}", camera_id=anomaly.camera_id, revision=1,
                                first_seen_ns=anomaly.capture_ns, kind=anomaly.kind)
            await producer.send_and_wait(topics.alerts("main").name, topics.incidents.encode(incident), key=record.key)
    finally:
        await producer.stop()
        await consumer.stop()


def bench_correlator(bootstrap: str, singles: int = 100, bursts: int = 10, burst: int = 8,
                     interval_s: float = 0.1, floor: bool = False) -> dict[str, object]:
    """Added latency of a real correlator process: ``singles`` anomalies ``interval_s`` apart, then ``bursts``
    bursts of ``burst`` anomalies sent together (0.5 s apart). ``floor``: of :func:`echo` instead, run as a
    process of its own (what the machine and broker give a trivial consumer-producer, for comparison).

    Returns ``{"single": {"added": percentiles, "seen": percentiles}, "burst": {...}}``, percentiles as
    :func:`percentiles_ms`. Raises RuntimeError when the correlator does not start.
    """
    kafka = fresh_namespace(bootstrap, "benchc")
    topics = Topics(kafka.namespace)
    tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-correlator-"))
    if floor:
        proc = subprocess.Popen([sys.executable, "-m", "vigie.correlator.bench", "--kafka", bootstrap, "--echo",
                                 kafka.namespace], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        time.sleep(3.0)  # it has its position before the first anomaly
    else:
        proc, _ = start_service(kafka, "correlator", [], tmp / "correlator.log")
    sent: dict[str, tuple[str, int, int]] = {}  # camera -> (phase, send time ns, anomaly record timestamp ms)
    got: dict[str, tuple[float, float]] = {}

    async def run() -> None:
        consumer = AIOKafkaConsumer(topics.alerts("main").name, **client_options(kafka), auto_offset_reset="latest",
                                    group_id=None, fetch_max_wait_ms=50)
        producer = make_producer(kafka)
        await consumer.start()
        await producer.start()
        reader = asyncio.create_task(read(consumer))
        try:
            await asyncio.sleep(1.0)  # the consumer has its position
            for k in range(singles):
                await send(producer, "single", [f"s-{k}"])
                await asyncio.sleep(interval_s)
            for b in range(bursts):
                await send(producer, "burst", [f"b-{b}-{j}" for j in range(burst)])
                await asyncio.sleep(0.5)
            deadline = time.monotonic() + 10
            while len(got) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            reader.cancel()
            await producer.stop()
            await consumer.stop()

    async def send(producer, phase: str, cameras: list[str]) -> None:  # noqa: ANN001
        now = time.time_ns()
        futures = [await producer.send(topics.anomalies.name, topics.anomalies.encode(_anomaly(c, now)),
                                       key=c.encode()) for c in cameras]
        for camera, future in zip(cameras, futures):
            sent[camera] = (phase, now, (await future).timestamp)

    async def read(consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batch.values():
                for record in records:
                    incident = topics.incidents.decode(record.value)
                    if incident.revision == 1 and incident.camera_id in sent:
                        _, at_ns, anomaly_ms = sent[incident.camera_id]
                        got[incident.camera_id] = ((record.timestamp - anomaly_ms) / 1000.0, (now - at_ns) / 1e9)

    try:
        asyncio.run(run())
    finally:
        stop([proc])
    out: dict[str, object] = {}
    for phase in ("single", "burst"):
        pairs = [got[c] for c, (p, _, _) in sent.items() if p == phase and c in got]
        out[phase] = {"added": percentiles_ms([a for a, _ in pairs]), "seen": percentiles_ms([s for _, s in pairs]),
                      "missing": sum(1 for c, (p, _, _) in sent.items() if p == phase and c not in got)}
    return out


def rows(result: dict[str, object]) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, value, target)`` of :func:`bench_correlator`'s result."""
    out = []
    for phase, words in (("single", "one at a time"), ("burst", "8 at once")):
        fig = result[phase]
        added, seen = fig["added"], fig["seen"]
        out.append((f"correlator, anomaly → station topic, {words}: added p50 / p99 (n={added['n']})",
                    f"{added['p50']:.0f} / {added['p99']:.0f} ms", "p99 <= 30 ms"))
        out.append((f"correlator, {words}: as a station reads it, p50 / p99", f"{seen['p50']:.0f} / {seen['p99']:.0f} ms",
                    ""))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m vigie.correlator.bench [--kafka HOST:PORT] [--singles N]``: prints the figures as JSON; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vigie.correlator.bench")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--singles", type=int, default=100)
    parser.add_argument("--echo", metavar="NAMESPACE", help="run the floor's echo (:func:`echo`) in NAMESPACE")
    args = parser.parse_args(argv)
    if args.echo:
        asyncio.run(echo(KafkaSettings(bootstrap=args.kafka, namespace=args.echo)))
        return 0
    print(json.dumps({"floor": bench_correlator(args.kafka, singles=args.singles, floor=True),
                      "correlator": bench_correlator(args.kafka, singles=args.singles)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
