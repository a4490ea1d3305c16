"""Deployment descriptions stay in step with the code: every command they run is one `vigie` accepts,
and the durability they ask of Kafka (replication factor, min.insync.replicas) fits their brokers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from vigie.cli import build_parser
from vigie.core.config import load_yaml_model, validate_yaml_text
from vigie.correlator.config import CorrelatorPolicy, Routing
from vigie.core.cameras import CamerasFile
from vigie.core.lifecycle import Service, http_app
from vigie.core.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
#: The Vigie services of docker-compose.yml and deploy/k8s (their command's first word).
VIGIE_SERVICES = {"topics", "grabber", "detector", "correlator", "station", "register", "evidence"}


def _k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def vigie_services(compose: dict) -> dict[str, dict]:
    """The services of a compose file that run the Vigie image, by name."""
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith("vigie:")}


def test_compose_services_run_valid_vigie_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {name: svc["command"] for name, svc in vigie_services(compose).items()}
    assert set(commands) == VIGIE_SERVICES
    for name, command in commands.items():
        args = build_parser().parse_args(command)
        assert args.command == name
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert int(compose["services"]["kafka"]["environment"]["KAFKA_LOG_RETENTION_HOURS"]) <= 720


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ha.yml"]])
def test_compose_config_when_the_plugin_exists(files: list[str]) -> None:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose plugin not installed here; the YAML is checked by the tests of this file")
    subprocess.run([docker, "compose", *[a for f in files for a in ("-f", str(ROOT / f))], "config", "-q"], check=True)


def test_kubernetes_manifests_run_valid_vigie_commands() -> None:
    docs = _k8s_documents()
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (ROOT / "deploy" / "k8s" / resource).exists(), resource
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} >= {
        "vigie-grabber", "vigie-detector", "vigie-correlator", "vigie-station", "vigie-topics"}
    for workload in workloads:
        container = workload["spec"]["template"]["spec"]["containers"][0]
        build_parser().parse_args(container["args"])
    files = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-files")
    validate_yaml_text(files["data"]["cameras.yaml"], CamerasFile)
    routing = Routing.model_validate(yaml.safe_load(files["data"]["routing.yaml"]))
    assert "supervisors" in routing.all_stations()  # the escalation station gets its alert topic
    CorrelatorPolicy.model_validate(yaml.safe_load(files["data"]["policy.yaml"]))


def test_demo_files_are_valid() -> None:
    assert load_yaml_model(ROOT / "deploy" / "demo" / "routing.yaml", Routing).all_stations() == ["main"]
    policy = load_yaml_model(ROOT / "deploy" / "demo" / "policy.yaml", CorrelatorPolicy)
    assert policy.priority.kinds["fire"] == 1 and policy.merge.reactivation_s["colour_query"] == 0
    for name in ("cameras.yaml", "cameras-synthetic.yaml"):
        validate_yaml_text((ROOT / "deploy" / "demo" / name).read_text(), CamerasFile)


def _merged(base: dict, override: dict) -> dict:
    """``docker compose -f base -f override``'s merge as far as these files need it: mappings merge key by
    key, any other value is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _compose(files: list[str]) -> dict:
    """The compose files of ``files`` (under the repository root) merged in that order."""
    compose: dict = {}
    for name in files:
        compose = _merged(compose, yaml.safe_load((ROOT / name).read_text()))
    return compose


def _check_durability(where: str, brokers: int, replication: int, min_insync: int) -> None:
    """Replicas fit the brokers; a write needs fewer in-sync replicas than there are, so one broker may be down."""
    assert 1 <= replication <= brokers, f"{where}: replication factor {replication} with {brokers} broker(s)"
    assert 1 <= min_insync <= replication, f"{where}: min.insync.replicas {min_insync} > replication {replication}"
    if replication > 1:
        assert min_insync < replication, f"{where}: min.insync.replicas {min_insync} leaves no broker to lose"


