"""Settings shared by every service: where the broker is and how topics are named.

Each service's own settings embed :class:`KafkaSettings`. All models reject unknown
keys, so a misspelt option is an error that names it rather than a silent default.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The legal ceiling on how long images may be kept: 30 days, in milliseconds.
MAX_RETENTION_MS = 30 * 24 * 3600 * 1000


class StrictModel(BaseModel):
    """Base of every Vigie config model: unknown keys are rejected, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(StrictModel):
    """Connection to the Kafka cluster and the topic namespace."""

    bootstrap: str = Field(
        default_factory=lambda: os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092"),
        title="Bootstrap servers",
        description="Comma-separated host:port list of Kafka brokers (env VIGIE_KAFKA).",
        min_length=3,
    )
    namespace: str = Field(
        default_factory=lambda: os.environ.get("VIGIE_NAMESPACE", ""),
        title="Topic namespace",
        description="Prefix of every topic and consumer group name, e.g. 'site1.' (env VIGIE_NAMESPACE).",
        max_length=100,
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=300, title="Request timeout", description="Seconds before a broker request fails."
    )
    replication_factor: int = Field(
        default_factory=lambda: os.environ.get("VIGIE_KAFKA_REPLICATION_FACTOR", "1"),
        validate_default=True, ge=1, le=16, title="Replication factor",
        description="Copies of every partition `vigie topics apply` creates: at most the number of brokers; "
        "3 on a three-broker cluster (env VIGIE_KAFKA_REPLICATION_FACTOR).",
    )
    min_insync_replicas: int = Field(
        default_factory=lambda: os.environ.get("VIGIE_KAFKA_MIN_INSYNC_REPLICAS", "1"),
        validate_default=True, ge=1, le=16, title="Minimum in-sync replicas",
        description="Topic config min.insync.replicas: replicas that must hold a record before the broker "
        "acknowledges it to a producer (acks=all); at most the replication factor, and below it so that one "
        "broker may be down (2 of 3) (env VIGIE_KAFKA_MIN_INSYNC_REPLICAS).",
    )
    retry_initial_s: float = Field(
        default=0.5, gt=0, le=60, title="First retry delay",
        description="Seconds before the first retry when the broker does not answer (start-up, publishing); "
        "each later delay doubles, up to retry_max_s.",
    )
    retry_max_s: float = Field(
        default=10.0, gt=0, le=600, title="Longest retry delay",
        description="Cap of the exponential back-off between attempts to reach the broker, seconds.",
    )
    check_interval_s: float = Field(
        default=5.0, gt=0, le=300, title="Broker check interval",
        description="Seconds between two checks that the broker still answers, once a service runs "
        "(reported as `degraded` in /healthz while it does not).",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_chars(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError("only letters, digits, '.', '_' and '-' are allowed")
        return value

    @model_validator(mode="after")
    def _insync_within_replication(self) -> "KafkaSettings":
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min_insync_replicas ({self.min_insync_replicas}) must not exceed "
                             f"replication_factor ({self.replication_factor}): no write could ever be acknowledged")
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError("retry_initial_s must not exceed retry_max_s")
        return self

    def group(self, name: str) -> str:
        """Consumer group id ``name`` inside this namespace."""
        return f"{self.namespace}{name}"
