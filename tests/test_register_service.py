"""The register service against the real broker and real databases: every audit entry appended exactly
once (replays add nothing, a SIGKILL mid-stream loses and duplicates nothing), malformed records to the
dead-letter topic, an unreachable database named at start-up, a read-only database waited out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.register_support import counts, keep_log_handlers, run, sample, seed, sql
from tests.stack import free_port
from vigie.cli import main
from vigie.contracts.v1 import AuditEntry
from vigie.core import audit
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.kafka import make_producer
from vigie.core.lifecycle import State, http_app
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.register.app import RegisterService, RegisterSettings
from vigie.register.query import list_entries, verify_chain

_handlers = pytest.fixture(autouse=True)(keep_log_handlers)
DAY_NS = 86400 * 10**9


async def produce(kafka: KafkaSettings, messages: list[AuditEntry], raw: list[bytes] = ()) -> None:
    """Write ``messages`` (and ``raw`` values) to the audit topic and wait for the broker to hold them."""
    topics = Topics(kafka.namespace)
    log_ = audit.AuditLog(producer := make_producer(kafka), topics.audit)
    await producer.start()
    try:
        for value in raw:
            await producer.send_and_wait(topics.audit.name, value, key=b"bad")
        futures = [await producer.send(topics.audit.name, topics.audit.encode(m), key=m.camera_id.encode())
                   for m in messages]
        await asyncio.gather(*futures)
        del log_
    finally:
        await producer.stop()


async def wait_for(check, timeout_s: float = 30.0, every_s: float = 0.2):  # noqa: ANN001, ANN201
    """Await ``check()`` until it returns something true; returns it. Fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out: {check} last gave {value!r}"
        await asyncio.sleep(every_s)


async def count(url: str, kind: str | None = None) -> int:
    return (await counts(url, kind))[0]


@contextlib.asynccontextmanager
async def service(kafka: KafkaSettings, url: str):  # noqa: ANN201
    """A started RegisterService running in this loop, with its HTTP app on a free port: (service, base URL)."""
    settings = RegisterSettings(kafka=kafka, database=DatabaseSettings(url=url), batch_size=100)
    register = RegisterService(settings)
    await register.start()
    register.state = State.RUNNING
    runner = aiohttp.web.AppRunner(http_app(register))
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    task = asyncio.create_task(register.run(stop))
    try:
        yield register, f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await register.stop()
        await runner.cleanup()


async def healthz(base: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as response:
        return response.status, await response.json()


async def reset_group(kafka: KafkaSettings) -> None:
    """Set the committed offset of the register's group on the audit topic back to 0 (a replay)."""
    tp = TopicPartition(Topics(kafka.namespace).audit.name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=kafka.group("register"),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 0})
    finally:
        await consumer.stop()


def test_entries_appended_once_and_replay_adds_nothing(kafka: KafkaSettings, tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'register.db'}"
    messages = sample(300)
    bad = [b"\xff\xff\xff", audit.entry(AuditEntry.KIND_VIEW, service="x").__class__(kind=1).SerializeToString()]

    async def scenario() -> None:
        await produce(kafka, messages[:150], raw=bad)
        async with service(kafka, url) as (register, base):
            await wait_for(lambda: _at_least(url, None, 100))
            await produce(kafka, messages[150:])
            await wait_for(lambda: _equal(url, None, 300))
            status, body = await healthz(base)
            assert status == 200 and body["state"] == "running" and body["head_seq"] == 300
            assert register.appended._value.get() == 300
            async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
                metrics = await response.text()
            assert "vigie_register_appended_total 300.0" in metrics and "vigie_consumer_lag" in metrics
        async with service(kafka, url) as (register, _):  # reads nothing again: the offsets were committed
            await produce(kafka, sample(1, start=300))
            await wait_for(lambda: _equal(url, None, 301))
            assert register.duplicates._value.get() == 0
        await reset_group(kafka)
        async with service(kafka, url) as (register, _):  # the whole topic again, from offset 0
            await wait_for(lambda: _duplicates(register, 301))
            await asyncio.sleep(0.5)
            assert register.appended._value.get() == 0
        assert await counts(url) == (301, 301)
        engine = make_engine(DatabaseSettings(url=url))
        try:
            result = await verify_chain(engine)
            assert result.ok and result.checked == 301
            rows = await list_entries(engine, kind="login_failed", limit=1000)
            m = messages[3]
            assert len(rows) == 50 and (rows[0]["entry_id"], rows[0]["user"], rows[0]["at_ns"]) == (
                m.id, m.operator, m.at_ns)
            assert rows[0]["record"] == "frames/0/3" and rows[0]["service"] == "station"
        finally:
            await engine.dispose()
        letters = await _dead_letters(kafka, 4)
        assert [letter.offset for letter in letters] == [0, 1, 0, 1]  # read twice: the group was reset
        assert "not a vigie.v1.AuditEntry" in letters[0].reason and "without id" in letters[1].reason
        assert all(letter.service == "register" for letter in letters)

    run(scenario())


