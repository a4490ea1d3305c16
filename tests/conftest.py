"""Shared fixtures: the real Kafka broker, a unique namespace per test, the shared clips.

The broker is the project's own (deploy/kafka/kafka.sh): when nothing answers on
127.0.0.1:9092 the session starts it, and stops it at the end. Every test that touches
Kafka gets its own topic namespace and consumer groups, so tests never see each
other's records.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092")


def _answers(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker() -> str:
    """Bootstrap address of a running broker, started by the session when needed."""
    started = False
    if not _answers(BOOTSTRAP):
        subprocess.run([str(ROOT / "deploy" / "kafka" / "kafka.sh"), "start"], check=True, stdin=subprocess.DEVNULL)
        started = True
    yield BOOTSTRAP
    if started:
        subprocess.run([str(ROOT / "deploy" / "kafka" / "kafka.sh"), "stop"], check=False)


@pytest.fixture
def namespace() -> str:
    """A topic and group prefix unique to this test."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka(broker: str, namespace: str) -> KafkaSettings:
    """Settings for this test's namespace, with every topic (and the 'main' alert topic) created."""
    settings = KafkaSettings(bootstrap=broker, namespace=namespace)
    asyncio.run(apply_topics(settings, Topics(namespace).all(["main"])))
    return settings


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server started for the session (vigie.chaos.postgres); skipped with the reason when impossible."""
    from vigie.chaos import postgres as pg

    reason = pg.available()
    if reason:
        pytest.skip(reason)
    server = pg.start()
    yield server
    server.stop()