def _vigie_settings(env: dict) -> KafkaSettings:
    return KafkaSettings(bootstrap=env["VIGIE_KAFKA"], replication_factor=env["VIGIE_KAFKA_REPLICATION_FACTOR"],
                         min_insync_replicas=env["VIGIE_KAFKA_MIN_INSYNC_REPLICAS"])


@pytest.mark.parametrize("files, brokers", [(["docker-compose.yml"], 1),
                                            (["docker-compose.yml", "docker-compose.ha.yml"], 3)])
def test_compose_durability_fits_its_brokers(files: list[str], brokers: int) -> None:
    """Defect: replication was hard-coded to 1 and no deployment had more than one broker. The compose
    stack (one broker: 1 and 1) and its HA variant (three brokers: 3 and 2) say the same to the brokers and
    to every Vigie service, and what they ask fits the brokers."""
    services = _compose(files)["services"]
    nodes = {name: {k: str(v) for k, v in svc["environment"].items()}
             for name, svc in services.items() if svc.get("image", "").startswith("apache/kafka:")}
    assert len(nodes) == brokers
    assert {env["KAFKA_NODE_ID"] for env in nodes.values()} == {str(n) for n in range(1, brokers + 1)}
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in nodes.items()}
    for name, env in nodes.items():
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        _check_durability(f"{name} (topics)", brokers, int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]),
                          int(env["KAFKA_MIN_INSYNC_REPLICAS"]))
        _check_durability(f"{name} (transactions)", brokers, int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]),
                          int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]))
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
    assert len({env.get("CLUSTER_ID") for env in nodes.values()}) == 1
    node = next(iter(nodes.values()))
    vigie = vigie_services({"services": services})
    assert set(vigie) == VIGIE_SERVICES
    for name, svc in vigie.items():
        settings = _vigie_settings(svc["environment"])
        assert set(settings.bootstrap.split(",")) == {f"{n}:9092" for n in nodes}, name
        _check_durability(name, brokers, settings.replication_factor, settings.min_insync_replicas)
        assert settings.replication_factor == int(node["KAFKA_DEFAULT_REPLICATION_FACTOR"]), name
        assert settings.min_insync_replicas == int(node["KAFKA_MIN_INSYNC_REPLICAS"]), name
        for broker in nodes:
            assert broker in svc["depends_on"] or "topics" in svc["depends_on"], name
    if brokers == 3:
        assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)


