"""A private Kafka broker with SASL (SCRAM) and TLS listeners, and a CA made for it, for the transport tests.

:func:`make_tls` writes a self-signed CA and a broker certificate for 127.0.0.1 with openssl;
:class:`SecureBroker` is a :class:`~vigie.chaos.cluster.PrivateBroker` that also listens with
SASL_PLAINTEXT and SASL_SSL on ports of its own, its SCRAM users created when its storage is
formatted (``kafka-storage format --add-scram``). Its PLAINTEXT listener stays, bound to 127.0.0.1,
for ``kafka.sh``'s readiness check and the broker's own replication.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from vigie.chaos.cluster import PrivateBroker, free_port
from vigie.core.settings import KafkaSettings


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
    :attr:`sasl_ssl_port`, both taking SCRAM-SHA-256 and SCRAM-SHA-512 logins of ``users`` (name -> password).
    """

    def __init__(self, var: Path, users: dict[str, str], tls: Tls | None = None) -> None:
        super().__init__(var)
        self.sasl_port = free_port()
        self.sasl_ssl_port = free_port() if tls else None
        var.mkdir(parents=True, exist_ok=True)
        scram = var / "scram.txt"
        scram.write_text("".join(f"SCRAM-SHA-{bits}=[name={name},password={password}]\n"
                                 for name, password in users.items() for bits in (256, 512)))
        scram.chmod(0o600)
        names = ["PLAINTEXT", "SASL_PLAINTEXT"] + (["SASL_SSL"] if tls else [])
        ports = {"PLAINTEXT": self.port, "SASL_PLAINTEXT": self.sasl_port, "SASL_SSL": self.sasl_ssl_port}
        advertised = ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in names)
        lines = [f"listeners={advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
                 f"advertised.listeners={advertised}",
                 "listener.security.protocol.map=" + ",".join(f"{n}:{n}" for n in names) + ",CONTROLLER:PLAINTEXT",
                 "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"]
        for listener in names[1:]:
            for mechanism in ("scram-sha-256", "scram-sha-512"):
                lines.append(f"listener.name.{listener.lower()}.{mechanism}.sasl.jaas.config="
                             "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if tls:
            lines += ["listener.name.sasl_ssl.ssl.keystore.type=PEM",
                      f"listener.name.sasl_ssl.ssl.keystore.location={tls.keystore}"]
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
