"""The accounts store, sessions and the outbox on a real PostgreSQL server (vigie.chaos.postgres), and a station
whose accounts live there."""

from __future__ import annotations

import uuid

import pytest

from tests.station_console import publish_outbox, read_topic, running_station
from tests.station_support import PASSWORD, console_http, login
from vigie.accounts.outbox import pending
from vigie.accounts.sessions import SessionStore
from vigie.accounts.passwords import WeakPassword
from vigie.accounts.store import AccountError, AccountStore, LockoutPolicy
from vigie.contracts.v1 import AuditEntry
from vigie.core.db import DatabaseSettings, current_revision, make_engine, migrate
from vigie.core.topics import Topics


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh PostgreSQL database of the session's server."""
    return postgres.create_db(f"acc_{uuid.uuid4().hex[:10]}")


async def test_accounts_sessions_and_lockout_on_postgresql(pg_url) -> None:
    """Create, refuse duplicates and weak passwords, log in, lock after failures (with a clock the test moves),
    sessions with idle and absolute timeouts, disabling ends sessions; migrating twice changes nothing."""
    settings = DatabaseSettings(url=pg_url)
    engine = make_engine(settings)
    now = [1_000_000.0]
    try:
        await migrate(engine, settings)
        await migrate(engine, settings)
        assert await current_revision(engine) == "0003"
        store = AccountStore(engine, LockoutPolicy(lock_after=2, lock_base_s=30, lock_max_s=100),
                             clock=lambda: now[0])
        await store.add("dana", PASSWORD, ["supervisor", "operator"], ["b", "a"], by="root")
        with pytest.raises(AccountError, match="already exists"):
            await store.add("dana", PASSWORD, ["operator"], by="root")
        with pytest.raises(AccountError, match="unknown role"):
            await store.add("erin", PASSWORD, ["viewer"], by="root")
        with pytest.raises(WeakPassword, match="common"):
            await store.add("erin", "Password2024!", ["operator"], by="root")
        ok = await store.authenticate("dana", PASSWORD)
        assert ok.account.roles == ("operator", "supervisor") and ok.account.stations == ("a", "b")
        assert [(await store.authenticate("dana", "Wrong-one-1234")).retry_after_s for _ in range(2)] == [0, 30]
        locked = await store.authenticate("dana", PASSWORD)  # the right password, but locked
        assert locked.reason == "locked" and locked.retry_after_s == 30
        now[0] += 31
        assert (await store.authenticate("dana", "Wrong-one-1234")).retry_after_s == 60  # doubles
        assert (await store.authenticate("dana", PASSWORD)).reason == "locked"
        now[0] += 61
        assert (await store.authenticate("dana", PASSWORD)).account is not None
        assert (await store.get("dana")).failed_logins == 0

        sessions = SessionStore(engine, idle_s=100, max_s=300, cache_s=0, clock=lambda: now[0])
        token, info = await sessions.create("dana", "10.1.2.3")
        assert (await sessions.lookup(token)).user.supervisor
        now[0] += 90
        assert await sessions.lookup(token) is not None  # used: idle counts from now
        now[0] += 101
        assert await sessions.lookup(token) is None  # idle
        token, _ = await sessions.create("dana")
        for _ in range(3):  # used every 80 s: idle never reached
            now[0] += 80
            assert await sessions.lookup(token) is not None
        now[0] += 80
        assert await sessions.lookup(token) is None  # 320 s: past the absolute 300 s
        await sessions.create("dana")
        now[0] += 101
        assert await sessions.purge_expired() == 1  # idle, never looked up again: the station's purge deletes it
        token, _ = await sessions.create("dana")
        await store.set_disabled("dana", True, by="root")
        assert await sessions.lookup(token) is None
        assert await pending(engine) == 2  # created, disabled
    finally:
        await engine.dispose()


@pytest.mark.broker
async def test_station_on_postgresql_logs_in_and_publishes_the_outbox(kafka, pg_url) -> None:
    """A station whose accounts are in PostgreSQL: login, then the outbox's entries reach the audit topic."""
    settings = DatabaseSettings(url=pg_url)
    engine = make_engine(settings)
    await migrate(engine, settings)
    await AccountStore(engine).add("op-pg", PASSWORD, ["operator"], ["main"], by="root")
    async with running_station(kafka, pg_url) as (_, base), console_http() as http:
        me = await login(http, base, "op-pg")
        assert me["views"] is True
        async with http.get(base + "/api/incidents") as response:
            assert response.status == 200
    try:
        assert await publish_outbox(kafka, engine) == 1
    finally:
        await engine.dispose()
    kinds = [(e.kind, e.operator, e.subject) for e in await read_topic(kafka, Topics(kafka.namespace).audit)]
    assert kinds == [(AuditEntry.KIND_LOGIN, "op-pg", ""), (AuditEntry.KIND_ACCOUNT_CHANGE, "root", "op-pg")]