def test_kubernetes_durability_fits_the_kafka_cluster() -> None:
    """Defect: the Kubernetes manifests had no Kafka of their own and no durability setting. vigie-config
    asks for 3 replicas and min.insync.replicas 2 on the three-node Strimzi cluster of deploy/k8s/kafka,
    whose brokers say the same, and points at that cluster's bootstrap service."""
    folder = ROOT / "deploy" / "k8s" / "kafka"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((folder / resource).read_text()) if d]
    cluster = next(d for d in docs if d["kind"] == "Kafka")
    name = cluster["metadata"]["name"]
    pools = [d for d in docs if d["kind"] == "KafkaNodePool" and d["metadata"]["labels"]["strimzi.io/cluster"] == name]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers == 3 and sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) == 3
    config = cluster["spec"]["kafka"]["config"]
    _check_durability("Kafka (topics)", brokers, config["default.replication.factor"], config["min.insync.replicas"])
    _check_durability("Kafka (transactions)", brokers, config["transaction.state.log.replication.factor"],
                      config["transaction.state.log.min.isr"])
    assert config["offsets.topic.replication.factor"] == config["default.replication.factor"]
    plain = next(listener for listener in cluster["spec"]["kafka"]["listeners"] if not listener["tls"])
    env = next(d for d in _k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-config")
    settings = _vigie_settings(env["data"])
    assert settings.bootstrap == f"{name}-kafka-bootstrap.{kustomization['namespace']}.svc:{plain['port']}"
    _check_durability("vigie-config", brokers, settings.replication_factor, settings.min_insync_replicas)
    assert (settings.replication_factor, settings.min_insync_replicas) == (
        config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)


def test_kubernetes_probes_ask_readiness_of_healthz_and_liveness_of_livez() -> None:
    """Defect: /healthz answered 200 while a service was still starting and served as liveness too, so a
    service waiting for its broker or degraded could be restarted for nothing. Readiness asks /healthz
    (503 until ready), liveness /livez (200 while the process is alive), and both exist."""
    routes = {r.resource.canonical for r in http_app(Service(KafkaSettings())).router.routes()}
    assert {"/healthz", "/livez"} <= routes
    deployments = {d["metadata"]["name"]: d for d in _k8s_documents() if d["kind"] == "Deployment"}
    for name in ("vigie-grabber", "vigie-detector", "vigie-station", "vigie-correlator",  # the correlator's: faust pages
                 "vigie-register", "vigie-evidence"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name


#: Settings that must come from a file, never a value (the SASL password).
INLINE_SECRETS = ("VIGIE_KAFKA_SASL_PASSWORD",)


def sasl_compose() -> dict:
    """docker-compose.yml with docker-compose.sasl.yml over it."""
    return _compose(["docker-compose.yml", "docker-compose.sasl.yml"])


def make_secrets(folder: Path) -> Path:
    """The secret files of docker-compose.sasl.yml made by deploy/secrets/make-secrets.sh into ``folder``."""
    subprocess.run([str(ROOT / "deploy" / "secrets" / "make-secrets.sh"), str(folder)], check=True,
                   capture_output=True, timeout=120)
    return folder


def settings_in(env: dict, secrets: Path, mount: str) -> KafkaSettings:
    """The Kafka settings a service gets from ``env``, its secret files at ``mount`` read from ``secrets``."""
    given = {k: str(v).replace(mount, str(secrets)) for k, v in env.items()}
    fields = {"VIGIE_KAFKA": "bootstrap", "VIGIE_KAFKA_SECURITY_PROTOCOL": "security_protocol",
              "VIGIE_KAFKA_SASL_MECHANISM": "sasl_mechanism", "VIGIE_KAFKA_SASL_USERNAME": "sasl_username",
              "VIGIE_KAFKA_SASL_PASSWORD_FILE": "sasl_password_file", "VIGIE_KAFKA_SSL_CAFILE": "ssl_cafile"}
    return KafkaSettings(**{field: given[name] for name, field in fields.items() if name in given})


def test_compose_sasl_variant_gives_every_service_its_credentials_as_files(tmp_path: Path) -> None:
    """docker-compose.sasl.yml: every Vigie service logs in with SASL_SSL and SCRAM as user vigie, its
    password and the CA from Docker secrets (files under deploy/secrets/, ignored by git); no secret value
    in the compose files; the broker's entrypoint exists and its healthcheck does not use PLAINTEXT."""
    compose = sasl_compose()
    services = compose["services"]
    declared = compose["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"}, name  # a file, never `environment` or inline content
        path = (ROOT / secret["file"]).resolve()
        assert path.parent == ROOT / "deploy" / "secrets", name
        done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
        assert done.returncode == 0, f"{secret['file']} would be committed"
    secrets = make_secrets(tmp_path / "secrets")
    assert {name for name in declared} <= {p.name for p in secrets.iterdir()}
    vigie = vigie_services(compose)
    assert set(vigie) == VIGIE_SERVICES
    for name, svc in vigie.items():
        env = svc["environment"]
        assert not set(INLINE_SECRETS) & set(env), name
        settings = settings_in(env, secrets, "/run/secrets")
        assert (settings.security_protocol, settings.sasl_mechanism, settings.sasl_username) == (
            "SASL_SSL", "SCRAM-SHA-512", "vigie"), name
        assert settings.sasl_secret() == (secrets / "kafka-vigie-password").read_text().strip()
        for path in (env["VIGIE_KAFKA_SASL_PASSWORD_FILE"], env["VIGIE_KAFKA_SSL_CAFILE"]):
            assert path.removeprefix("/run/secrets/") in svc["secrets"], (name, path)
        build_parser().parse_args(svc["command"])
    kafka = services["kafka"]
    script = kafka["entrypoint"][-1]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"] if v.count(":") == 2}
    assert (ROOT / mounted[script]).is_file()
    assert set(kafka["secrets"]) == set(declared)
    assert "client.properties" in kafka["healthcheck"]["test"][-1]
    text = (ROOT / "docker-compose.sasl.yml").read_text()
    for secret_file in secrets.glob("kafka-*-password"):
        assert secret_file.read_text().strip() not in text


def test_compose_sasl_broker_properties(tmp_path: Path) -> None:
    """The broker's entrypoint renders SASL_SSL listeners with SCRAM, the broker's own login from its
    secret file, and its TLS key store and trust store from the secret files."""
    secrets = make_secrets(tmp_path / "secrets")
    out = tmp_path / "server.properties"
    subprocess.run(["bash", str(ROOT / "deploy" / "kafka" / "sasl-ssl-broker.sh"), "render", str(out)], check=True,
                   env={**os.environ, "VIGIE_SECRETS_DIR": str(secrets)}, timeout=30)
    props = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line and line[0] != "#")
    assert props["listeners"] == "SASL_SSL://:9092,CONTROLLER://:9093"
    assert props["advertised.listeners"] == "SASL_SSL://kafka:9092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    broker_password = (secrets / "kafka-broker-password").read_text().strip()
    assert f'username="broker" password="{broker_password}";' in props[
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["ssl.keystore.location"] == f"{secrets}/kafka-broker-keystore.pem"
    assert props["ssl.truststore.location"] == f"{secrets}/kafka-ca.pem"
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def _kafka_config_env() -> dict:
    """vigie-config of the SASL overlay (deploy/k8s-sasl/config.yaml) over the base's."""
    base = next(d for d in _k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-config")
    patch = yaml.safe_load((ROOT / "deploy" / "k8s-sasl" / "config.yaml").read_text())
    assert patch["metadata"]["name"] == "vigie-config"
    return {**base["data"], **patch["data"]}


def test_kubernetes_sasl_overlay_mounts_the_credentials_in_every_workload(tmp_path: Path) -> None:
    """deploy/k8s-sasl: vigie-config points at the Strimzi listener with TLS and SCRAM-SHA-512 as the
    KafkaUser vigie; every workload mounts the Secret vigie-kafka where the password and CA files are
    looked for; the overlay holds no Secret and no password value."""
    folder = ROOT / "deploy" / "k8s-sasl"
    for path in folder.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), path
    env = _kafka_config_env()
    assert not set(INLINE_SECRETS) & set(env)
    kafka_docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "kafka" / "kafka.yaml").read_text()) if d]
    cluster = next(d for d in kafka_docs if d["kind"] == "Kafka")
    listener = next(item for item in cluster["spec"]["kafka"]["listeners"] if item["tls"])
    assert listener["authentication"]["type"] == env["VIGIE_KAFKA_SASL_MECHANISM"].lower()
    assert env["VIGIE_KAFKA"] == f"{cluster['metadata']['name']}-kafka-bootstrap.kafka.svc:{listener['port']}"
    user = yaml.safe_load((ROOT / "deploy" / "k8s" / "kafka" / "vigie-user.yaml").read_text())
    assert user["metadata"]["name"] == env["VIGIE_KAFKA_SASL_USERNAME"]
    assert user["spec"]["authentication"]["type"] == listener["authentication"]["type"]
    assert "userOperator" in cluster["spec"]["entityOperator"]
    files = tmp_path / "run" / "secrets" / "vigie-kafka"
    files.mkdir(parents=True)
    (files / "password").write_text("x" * 32)
    (files / "ca.crt").write_text("")
    settings = settings_in(env, tmp_path / "run" / "secrets", "/run/secrets")
    assert (settings.security_protocol, settings.sasl_username) == ("SASL_SSL", "vigie")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed here: the overlay's patches are not rendered")
    rendered = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-config")
    assert config["data"] == env
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} >= {f"vigie-{name}" for name in VIGIE_SERVICES}
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        secret_volumes = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        for key in ("VIGIE_KAFKA_SASL_PASSWORD_FILE", "VIGIE_KAFKA_SSL_CAFILE"):
            folder_of, _, item = env[key].rpartition("/")
            assert secret_volumes[mounts[folder_of]]["secretName"] == "vigie-kafka", workload["metadata"]["name"]
            assert item in ("password", "ca.crt")
        assert {"configMapRef": {"name": "vigie-config"}} in spec["containers"][0]["envFrom"]
        # a Secret's files belong to root (mode 0400 or 0440): the image's user reads them through fsGroup
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"] == 10001
        if build_parser().parse_args(spec["containers"][0]["args"]).command in DATABASE_SERVICES:
            assert database_secret_of(workload, env) == DATABASE_SECRET
    grabber = next(d for d in workloads if d["metadata"]["name"] == "vigie-grabber")["spec"]["template"]["spec"]
    cameras = next(v for v in grabber["volumes"] if v["name"] == "camera-credentials")["secret"]
    assert cameras["optional"] is True


