"""Kafka durability per deployment: `vigie topics apply` creates topics with the replication factor and
min.insync.replicas of its settings (VIGIE_KAFKA_REPLICATION_FACTOR, VIGIE_KAFKA_MIN_INSYNC_REPLICAS)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from vigie.core.topics import Topics

#: config_source of a DescribeConfigs entry set on the topic itself (not a broker default).
TOPIC_CONFIG = 1


def _topics_apply(broker: str, namespace: str, *extra: str, env: dict[str, str] | None = None):  # noqa: ANN202
    return subprocess.run([sys.executable, "-m", "vigie", "--kafka", broker, "--namespace", namespace,
                           "topics", "apply", "--wait", "10", *extra], capture_output=True, text=True, timeout=90,
                          env={**os.environ, **(env or {})})


async def _described(broker: str, names: list[str]) -> tuple[dict[str, set[int]], dict[str, tuple[str, int]]]:
    """Per topic: the replica counts of its partitions, and its min.insync.replicas with the config's source."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [n for n in names if n in existing]
        if not names:
            return {}, {}
        replicas = {d["topic"]: {len(p["replicas"]) for p in d["partitions"]} for d in await admin.describe_topics(names)}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, {"min.insync.replicas": None}) for n in names])
        insync = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                entry = resource["config_entries"][0]
                insync[resource["resource_name"]] = (entry["config_value"], entry["config_source"])
        return replicas, insync
    finally:
        await admin.close()


@pytest.mark.broker
def test_topics_get_the_deployments_replication_factor_and_min_insync_replicas(broker: str, namespace: str) -> None:
    """Defect: core/kafka.py created every topic with replication_factor=1 hard-coded and left
    min.insync.replicas to the broker's default, whatever the deployment. Now both come from the settings
    (1 and 1 on this one-broker machine) and min.insync.replicas is set on every topic."""
    result = _topics_apply(broker, namespace, env={"VIGIE_KAFKA_REPLICATION_FACTOR": "1",
                                                    "VIGIE_KAFKA_MIN_INSYNC_REPLICAS": "1"})
    assert result.returncode == 0, result.stderr
    assert "replication=1 min.insync.replicas=1" in result.stdout
    names = [t.name for t in Topics(namespace).all(["main"])]
    replicas, insync = asyncio.run(_described(broker, names))
    assert set(replicas) == set(names) and all(r == {1} for r in replicas.values()), replicas
    assert all(value == ("1", TOPIC_CONFIG) for value in insync.values()), insync
    again = _topics_apply(broker, namespace)  # existing topics keep their replicas, get the config again
    assert again.returncode == 0 and again.stdout.count("exists ") == len(names), again.stderr


@pytest.mark.broker
def test_a_replication_factor_above_the_number_of_brokers_is_refused_before_anything_is_created(
        broker: str, namespace: str) -> None:
    """Defect: with a configurable replication factor, one larger than the cluster would fail topic by topic
    in the broker. It is refused first, naming the setting and the number of brokers."""
    result = _topics_apply(broker, namespace, "--replication-factor", "3", "--min-insync-replicas", "2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "replication factor 3 needs at least as many brokers" in result.stderr and "has 1" in result.stderr
    assert "VIGIE_KAFKA_REPLICATION_FACTOR" in result.stderr
    replicas, _ = asyncio.run(_described(broker, [t.name for t in Topics(namespace).all(["main"])]))
    assert replicas == {}


def test_min_insync_replicas_above_the_replication_factor_is_a_configuration_error() -> None:
    """Defect: a min.insync.replicas above the replication factor makes every acks=all write fail; it is
    refused at once (exit 2), naming both settings, before any broker is contacted."""
    result = subprocess.run([sys.executable, "-m", "vigie", "--kafka", "127.0.0.1:1", "topics", "apply"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "VIGIE_KAFKA_REPLICATION_FACTOR": "2",
                                 "VIGIE_KAFKA_MIN_INSYNC_REPLICAS": "3"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "min_insync_replicas (3) must not exceed replication_factor (2)" in result.stderr
