"""A private Kafka broker with SASL (SCRAM) and TLS listeners, a CA made for it, and the checks the transport
tests run against a secured broker (:func:`roundtrip`, :func:`refused`).

:func:`make_tls` writes a self-signed CA and a broker certificate for 127.0.0.1 with openssl;
:class:`SecureBroker` is a :class:`~vigie.chaos.cluster.PrivateBroker` that also listens with
SASL_PLAINTEXT and SASL_SSL on ports of its own, its SCRAM users created when its storage is
formatted (``kafka-storage format --add-scram``). Its PLAINTEXT listener stays, bound to 127.0.0.1,
for ``kafka.sh``'s readiness check and the broker's own replication.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vigie.chaos.cluster import PrivateBroker, free_port
from vigie.contracts.v1 import RecordRef
from vigie.core.kafka import BrokerProbe, fetch_record, make_consumer, make_producer
from vigie.core.kafka_security import environment
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics


@dataclass(frozen=True)
class Tls:
    """PEM files: the CA certificate, and the broker's key with its certificate chain (one file)."""

    cafile: Path
    keystore: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_tls(folder: Path) -> Tls:
    """A CA and a broker certificate for ``127.0.0.1``/``localhost`` signed by it, under ``folder`` (seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=vigie-test-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", "2", "-extfile", "san.ext", cwd=folder)
    # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate chain.
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8", cwd=folder)
    keystore = folder / "broker-keystore.pem"
    keystore.write_text((folder / "broker.p8").read_text() + (folder / "broker.pem").read_text()
                        + (folder / "ca.pem").read_text())
    return Tls(folder / "ca.pem", keystore)


class SecureBroker(PrivateBroker):
    """A single-node broker with SASL_PLAINTEXT on :attr:`sasl_port` and, given ``tls``, SASL_SSL on
    :attr:`sasl_ssl_port` and SSL (TLS without a login) on :attr:`ssl_port`; the SASL listeners take
    SCRAM-SHA-256 and SCRAM-SHA-512 logins of ``users`` (name -> password).
    """

    def __init__(self, var: Path, users: dict[str, str], tls: Tls | None = None) -> None:
        super().__init__(var)
        self.sasl_port = free_port()
        self.sasl_ssl_port = free_port() if tls else None
        self.ssl_port = free_port() if tls else None
        var.mkdir(parents=True, exist_ok=True)
        scram = var / "scram.txt"
        scram.write_text("".join(f"SCRAM-SHA-{bits}=[name={name},password={password}]\n"
                                 for name, password in users.items() for bits in (256, 512)))
        scram.chmod(0o600)
        names = ["PLAINTEXT", "SASL_PLAINTEXT"] + (["SASL_SSL", "SSL"] if tls else [])
        ports = {"PLAINTEXT": self.port, "SASL_PLAINTEXT": self.sasl_port, "SASL_SSL": self.sasl_ssl_port,
                 "SSL": self.ssl_port}
        advertised = ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in names)
        lines = [f"listeners={advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
                 f"advertised.listeners={advertised}",
                 "listener.security.protocol.map=" + ",".join(f"{n}:{n}" for n in names) + ",CONTROLLER:PLAINTEXT",
                 "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"]
        for listener in names[1:3]:
            for mechanism in ("scram-sha-256", "scram-sha-512"):
                lines.append(f"listener.name.{listener.lower()}.{mechanism}.sasl.jaas.config="
                             "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if tls:
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={tls.keystore}"]
        props = var / "extra.properties"
        props.write_text("\n".join(lines) + "\n")
        self.extra_env = {"VIGIE_KAFKA_EXTRA_PROPERTIES": str(props), "VIGIE_KAFKA_SCRAM_FILE": str(scram)}

    def sasl_settings(self, namespace: str, user: str, password_file: Path, *, mechanism: str = "SCRAM-SHA-256",
                      cafile: Path | None = None) -> KafkaSettings:
        """Settings of a client logging in as ``user``: SASL_SSL when ``cafile`` is given, else SASL_PLAINTEXT."""
        if cafile is not None:
            return KafkaSettings(bootstrap=f"127.0.0.1:{self.sasl_ssl_port}", namespace=namespace,
                                 security_protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username=user,
                                 sasl_password_file=str(password_file), ssl_cafile=str(cafile))
        return KafkaSettings(bootstrap=f"127.0.0.1:{self.sasl_port}", namespace=namespace,
                             security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, sasl_username=user,
                             sasl_password_file=str(password_file))


def vigie(settings: KafkaSettings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``vigie --kafka ... <args>`` with ``settings``' security (or ``env``) in its environment."""
    return subprocess.run([sys.executable, "-m", "vigie", "--kafka", settings.bootstrap, "--namespace",
                           settings.namespace, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(environment(settings) if env is None else env)})


def roundtrip(settings: KafkaSettings) -> None:
    """``vigie topics apply``, then a record produced, consumed, fetched by reference; the probe answers."""
    done = vigie(settings, "topics", "apply", "--wait", "20")
    assert done.returncode == 0, done.stderr
    assert f"created {settings.namespace}frames" in done.stdout

    async def go() -> None:
        topic = Topics(settings.namespace).deadletter
        producer = make_producer(settings)
        await producer.start()
        try:
            meta = await producer.send_and_wait(topic.name, b"value", key=b"key")
        finally:
            await producer.stop()
        consumer = make_consumer(settings, topic, group="check")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10000)
            assert [r.value for records in batch.values() for r in records] == [b"value"]
        finally:
            await consumer.stop()
        record = await fetch_record(settings, RecordRef(topic=topic.name, partition=meta.partition, offset=meta.offset))
        assert record is not None and record.value == b"value"
        probe = BrokerProbe(settings)
        try:
            assert await probe.check() is None and probe.brokers == 1
        finally:
            await probe.close()

    asyncio.run(go())


def refused(settings: KafkaSettings, secrets: tuple[str, ...], *expected: str) -> None:
    """``vigie topics apply`` stops at once with a configuration error naming the user, without the password;
    the broker probe says the same."""
    started = time.monotonic()
    done = vigie(settings, "topics", "apply", "--wait", "30")
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 15  # no waiting for a broker that answers
    for text in expected:
        assert text in done.stderr, done.stderr
    for secret in secrets:
        assert secret not in done.stderr + done.stdout

    async def probe() -> str | None:
        probe = BrokerProbe(settings)
        try:
            return await probe.check()
        finally:
            await probe.close()

    why = asyncio.run(probe())
    assert why is not None and expected[0] in why and not any(secret in why for secret in secrets)