#: Vigie services that use the database (accounts, console sessions, the register) and the Secret
#: holding its password on Kubernetes.
DATABASE_SERVICES, DATABASE_SECRET = {"station", "register", "evidence"}, "vigie-database"


def _named_mounts(svc: dict) -> dict[str, str]:
    """A compose service's mounts: path in the container -> volume (or host folder)."""
    return {v.split(":")[1]: v.split(":")[0] for v in svc.get("volumes", [])}


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ha.yml"],
                                   ["docker-compose.yml", "docker-compose.sasl.yml"]])
def test_compose_database_reaches_every_service_that_uses_it(files: list[str]) -> None:
    """PostgreSQL (official image, data on a named volume) takes its password from a file that the
    one-shot service db-password makes into a volume; the station, the register and evidence (and only they) get
    its URL, without a password, and that file; the register answers its healthcheck on /healthz.
    The HA and SASL overlays keep all of it."""
    compose = _compose(files)
    services = compose["services"]
    db = services["db"]
    env = {k: str(v) for k, v in db["environment"].items()}
    assert db["image"].startswith("postgres:") and "POSTGRES_PASSWORD" not in env
    assert _named_mounts(db)["/var/lib/postgresql/data"] in compose["volumes"]
    folder, _, item = env["POSTGRES_PASSWORD_FILE"].rpartition("/")
    volume = _named_mounts(db)[folder]
    assert volume in compose["volumes"]
    maker = services["db-password"]
    assert _named_mounts(maker) == {folder: volume} and maker["restart"] == "no"
    assert db["depends_on"]["db-password"] == {"condition": "service_completed_successfully"}
    assert db["healthcheck"]["test"][-1].startswith("pg_isready")
    users = {name for name, svc in services.items() if "VIGIE_DATABASE_URL" in svc.get("environment", {})}
    assert users == DATABASE_SERVICES
    for name in users:
        svc = services[name]
        url = make_url(svc["environment"]["VIGIE_DATABASE_URL"])
        assert url.password is None, name
        assert (url.get_backend_name(), url.host, url.username, url.database) == (
            "postgresql", "db", env["POSTGRES_USER"], env["POSTGRES_DB"]), name
        own_folder, _, own_item = svc["environment"]["VIGIE_DATABASE_PASSWORD_FILE"].rpartition("/")
        assert (own_item, _named_mounts(svc)[own_folder]) == (item, volume), name
        assert f"{volume}:{own_folder}:ro" in svc["volumes"], name
        assert svc["depends_on"]["db"] == {"condition": "service_healthy"}, name
        assert not [k for k in svc["environment"] if k.endswith("PASSWORD")], name
    register = services["register"]
    port = build_parser().parse_args(register["command"]).http_port
    assert f"127.0.0.1:{port}/healthz" in register["healthcheck"]["test"][-1]
    assert register["stop_grace_period"] == services["station"]["stop_grace_period"] == "40s"
    assert register.get("deploy", {}).get("replicas", 1) == 1


