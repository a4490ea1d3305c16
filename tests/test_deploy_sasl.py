"""The SASL_SSL variant of docker-compose, run without Docker: the broker's own entrypoint
(deploy/kafka/sasl-ssl-broker.sh) starts a real broker from the secret files of
deploy/secrets/make-secrets.sh, and the services' settings of docker-compose.sasl.yml (their secret files
read from the same folder) create the topics, produce and consume; a wrong password is refused at once.

The image's /opt/kafka/bin scripts are stood in for by two lines each over the project's own Kafka jars
(deploy/kafka/lib, the broker the other tests use)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.secure_kafka import refused, roundtrip
from tests.stack import terminate
from tests.test_deploy import make_secrets, sasl_compose, settings_in
from vigie.chaos.cluster import free_port

ROOT = Path(__file__).resolve().parents[1]
KAFKA = ROOT / "deploy" / "kafka"

pytestmark = pytest.mark.broker


def _kafka_home(folder: Path) -> Path:
    """A stand-in for the image's /opt/kafka: bin/kafka-storage.sh and bin/kafka-server-start.sh."""
    subprocess.run([str(KAFKA / "kafka.sh"), "resolve"], check=True, capture_output=True, timeout=300)
    java = f'java -cp "{KAFKA / "lib"}/*"'
    (folder / "bin").mkdir(parents=True)
    for name, main in (("kafka-storage.sh", "kafka.tools.StorageTool"), ("kafka-server-start.sh", "kafka.Kafka")):
        script = folder / "bin" / name
        script.write_text(f"#!/usr/bin/env bash\nexec {java} -Xmx512m -Dkafka.logs.dir={folder}/logs "
                          f"-Dlog4j2.configurationFile={KAFKA / 'log4j2.properties'} {main} \"$@\"\n")
        script.chmod(0o755)
    return folder


@pytest.fixture
def compose_broker(tmp_path: Path):
    """The compose variant's broker on 127.0.0.1 (advertised as localhost, a name of its certificate);
    yields ``(bootstrap, secrets folder)``."""
    secrets = make_secrets(tmp_path / "secrets")
    port = free_port()
    env = {**os.environ, "KAFKA_HOME": str(_kafka_home(tmp_path / "kafka-home")), "VIGIE_SECRETS_DIR": str(secrets),
           "KAFKA_LOG_DIRS": str(tmp_path / "data"), "KAFKA_ADVERTISED_HOST": "localhost", "LISTEN_HOST": "127.0.0.1",
           "BROKER_PORT": str(port), "CONTROLLER_PORT": str(free_port()), "VIGIE_BROKER_RUN_DIR": str(tmp_path / "run"),
           **{k: str(v) for k, v in sasl_compose()["services"]["kafka"]["environment"].items()
              if k in ("CLUSTER_ID", "KAFKA_NODE_ID")}}
    with open(tmp_path / "broker.log", "wb") as log:
        proc = subprocess.Popen(["bash", str(KAFKA / "sasl-ssl-broker.sh")], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"Kafka Server started" not in (tmp_path / "broker.log").read_bytes() + _server_log(tmp_path):
            assert proc.poll() is None, (tmp_path / "broker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the broker did not start in 60 s"
            time.sleep(0.3)
        yield f"localhost:{port}", secrets
    finally:
        terminate(proc, 30)


def _server_log(tmp_path: Path) -> bytes:
    log = tmp_path / "kafka-home" / "logs" / "server.log"
    return log.read_bytes() if log.exists() else b""


def test_compose_sasl_services_reach_the_compose_sasl_broker(compose_broker, namespace: str) -> None:
    bootstrap, secrets = compose_broker
    env = dict(sasl_compose()["services"]["grabber"]["environment"], VIGIE_KAFKA=bootstrap)
    settings = settings_in(env, secrets, "/run/secrets").model_copy(update={"namespace": namespace})
    roundtrip(settings)
    password = (secrets / "kafka-vigie-password").read_text().strip()
    (secrets / "wrong").write_text("not-" + password)
    wrong = settings.model_copy(update={"sasl_password_file": str(secrets / "wrong")})
    refused(wrong, (password, "not-" + password), "refused the login of user 'vigie' (SCRAM-SHA-512 over SASL_SSL)")
