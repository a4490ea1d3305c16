"""Settings shared by every service: where the broker is, how to reach it securely, how topics are named.

Each service's own settings embed :class:`KafkaSettings`. All models reject unknown
keys, so a misspelt option is an error that names it rather than a silent default.
The SASL password is a :class:`~pydantic.SecretStr` (shown as ``**********``), or read
from a file (a mounted Kubernetes or Docker secret) each time a client is made.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: The legal ceiling on how long images may be kept: 30 days, in milliseconds.
MAX_RETENTION_MS = 30 * 24 * 3600 * 1000


class StrictModel(BaseModel):
    """Base of every Vigie config model: unknown keys are rejected, instances are frozen, and the text of a
    validation error does not quote the input (it may hold a password)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _env(name: str) -> str | None:
    """The environment variable ``name``, None when unset or empty."""
    return os.environ.get(name) or None


def _from_env(name: str, title: str, description: str, *, secret: bool = False, **limits) -> Any:
    """An optional field whose default is the environment variable ``name`` (unset or empty: None)."""
    def default() -> str | SecretStr | None:
        value = _env(name)
        return SecretStr(value) if secret and value is not None else value

    return Field(default_factory=default, title=title, description=f"{description} (env {name})", **limits)


def read_secret_file(path: str) -> str:
    """The secret held in the file at ``path`` (one trailing newline dropped, as ``echo`` writes one).

    Raises ``ValueError`` naming the file (never its content) when it cannot be read or is empty.
    """
    try:
        value = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read secret file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise ValueError(f"secret file {path} is empty")
    return value


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class KafkaSettings(StrictModel):
    """Connection to the Kafka cluster (address, SASL and TLS) and the topic namespace.

    Every Kafka client of Vigie takes its options from :func:`vigie.core.kafka_security.client_options`
    of these settings. Raises ``pydantic.ValidationError`` for SASL without a user or password, a
    password file that cannot be read, or a TLS file (CA, certificate, key) that does not exist.
    """

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

    security_protocol: SecurityProtocol = Field(
        default_factory=lambda: os.environ.get("VIGIE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        validate_default=True, title="Security protocol",
        description="PLAINTEXT (default), SSL (TLS), SASL_PLAINTEXT (SASL authentication, no TLS) or SASL_SSL "
        "(SASL over TLS: the one for a network others share) (env VIGIE_KAFKA_SECURITY_PROTOCOL).",
    )
    sasl_mechanism: SaslMechanism = Field(
        default_factory=lambda: os.environ.get("VIGIE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        validate_default=True, title="SASL mechanism",
        description="SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN (PLAIN only over SASL_SSL: it sends the "
        "password itself) (env VIGIE_KAFKA_SASL_MECHANISM).",
    )
    sasl_username: str | None = _from_env(
        "VIGIE_KAFKA_SASL_USERNAME", "SASL user", "User name Vigie authenticates as.", max_length=256)
    sasl_password: SecretStr | None = _from_env(
        "VIGIE_KAFKA_SASL_PASSWORD", "SASL password", "Its password; prefer sasl_password_file. Never printed.",
        secret=True)
    sasl_password_file: str | None = _from_env(
        "VIGIE_KAFKA_SASL_PASSWORD_FILE", "SASL password file", "File holding the password, e.g. a mounted "
        "secret; read each time a client is made, so a rotated secret is taken on the next connection.")
    ssl_cafile: str | None = _from_env(
        "VIGIE_KAFKA_SSL_CAFILE", "TLS CA file", "PEM file of the certificate authorities that sign the brokers' "
        "certificates; absent: the system's. Brokers' host names are checked.")
    ssl_certfile: str | None = _from_env(
        "VIGIE_KAFKA_SSL_CERTFILE", "TLS client certificate",
        "PEM client certificate, for brokers that authenticate clients by TLS.")
    ssl_keyfile: str | None = _from_env("VIGIE_KAFKA_SSL_KEYFILE", "TLS client key", "PEM private key of ssl_certfile.")

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

    @model_validator(mode="after")
    def _security_complete(self) -> "KafkaSettings":
        protocol = self.security_protocol
        if self.uses_sasl:
            if not self.sasl_username:
                raise ValueError(f"security_protocol {protocol} needs sasl_username (env VIGIE_KAFKA_SASL_USERNAME)")
            if self.sasl_password is None and not self.sasl_password_file:
                raise ValueError(f"security_protocol {protocol} needs a password: sasl_password_file (env "
                                 "VIGIE_KAFKA_SASL_PASSWORD_FILE) or sasl_password (env VIGIE_KAFKA_SASL_PASSWORD)")
            if self.sasl_password is not None and self.sasl_password_file:
                raise ValueError("give sasl_password or sasl_password_file, not both")
            if self.sasl_password_file:
                read_secret_file(self.sasl_password_file)  # readable now, read again for each client
            if self.sasl_mechanism == "PLAIN" and protocol != "SASL_SSL":
                raise ValueError("sasl_mechanism PLAIN sends the password as it is: only with SASL_SSL")
        if self.uses_tls:
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                path = getattr(self, name)
                if path and not os.path.isfile(path):
                    raise ValueError(f"{name} {path}: no such file (env VIGIE_KAFKA_{name.upper()})")
            if self.ssl_keyfile and not self.ssl_certfile:
                raise ValueError("ssl_keyfile without ssl_certfile")
        return self

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_PLAINTEXT and SASL_SSL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """True for SSL and SASL_SSL."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def sasl_secret(self) -> str | None:
        """The SASL password (read from ``sasl_password_file`` now, if set); None without SASL.

        Raises ``ValueError`` naming the file when it cannot be read. Never log the result.
        """
        if not self.uses_sasl:
            return None
        if self.sasl_password_file:
            return read_secret_file(self.sasl_password_file)
        return self.sasl_password.get_secret_value() if self.sasl_password is not None else None

    def group(self, name: str) -> str:
        """Consumer group id ``name`` inside this namespace."""
        return f"{self.namespace}{name}"
