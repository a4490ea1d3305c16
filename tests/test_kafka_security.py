"""Kafka with SASL (SCRAM) and TLS: the settings refuse what cannot work, and every kind of client of Vigie
(topics apply, producer, consumer, admin, broker probe, fetch_record, the grabber's publisher and the
correlator's faust app) works against a real broker with the right credentials; a wrong password or an
untrusted certificate is a clear error at once, without the password in it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pydantic
import pytest

from tests.secure_kafka import SecureBroker, make_tls, refused, roundtrip, vigie
from tests.stack import consume, free_port, health, service, terminate
from vigie.core.authorisations import authorise_cameras
from vigie.core.errors import ConfigError
from vigie.core.kafka import apply_topics
from vigie.core.kafka_security import client_options, environment
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

PASSWORD = "Kafka-pw-5e1d/+%:@x"  # characters that need care in URLs and JAAS lines
WRONG = "Not-the-pw-9a7c"

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory):
    """A private broker with SASL_PLAINTEXT and SASL_SSL listeners; user ``vigie`` with :data:`PASSWORD`."""
    var = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls(var / "tls")
    broker = SecureBroker(var / "broker", {"vigie": PASSWORD}, tls)
    broker.start()
    right, wrong = var / "password", var / "wrong"
    right.write_text(PASSWORD + "\n")
    wrong.write_text(WRONG + "\n")
    try:
        yield broker, tls, right, wrong
    finally:
        broker.stop()


def test_settings_refuse_incomplete_security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SASL without a user or password, an unreadable password file or a missing CA file are errors that
    say which setting; the password never shows in the settings' repr or errors."""
    secret = tmp_path / "pw"
    secret.write_text("Repr-pw-61aa\n")
    cases = {
        "needs sasl_username": dict(security_protocol="SASL_SSL", sasl_password_file=str(secret)),
        "needs a password": dict(security_protocol="SASL_PLAINTEXT", sasl_username="vigie"),
        "cannot read secret file": dict(security_protocol="SASL_PLAINTEXT", sasl_username="vigie",
                                        sasl_password_file=str(tmp_path / "absent")),
        "ssl_cafile": dict(security_protocol="SSL", ssl_cafile=str(tmp_path / "ca.pem")),
        "PLAIN sends the password": dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                         sasl_username="vigie", sasl_password="Inline-pw-0c3e"),
    }
    for expected, given in cases.items():
        with pytest.raises(pydantic.ValidationError, match=expected) as caught:
            KafkaSettings(**given)
        assert "Inline-pw-0c3e" not in str(caught.value)
    monkeypatch.setenv("VIGIE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VIGIE_KAFKA_SASL_USERNAME", "vigie")
    monkeypatch.setenv("VIGIE_KAFKA_SASL_PASSWORD", "Env-pw-11f0")
    settings = KafkaSettings()
    assert settings.sasl_secret() == "Env-pw-11f0" and "Env-pw-11f0" not in repr(settings) + str(settings)
    assert client_options(settings)["sasl_plain_password"] == "Env-pw-11f0"
    settings = KafkaSettings(sasl_password=None, sasl_password_file=str(secret), sasl_mechanism="SCRAM-SHA-256")
    assert settings.sasl_secret() == "Repr-pw-61aa" and "Repr-pw-61aa" not in repr(settings)
    monkeypatch.delenv("VIGIE_KAFKA_SASL_PASSWORD")
    cli = vigie(KafkaSettings(bootstrap="127.0.0.1:9", security_protocol="PLAINTEXT"), "topics", "apply",
                 env={"VIGIE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "gone")})
    assert cli.returncode == 2 and f"cannot read secret file {tmp_path / 'gone'}" in cli.stderr, cli.stderr


def test_sasl_plaintext_scram_sha_256(secure, namespace: str) -> None:
    broker, _, right, wrong = secure
    roundtrip(broker.sasl_settings(namespace, "vigie", right))
    refused(broker.sasl_settings(namespace, "vigie", wrong), (WRONG, PASSWORD),
            "refused the login of user 'vigie' (SCRAM-SHA-256", "SaslAuthenticationFailed")


def test_sasl_ssl_scram_sha_512_with_a_private_ca(secure, namespace: str, tmp_path: Path) -> None:
    broker, tls, right, wrong = secure
    roundtrip(broker.sasl_settings(namespace, "vigie", right, mechanism="SCRAM-SHA-512", cafile=tls.cafile))
    refused(broker.sasl_settings(namespace, "vigie", wrong, mechanism="SCRAM-SHA-512", cafile=tls.cafile),
            (WRONG, PASSWORD), "SCRAM-SHA-512 over SASL_SSL")
    roundtrip(KafkaSettings(bootstrap=f"127.0.0.1:{broker.ssl_port}", namespace=f"{namespace}ssl.",
                            security_protocol="SSL", ssl_cafile=str(tls.cafile)))  # TLS without a login
    other = make_tls(tmp_path / "other")  # a CA that did not sign the broker's certificate
    refused(broker.sasl_settings(namespace, "vigie", right, cafile=other.cafile), (WRONG, PASSWORD),
            "CERTIFICATE_VERIFY_FAILED")


def test_services_over_sasl_ssl(secure, namespace: str, tmp_path: Path) -> None:
    """The grabber publishes frames and the correlator's faust app joins its group over SASL_SSL."""
    broker, tls, right, wrong = secure
    settings = broker.sasl_settings(namespace, "vigie", right, cafile=tls.cafile)
    asyncio.run(apply_topics(settings, Topics(namespace).all(["main"])))
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: demo\n    source: synthetic://scene?seed=1&w=160&h=120&fps=10\n    fps: 5\n"))
    with service(settings, "grabber", "--cameras", str(cameras), log_dir=tmp_path) as (grabber, _):
        frames = consume(settings, Topics(namespace).frames.name, lambda rs: len(rs) >= 3, timeout_s=20)
    with service(settings, "correlator", log_dir=tmp_path, ready_timeout_s=60) as (correlator, _):
        pass
    assert len(frames) >= 3 and grabber.returncode == 0 and correlator.returncode == 0
    logs = (tmp_path / "grabber.log").read_text() + (tmp_path / "correlator.log").read_text()
    assert PASSWORD not in logs
    with pytest.raises(ConfigError, match="refused the login"):
        asyncio.run(apply_topics(broker.sasl_settings(namespace, "vigie", wrong, cafile=tls.cafile),
                                 Topics(namespace).all()))


def test_a_refused_service_says_so_and_takes_the_corrected_password_file(secure, namespace: str,
                                                                          tmp_path: Path) -> None:
    """A service whose login is refused waits (it is not restarted in a loop), says why in /healthz and its
    log without the password, and starts once the mounted secret holds the right password: the file is
    read again at each attempt."""
    broker, tls, right, _ = secure
    asyncio.run(apply_topics(broker.sasl_settings(namespace, "vigie", right, cafile=tls.cafile), Topics(namespace).all()))
    password_file = tmp_path / "password"
    password_file.write_text(WRONG + "\n")
    settings = broker.sasl_settings(namespace, "vigie", password_file, cafile=tls.cafile)
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: demo\n    source: synthetic://scene?seed=1&w=160&h=120&fps=10\n"))
    port = free_port()
    with open(tmp_path / "grabber.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vigie", "--kafka", settings.bootstrap, "--namespace",
                                 namespace, "grabber", "--cameras", str(cameras), "--http-port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **environment(settings)})
    try:
        refused_body = _wait_health(port, lambda h: "refused the login" in h.get("waiting_for", ""), proc)
        password_file.write_text(PASSWORD + "\n")  # the secret is corrected (a Kubernetes Secret updated)
        _wait_health(port, lambda h: h.get("state") == "running", proc)
    finally:
        terminate(proc, 30)
    assert proc.returncode == 0
    text = json.dumps(refused_body) + (tmp_path / "grabber.log").read_text()
    assert "refused the login of user 'vigie'" in text
    assert WRONG not in text and PASSWORD not in text


def _wait_health(port: int, condition, proc: subprocess.Popen, timeout_s: float = 30) -> dict:  # noqa: ANN001
    """The first /healthz body of the service at ``port`` for which ``condition(body)`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = health(port) or {}
        if condition(body):
            return body
        assert proc.poll() is None, f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