def _make_db_password(folder: Path) -> Path:
    """Run docker-compose.yml's db-password command with its volume at ``folder``; returns the password file."""
    svc = _compose(["docker-compose.yml"])["services"]["db-password"]
    (mount,) = _named_mounts(svc)
    script = svc["command"][0].replace("$$", "$").replace(mount, str(folder))
    folder.mkdir(exist_ok=True)  # the volume
    subprocess.run([*svc["entrypoint"], script], check=True, timeout=30)
    return folder / "password"


def _vigie(env: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_compose_database_settings_work_on_postgresql(postgres, broker: str, namespace: str, tmp_path: Path) -> None:
    """db-password's command makes a random password once (a second start keeps it), readable by the
    services' user; with it the station's settings log into a real PostgreSQL (a role made with that
    password, as the postgres image's initdb makes it), the first account is created as README says,
    `vigie register verify` passes, and a pg_dump restored into another database verifies too."""
    password = _make_db_password(tmp_path / "db-password")
    first = password.read_text()
    assert re.fullmatch(r"[0-9a-f]{48}", first) and password.stat().st_mode & 0o777 == 0o444
    assert _make_db_password(tmp_path / "db-password").read_text() == first
    role = f"vigie_{uuid.uuid4().hex[:10]}"
    postgres.psql("postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{first}'")
    postgres.psql("postgres", f"CREATE DATABASE {role} OWNER {role}")
    station = _compose(["docker-compose.yml"])["services"]["station"]["environment"]
    url = make_url(station["VIGIE_DATABASE_URL"]).set(host="127.0.0.1", port=postgres.port, username=role,
                                                      database=role)
    env = {**os.environ, **{k: str(v) for k, v in station.items()}, "VIGIE_KAFKA": broker, "VIGIE_NAMESPACE": namespace,
           "VIGIE_DATABASE_URL": url.render_as_string(), "VIGIE_DATABASE_PASSWORD_FILE": str(password)}
    done = _vigie(env, "users", "add", "admin", "--roles", "admin,supervisor", "--stations", "main", "--one-time")
    assert done.returncode == 0, done.stderr
    assert "one-time password of admin" in done.stdout and first not in done.stdout + done.stderr
    done = _vigie(env, "register", "verify")
    assert (done.returncode, done.stdout.strip()) == (0, "chain intact: 0 entries"), done.stderr
    dump, pg = tmp_path / "vigie.dump", {**os.environ, "PGPASSWORD": first}
    subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", role, "-Fc", "-f", str(dump), role],
                   check=True, env=pg, timeout=60)
    postgres.psql("postgres", f"CREATE DATABASE {role}_restored OWNER {role}")
    subprocess.run(["pg_restore", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", role, "--no-owner", "-d",
                    f"{role}_restored", str(dump)], check=True, env=pg, timeout=60)
    restored = {**env, "VIGIE_DATABASE_URL": url.set(database=f"{role}_restored").render_as_string()}
    assert _vigie(restored, "register", "verify").returncode == 0
    assert "admin" in _vigie(restored, "users", "list").stdout


