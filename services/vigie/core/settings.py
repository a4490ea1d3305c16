"""Settings shared by every service: where the broker is and how topics are named.

Each service's own settings embed :class:`KafkaSettings`. All models reject unknown
keys, so a misspelt option is an error that names it rather than a silent default.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    @field_validator("namespace")
    @classmethod
    def _namespace_chars(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError("only letters, digits, '.', '_' and '-' are allowed")
        return value

    def group(self, name: str) -> str:
        """Consumer group id ``name`` inside this namespace."""
        return f"{self.namespace}{name}"
