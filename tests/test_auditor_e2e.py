"""End to end: a ``vigie register`` and a ``vigie station`` process on one SQLite file and the real broker.

An operator fails a login, logs in, views a snapshot, acknowledges the incident and logs out; the register
holds each of these once, in their name, and its chain verifies; a replay of the whole audit topic adds
nothing. An auditor then reads the register in headless Chromium (the console's Content-Security-Policy in
force), sees those entries and the chain intact, downloads a CSV export, and sees the entry a person edited
in the SQLite file named by its seq once the chain is checked again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.browser import chromium_page
from tests.register_support import counts
from tests.stack import service
from tests.station_console import publish_frame
from tests.station_support import (PASSWORD, add_user, browser_login, console_http, get_json, incident, login, login_cookie, metric,
                                   publish, write_headers)
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.register.query import list_entries

pytestmark = [pytest.mark.broker, pytest.mark.browser]
OPERATOR_KINDS = ("login", "login_failed", "view", "action", "logout")


async def _operator_session(kafka: KafkaSettings, base: str, incident_id: str) -> None:
    """A wrong password, then a login, one snapshot viewed, one acknowledgement and a logout of op-main."""
    async with console_http() as http:
        async with http.post(f"{base}/login", json={"user": "op-main", "password": "Wrong-password-99"},
                             headers={"Origin": base}) as response:
            assert response.status == 401
        me = await login(http, base, "op-main")
        deadline = time.monotonic() + 30
        while True:
            async with http.get(f"{base}/api/incidents") as response:
                if any(i["id"] == incident_id for i in (await response.json())["incidents"]):
                    break
            assert time.monotonic() < deadline, "the incident never reached the station"
            await asyncio.sleep(0.2)
        async with http.get(f"{base}/api/incidents/{incident_id}/snapshot.jpg") as response:
            assert response.status == 200 and (await response.read()).startswith(b"\xff\xd8")
        async with http.post(f"{base}/api/incidents/{incident_id}/actions", json={"action": "acknowledge"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 202
        async with http.post(f"{base}/logout", json={}, headers=write_headers(base, me)) as response:
            assert response.status == 200


async def _entries(url: str, **filters) -> list[dict]:  # noqa: ANN003
    engine = make_engine(DatabaseSettings(url=url))
    try:
        return await list_entries(engine, limit=10_000, **filters)
    finally:
        await engine.dispose()


async def _wait_for_operator_entries(url: str, timeout_s: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await _entries(url, user="op-main")
        if {r["kind"] for r in rows} >= set(OPERATOR_KINDS):
            return rows
        assert time.monotonic() < deadline, f"the register holds only {[r['kind'] for r in rows]}"
        await asyncio.sleep(0.3)


async def _reset_register_group(kafka: KafkaSettings) -> int:
    """Commit offset 0 on every partition of ``audit`` for the register's group (nobody in it); returns the
    number of records the topic holds (what a replay reads again)."""
    topic = Topics(kafka.namespace).audit.name
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=kafka.group("register"),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.commit({tp: 0 for tp in parts})
        return sum(ends.values())
    finally:
        await consumer.stop()


def _verify_cli(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", "register", "verify", "--database", url],
                          capture_output=True, text=True, timeout=60)


def test_operator_session_in_the_register_then_the_auditor_reads_and_sees_tampering(kafka, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/vigie.db"
    add_user(url, "op-main", "operator", "main")
    add_user(url, "aud", "auditor", "")
    add_user(url, "op-aud", "operator,auditor", "main")
    ref = asyncio.run(publish_frame(kafka, "cam-1"))
    item = incident(1)
    item.snapshot.CopyFrom(ref)
    asyncio.run(publish(kafka, Topics(kafka.namespace).alerts("main"), [item]))
    with service(kafka, "station", "--database", url, log_dir=tmp_path) as (_, station_port):
        base = f"http://127.0.0.1:{station_port}"
        with service(kafka, "register", "--database", url, log_dir=tmp_path) as (register, register_port):
            asyncio.run(_operator_session(kafka, base, item.id))
            rows = asyncio.run(_wait_for_operator_entries(url))
            time.sleep(2.0)  # anything late or doubled would be in by now
            rows = asyncio.run(_entries(url, user="op-main"))
            assert sorted(r["kind"] for r in rows) == sorted(OPERATOR_KINDS), rows
            by_kind = {r["kind"]: r for r in rows}
            assert by_kind["view"]["incident_id"] == item.id and by_kind["view"]["camera_id"] == "cam-1"
            assert by_kind["view"]["record"] == f"{ref.topic}/{ref.partition}/{ref.offset}"
            assert by_kind["action"]["detail"] == "acknowledge" and by_kind["login"]["detail"] == "password"
            assert all(r["service"] == "station" and r["station"] == "main" for r in rows)
            # the accounts' outbox (the two accounts created above) was published by the register
            changes = asyncio.run(_entries(url, kind="account_change"))
            assert sorted(r["subject"] for r in changes) == ["aud", "op-aud", "op-main"]
        assert register.returncode == 0
        verified = _verify_cli(url)
        assert verified.returncode == 0 and "chain intact" in verified.stdout, verified.stdout + verified.stderr
        before = asyncio.run(counts(url))
        ids_before = {r["entry_id"] for r in asyncio.run(_entries(url))}
        in_topic = asyncio.run(_reset_register_group(kafka))
        with service(kafka, "register", "--database", url, log_dir=tmp_path) as (register, register_port):
            deadline = time.monotonic() + 30
            while (metric(register_port, "vigie_register_duplicates_total")
                   + metric(register_port, "vigie_register_appended_total")) < in_topic:
                assert time.monotonic() < deadline, "the replay did not reach the end of the topic"
                time.sleep(0.3)
            time.sleep(1.0)
            after = asyncio.run(_entries(url))
        new = [r for r in after if r["entry_id"] not in ids_before]
        assert all((r["service"], r["kind"]) in {("register", "service_stopped"), ("register", "service_started")}
                   for r in new), new  # the replay added nothing: only this run's own start (and the last stop)
        assert before[0] == before[1] and len(after) == len({r["entry_id"] for r in after})
        assert sorted(r["kind"] for r in asyncio.run(_entries(url, user="op-main"))) == sorted(OPERATOR_KINDS)
        _operator_auditor_in_the_browser(base)
        _auditor_in_the_browser(base, url, by_kind["view"]["seq"])


def _operator_auditor_in_the_browser(base: str) -> None:
    """Someone both operator and auditor lands on the incidents, whose header links to the register (and back)."""
    with chromium_page(bypass_csp=False) as page:
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        browser_login(page, base, "op-aud")
        page.locator('[data-testid="incident"]').first.wait_for()
        page.click("#register-link")
        page.wait_for_url(f"{base}/register")
        page.locator('[data-testid="chain-status"][data-ok]').wait_for()
        page.click("#incidents-link")
        page.wait_for_url(f"{base}/")
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        assert problems == [], problems


def _auditor_in_the_browser(base: str, url: str, view_seq: int) -> None:
    """The auditor logs in, lands on the register, sees op-main's entries and the chain intact, downloads a
    CSV; after a row is edited in the SQLite file the page names its seq."""
    with chromium_page(bypass_csp=False) as page:
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{base}/login")
        page.fill("#user", "aud")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_url(f"{base}/register")
        page.locator('[data-testid="chain-status"][data-ok="true"]').wait_for(timeout=20_000)
        assert page.locator("#chain").text_content().startswith("chain intact: ")
        page.fill("#user", "op-main")
        page.click("#filters button[type=submit]")
        page.locator('tr[data-kind="logout"]').wait_for()
        shown = page.locator('tr[data-testid="entry"]')
        assert sorted(shown.nth(i).get_attribute("data-kind") for i in range(shown.count())) == sorted(OPERATOR_KINDS)
        assert page.locator("img").count() == 0
        with page.expect_download() as download:
            page.click("#export-csv")
        text = open(download.value.path(), encoding="utf-8").read()
        assert text.startswith("seq,entry_id,kind,") and text.count("\n") == 1 + len(OPERATOR_KINDS)
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute("UPDATE register_entries SET detail = 'snapshot of another camera' WHERE seq = ?", (view_seq,))
        cookie = login_cookie(int(base.rsplit(":", 1)[1]), "aud")
        deadline = time.monotonic() + 30  # the console serves a check's result for 10 s
        while (result := get_json(int(base.rsplit(":", 1)[1]), "/api/register/verify", cookie)[1])["ok"]:
            assert time.monotonic() < deadline, result
            time.sleep(1.0)
        assert result["first_bad_seq"] == view_seq and result["reason"].startswith("edited")
        page.click("#verify")
        page.locator('[data-testid="chain-status"][data-ok="false"]').wait_for()
        assert page.locator("#chain").text_content() == f"chain broken at seq {view_seq}"
        assert "edited" in page.locator("#chain-detail").inner_text()
        assert "bad" in (page.locator(f"#seq-{view_seq}").get_attribute("class") or "")
        assert problems == [], problems  # no script error, nothing refused by the Content-Security-Policy
    broken = _verify_cli(url)
    assert broken.returncode == 1 and f"seq {view_seq}" in broken.stdout