async def _at_least(url: str, kind: str | None, n: int) -> bool:
    return await count(url, kind) >= n


async def _equal(url: str, kind: str | None, n: int) -> bool:
    return await count(url, kind) == n


async def _duplicates(register: RegisterService, n: int) -> bool:
    return register.duplicates._value.get() >= n


async def _dead_letters(kafka: KafkaSettings, n: int) -> list:
    topics = Topics(kafka.namespace)
    consumer = AIOKafkaConsumer(topics.deadletter.name, bootstrap_servers=kafka.bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        found = []
        deadline = time.monotonic() + 15
        while len(found) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [topics.deadletter.decode(r.value) for r in records]
        return found
    finally:
        await consumer.stop()


def test_unreachable_database_at_start_is_named_without_its_password(kafka: KafkaSettings, capsys) -> None:  # noqa: ANN001
    port = free_port()  # nothing listens there
    code = main(["--namespace", kafka.namespace, "register", "--database",
                 f"postgresql://vigie:hunter2-secret@127.0.0.1:{port}/vigie", "--http-port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 3
    assert f"database postgresql://vigie:***@127.0.0.1:{port}/vigie" in err and "hunter2" not in err


def test_read_only_database_is_waited_out(kafka: KafkaSettings, postgres) -> None:  # noqa: ANN001
    name = f"reg_{uuid.uuid4().hex[:10]}"
    url = postgres.create_db(name)
    kafka = kafka.model_copy(update={"retry_initial_s": 0.2, "retry_max_s": 1.0})

    def read_only(on: bool) -> None:
        postgres.psql("postgres", f"ALTER DATABASE {name} SET default_transaction_read_only = {'on' if on else 'off'}")
        postgres.psql("postgres", f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

    async def scenario() -> None:
        async with service(kafka, url) as (register, base):
            await produce(kafka, sample(20))
            await wait_for(lambda: _equal(url, "view", 4))
            read_only(True)
            await produce(kafka, sample(40, start=20))
            status, body = await wait_for(lambda: _degraded(base))
            assert status == 200 and body["state"] == "degraded"
            reason = body["degraded"]["database"]["error"]
            assert "read-only" in reason and name in reason and "pg-test-only" not in str(body)
            assert body["degraded"]["database"]["waiting"] > 0
            await asyncio.sleep(1.5)
            assert await count(url, "view") == 4  # nothing taken meanwhile
            assert register.db_errors._value.get() >= 1
            read_only(False)
            await wait_for(lambda: _equal(url, "view", 10))
            status, body = await healthz(base)
            assert status == 200 and body["state"] == "running"
        assert await counts(url) == (60, 60)
        engine = make_engine(DatabaseSettings(url=url))
        try:
            assert (await verify_chain(engine)).ok
        finally:
            await engine.dispose()

    run(scenario())


async def _degraded(base: str):  # noqa: ANN202
    status, body = await healthz(base)
    return (status, body) if body["state"] == "degraded" else None


def test_sigkill_mid_stream_loses_and_duplicates_nothing(kafka: KafkaSettings, tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'register.db'}"
    total = 4000
    messages = sample(total, kinds=[AuditEntry.KIND_VIEW])

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "--log-level",
             "WARNING", "register", "--database", url, "--batch-size", "50", "--http-port", str(free_port())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "register.log", "ab"))

    async def scenario() -> None:
        first = start()
        try:
            await wait_for(lambda: _exists_with(url, 0), timeout_s=40, every_s=0.1)  # started: schema migrated
            writer = asyncio.create_task(_trickle(kafka, messages))
            await wait_for(lambda: _exists_with(url, 600), timeout_s=40, every_s=0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            at_kill = await count(url, "view")
            await writer
        finally:
            if first.poll() is None:
                first.kill()
        assert 600 <= at_kill < total, f"killed at {at_kill}: the register had finished, nothing tested"
        print(f"killed with {at_kill} of {total} entries appended")
        second = start()
        try:
            await wait_for(lambda: _equal(url, "view", total), timeout_s=60)
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        finally:
            if second.poll() is None:
                second.kill()
        views, distinct = await counts(url, "view")
        assert (views, distinct) == (total, total)
        engine = make_engine(DatabaseSettings(url=url))
        try:
            result = await verify_chain(engine)
            assert result.ok, result
        finally:
            await engine.dispose()

    run(scenario())


async def _trickle(kafka: KafkaSettings, messages: list[AuditEntry]) -> None:
    """Write ``messages`` in slices of 200 over a few seconds, so that the kill lands mid-stream."""
    for start in range(0, len(messages), 200):
        await produce(kafka, messages[start:start + 200])
        await asyncio.sleep(0.1)


async def _exists_with(url: str, n: int) -> bool:
    path = url.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return False
    try:
        return await count(url, "view") >= n
    except Exception:  # noqa: BLE001 - the schema is being created
        return False


def test_retention_at_start_keeps_the_chain_verifiable(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'register.db'}"
    now = time.time_ns()
    run(seed(url, sample(30, at_ns=now - 40 * DAY_NS) + sample(10, at_ns=now - DAY_NS, start=30)))
    settings = RegisterSettings(database=DatabaseSettings(url=url), retention_days=30)

    async def scenario() -> None:
        register = RegisterService(settings)
        await register.prepare()
        try:
            assert await register.prune_once()
            assert register.pruned._value.get() == 30
            result = await verify_chain(register.engine)
            assert result.ok and (result.first_seq, result.head_seq, result.checked) == (31, 41, 11)
        finally:
            await register.stop()

    run(scenario())


def test_the_service_verifies_the_chain_and_exports_the_outcome(kafka: KafkaSettings, tmp_path) -> None:  # noqa: ANN001
    """At start and every verify_interval_s the service verifies the chain: vigie_register_chain_ok is NaN
    before, 1 while intact (with the head reached and when), 0 once an entry is edited, and /healthz names
    the broken entry under `degraded`; the running service exports it on /metrics."""
    url = f"sqlite:///{tmp_path / 'register.db'}"
    run(seed(url, sample(20)))

    async def scenario() -> None:
        register = RegisterService(RegisterSettings(database=DatabaseSettings(url=url)))
        value = register.registry.get_sample_value
        await register.prepare()
        try:
            assert value("vigie_register_chain_ok") != value("vigie_register_chain_ok")  # NaN: not verified yet
            assert (await register.verify_chain()).ok and register.degraded() == {}
            assert (value("vigie_register_chain_ok"), value("vigie_register_chain_verified_seq")) == (1, 20)
            assert abs(value("vigie_register_chain_verified_timestamp_seconds") - time.time()) < 60
            entry = (await sql(url, "SELECT entry_id FROM register_entries WHERE seq = 7"))[0][0]
            await sql(url, "UPDATE register_entries SET detail = 'nothing to see' WHERE seq = 7")
            assert not (await register.verify_chain()).ok and value("vigie_register_chain_ok") == 0
            chain = register.degraded()["chain"]
            assert (chain["first_bad_seq"], chain["entry_id"]) == (7, entry) and chain["reason"].startswith("edited")
        finally:
            await register.stop()
        async with service(kafka, url) as (_, base):  # the loop verifies at start: broken, on /metrics
            async def exported() -> bool:
                async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
                    return "vigie_register_chain_ok 0.0" in await response.text()
            await wait_for(exported)
            assert (await healthz(base))[1]["degraded"]["chain"]["first_bad_seq"] == 7

    run(scenario())
