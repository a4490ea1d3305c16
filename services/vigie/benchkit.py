"""Pieces shared by the benches (:mod:`vigie.bench` and the per-service bench modules): a fresh namespace on the
broker, a service process started and waited for, percentiles, a free port (:func:`vigie.chaos.cluster.free_port`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from vigie.chaos.cluster import free_port
from vigie.core.kafka import apply_topics, wait_for_broker
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics


def fresh_namespace(bootstrap: str, prefix: str = "bench", stations: tuple[str, ...] = ("main",)) -> KafkaSettings:
    """Settings of a new namespace ``<prefix><6 hex>.`` on ``bootstrap`` whose topics (and those of ``stations``)
    exist. Raises the broker's error when it does not answer within 30 s."""
    kafka = KafkaSettings(bootstrap=bootstrap, namespace=f"{prefix}{uuid.uuid4().hex[:6]}.")

    async def prepare() -> None:
        await wait_for_broker(kafka, 30)
        await apply_topics(kafka, Topics(kafka.namespace).all(list(stations)))

    asyncio.run(prepare())
    return kafka


def percentiles_ms(values_s: list[float]) -> dict[str, float]:
    """``{"p50": ms, "p99": ms, "max": ms, "n": count}`` of ``values_s`` (seconds); NaN figures when empty."""
    if not values_s:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    arr = np.asarray(values_s) * 1000.0
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "max": float(arr.max()),
            "n": len(values_s)}


def start_service(kafka: KafkaSettings, name: str, args: list[str], log: Path, port: int | None = None,
                  ready_timeout_s: float = 60.0) -> tuple[subprocess.Popen, int]:
    """Start ``vigie <name> <args>`` (log level WARNING, stderr to ``log``) and return ``(process, http port)`` once
    its /healthz says running or degraded.

    Raises:
        RuntimeError: it exited, or was not ready within ``ready_timeout_s`` (the log's tail in the message).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace,
           "--log-level", "WARNING", name, *args, "--http-port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if json.loads(answer.read()).get("state") in ("running", "degraded"):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{name} not ready after {ready_timeout_s} s: {log.read_text()[-2000:]}")


def stop(procs: list[subprocess.Popen], timeout_s: float = 40.0) -> dict[int, int | None]:
    """SIGTERM each process in order and wait for it (SIGKILL after ``timeout_s``); returns pid -> exit code."""
    codes = {}
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        codes[proc.pid] = proc.returncode
    return codes


class Latencies:
    """Capture → topic latencies of the anomalies and of the incidents opened on a station topic.

    Args:
        topics: the namespace's topics.
        started_ns: records of frames captured before this (ns since the epoch) are left out.
    """

    def __init__(self, topics: Topics, started_ns: int) -> None:
        self.topics, self.started_ns = topics, started_ns
        self.anomaly: list[float] = []  # s, capture → the anomaly record's timestamp (withdrawals left out)
        self.alert: list[float] = []  # s, capture → held by the reader, incidents at revision 1

    def take(self, topic: str, record, now_ns: int) -> None:  # noqa: ANN001 - an aiokafka ConsumerRecord
        """Count ``record`` of ``topic`` (anomalies or a station topic), read at ``now_ns``."""
        if topic == self.topics.anomalies.name:
            msg = self.topics.anomalies.decode(record.value)
            if msg.capture_ns >= self.started_ns and not msg.withdraws:
                self.anomaly.append((record.timestamp * 1e6 - msg.capture_ns) / 1e9)
        else:
            msg = self.topics.incidents.decode(record.value)
            if msg.revision == 1 and msg.first_seen_ns >= self.started_ns:
                self.alert.append((now_ns - msg.first_seen_ns) / 1e9)

    async def read(self, consumer, seconds: float) -> None:  # noqa: ANN001 - a started AIOKafkaConsumer
        """Count what ``consumer`` (subscribed to anomalies and/or station topics) reads for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time_ns()
            for tp, records in batch.items():
                for record in records:
                    self.take(tp.topic, record, now)