def database_secret_of(workload: dict, config: dict) -> str:
    """The Secret a Kubernetes workload reads the database password from (asserting how: VIGIE_DATABASE_URL
    of vigie-config without a password, VIGIE_DATABASE_PASSWORD_FILE naming the key `password` of a
    Secret volume mounted read-only)."""
    spec = workload["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert {"configMapRef": {"name": "vigie-config"}} in container["envFrom"]
    assert make_url(config["VIGIE_DATABASE_URL"]).password is None
    env = {e["name"]: e["value"] for e in container["env"]}
    folder, _, item = env["VIGIE_DATABASE_PASSWORD_FILE"].rpartition("/")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == folder)
    assert item == "password" and mount["readOnly"] is True
    secret = next(v["secret"] for v in spec["volumes"] if v["name"] == mount["name"])
    return secret["secretName"]


def test_kubernetes_register_and_database() -> None:
    """deploy/k8s: the register is one replica, strategy Recreate (never two writers), probed on /healthz
    and /livez and scraped on its port; the station and the register (and only they) get the database URL
    from vigie-config and its password from the Secret vigie-database as a file, which the CloudNativePG
    cluster of deploy/k8s/postgres takes as its owner's; no password and no Secret in any manifest."""
    docs = _k8s_documents()
    postgres = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "postgres" / "cluster.yaml").read_text())]
    for doc in docs + postgres:
        assert doc["kind"] != "Secret"
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert not [e for e in container.get("env", []) if e["name"].endswith("PASSWORD") or "valueFrom" in e]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-config")["data"]
    assert not [key for key in config if key.endswith("PASSWORD")]
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "Job")}
    register = workloads["vigie-register"]
    assert register["spec"]["replicas"] == 1 and register["spec"]["strategy"] == {"type": "Recreate"}
    template = register["spec"]["template"]
    container = template["spec"]["containers"][0]
    port = build_parser().parse_args(container["args"]).http_port
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                                   "prometheus.io/path": "/metrics"}
    assert (container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]) == (
        {"path": "/healthz", "port": "http"}, {"path": "/livez", "port": "http"})
    users = {name for name, w in workloads.items()
             if build_parser().parse_args(w["spec"]["template"]["spec"]["containers"][0]["args"]).command
             in DATABASE_SERVICES}
    assert users == {"vigie-station", "vigie-register", "vigie-evidence"}
    for name in users:
        assert database_secret_of(workloads[name], config) == DATABASE_SECRET, name
    for name, workload in workloads.items():  # the image's user reads the mounted Secrets through fsGroup
        context = workload["spec"]["template"]["spec"]["securityContext"]
        assert context["fsGroup"] == context["runAsUser"] == 10001 and context["runAsNonRoot"], name
    for name in set(workloads) - users:
        assert "env" not in workloads[name]["spec"]["template"]["spec"]["containers"][0], name
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "postgres" / "kustomization.yaml").read_text())
    cluster = next(d for d in postgres if d["kind"] == "Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    url = make_url(config["VIGIE_DATABASE_URL"])
    assert (url.host, url.port, url.database, url.username) == (
        f"{cluster['metadata']['name']}-rw.{kustomization['namespace']}.svc", 5432, initdb["database"], initdb["owner"])
    assert initdb["secret"]["name"] == DATABASE_SECRET and kustomization["namespace"] == "vigie"
    assert cluster["spec"]["instances"] >= 3 and cluster["spec"]["minSyncReplicas"] >= 1


def test_the_evidence_store_is_written_by_the_evidence_service_and_read_by_the_stations() -> None:
    """One evidence store: in compose a named volume, read-write for the evidence service and read-only for
    the station, both given its path; on Kubernetes a ReadWriteMany claim mounted in both Deployments (the
    evidence one a single replica, strategy Recreate: the purge runs once)."""
    services = _compose(["docker-compose.yml"])["services"]
    paths = {}
    for name in ("evidence", "station"):
        args = build_parser().parse_args(services[name]["command"])
        paths[name] = args.store if name == "evidence" else args.evidence_store
        assert _named_mounts(services[name])[paths[name]] == "evidence-data", name
    assert paths["evidence"] == paths["station"]
    assert f"evidence-data:{paths['station']}:ro" in services["station"]["volumes"]
    documents = _k8s_documents()
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "vigie-evidence")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert deployments["vigie-evidence"]["spec"]["replicas"] == 1
    assert deployments["vigie-evidence"]["spec"]["strategy"]["type"] == "Recreate"
    for name in ("vigie-evidence", "vigie-station"):
        pod = deployments[name]["spec"]["template"]["spec"]
        volume = next(v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName")
                      == "vigie-evidence")
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume)
        args = build_parser().parse_args(pod["containers"][0]["args"])
        assert mount["mountPath"] == (args.store if name == "vigie-evidence" else args.evidence_store), name
