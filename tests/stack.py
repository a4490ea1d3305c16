"""Test helpers: run Vigie services as real processes, and read or write topics with real clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from vigie.core.kafka_security import client_options, environment
from vigie.core.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict | None:
    """The service's /healthz body (a 503's too: it says why it is not ready), or None when it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as answer:
        try:
            return json.loads(answer.read())
        except (OSError, json.JSONDecodeError):
            return None
    except OSError:
        return None
    except json.JSONDecodeError:
        return None


@contextmanager
def service(kafka: KafkaSettings, name: str, *args: str, port: int | None = None, log_dir: Path,
            ready_timeout_s: float = 60.0):
    """Run ``vigie <name> <args>`` in this test's namespace until the block ends, then SIGTERM it.

    Yields ``(process, port)``; waits until /healthz says the service is ready (running, or degraded:
    running with part of its work failing, e.g. a dead camera). On exit asserts nothing:
    callers check ``process.returncode`` (0 means a clean drain).
    """
    port = port or free_port()
    log_path = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace,
           name, *args, "--http-port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **environment(kafka), "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + ready_timeout_s
            while (h := health(port)) is None or h.get("state") not in ("running", "degraded"):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not running after {ready_timeout_s} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield proc, port
        finally:
            terminate(proc, 45)


def wait_until(what: str, check: Callable[[], object], timeout_s: float, *alive: subprocess.Popen) -> None:
    """Wait for ``check()`` to be true (polled every 0.2 s); every process of ``alive`` must stay up meanwhile.
    Fails the test naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        for proc in alive:
            assert proc.poll() is None, f"a service exited ({proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(0.2)


def terminate(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM ``proc`` and wait for it to exit; SIGKILL after ``timeout_s`` seconds. Nothing if it exited."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def produce(kafka: KafkaSettings, topic: str, items: list[tuple[bytes | None, bytes]],
            partition: int | None = None) -> None:
    """Send ``(key, value)`` records to ``topic`` (to ``partition``, else where the key's hash puts them) and wait
    for the acknowledgements."""

    async def go() -> None:
        producer = AIOKafkaProducer(**client_options(kafka), acks="all", max_request_size=4 << 20)
        await producer.start()
        try:
            for key, value in items:
                await producer.send_and_wait(topic, value, key=key, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(go())


def consume(kafka: KafkaSettings, topic: str, until: Callable[[list[ConsumerRecord]], bool],
            timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning until ``until(records)`` is true or the time is up; returns the records."""

    async def go() -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(topic, **client_options(kafka), auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=4 << 20)
        await consumer.start()
        records: list[ConsumerRecord] = []
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not until(records):
                batch = await consumer.getmany(timeout_ms=300)
                for part in batch.values():
                    records.extend(part)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(go())
