"""``vigie users``: accounts from the command line, with a real SQLite file and the real broker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest

from tests.stack import free_port
from tests.station_console import publish_outbox, read_topic, running_station
from tests.station_support import console_http, login, write_headers
from vigie.accounts.outbox import pending
from vigie.contracts.v1 import AuditEntry
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

GOOD = "Sturdy-Lantern-58"


def users(db_url: str, *args: str, stdin: str | None = None, kafka: KafkaSettings | None = None
          ) -> subprocess.CompletedProcess:
    """Run ``vigie users <args> --database <db_url>``; stdin is a pipe with ``stdin`` (or nothing: no terminal)."""
    kafka = kafka or KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", namespace="nobroker.")
    cmd = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "--log-level",
           "WARNING", "users", *args, "--database", db_url]
    return subprocess.run(cmd, input=stdin or "", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VIGIE_DATABASE_URL": "sqlite:////nonexistent/never-used.db"})


def test_cli_refuses_bad_input_with_clear_messages(tmp_path) -> None:
    """Unknown role, duplicate user, weak passwords, unknown user and an unreachable database are refused
    with a message that says why; a password on the command line is not even parsed (exit 2, no account)."""
    db = f"sqlite:///{tmp_path}/vigie.db"
    done = users(db, "add", "alice", "--roles", "operator", "--stations", "main", "--password-stdin",
                 stdin=GOOD + "\n")
    assert done.returncode == 0 and "created alice" in done.stdout, done.stderr
    assert "wait in the outbox" in done.stderr  # no broker here: the entry waits
    refused = [
        (("add", "alice", "--roles", "operator", "--password-stdin"), GOOD, "user 'alice' already exists"),
        (("add", "bob", "--roles", "operator,pilot", "--password-stdin"), GOOD, "unknown role 'pilot'"),
        (("add", "bob", "--roles", "operator", "--password-stdin"), "short-1A", "too short"),
        (("add", "bob", "--roles", "operator", "--password-stdin"), "bob-Lantern-58x", "contains the user name"),
        (("add", "bob", "--roles", "operator", "--password-stdin"), "Password2024!!", "common password"),
        (("add", "bob", "--roles", "operator", "--password-stdin"), "lanternlantern", "variety"),
        (("add", "bob", "--roles", "operator"), None, "no terminal"),
        (("disable", "zed"), None, "no user named 'zed'"),
        (("assign", "zed", "--roles", "auditor"), None, "no user named 'zed'"),
    ]
    for args, stdin, says in refused:
        done = users(db, *args, stdin=stdin and stdin + "\n")
        assert done.returncode == 1 and says in done.stderr, (args, done.stderr)
    for args in (("add", "bob", "--roles", "operator", "--password", GOOD), ("add", "bob", GOOD, "--roles", "operator"),
                 ("add", "bob", "--roles", "operator", f"--password={GOOD}"),  # once parsed as --password-stdin
                 ("add", "bob", "--roles", "operator", "--passw", GOOD), ("passwd", "alice", "--pw", GOOD)):
        done = users(db, *args)
        assert done.returncode == 2 and GOOD not in done.stderr + done.stdout, (args, done.stderr)
    done = users(db, "add", "Alice", "--roles", "operator", "--password-stdin", stdin=GOOD + "\n")
    assert done.returncode == 1 and "confused with the existing 'alice'" in done.stderr
    elsewhere = f"sqlite:///{tmp_path}/elsewhere/vigie.db"  # a command run from the wrong folder
    done = users(elsewhere, "list")
    assert done.returncode == 1 and "no database at" in done.stderr
    assert not (tmp_path / "elsewhere").exists()
    listed = users(db, "list")
    assert listed.returncode == 0 and "alice" in listed.stdout and "bob" not in listed.stdout
    assert "$argon2" not in listed.stdout
    port = free_port()
    done = users(f"postgresql://vigie:hunter2-secret@127.0.0.1:{port}/vigie", "list")
    assert done.returncode == 1 and f"postgresql://vigie:***@127.0.0.1:{port}/vigie" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.broker
async def test_one_time_password_flow_and_account_changes_in_the_audit_topic(kafka, tmp_path) -> None:
    """``--one-time`` prints a password once; the console asks for a new one at the first login. Every change
    is an ACCOUNT_CHANGE entry in the audit topic (service users, who ran it, the account); while the broker
    is away the entries wait in the outbox and a later flush publishes them."""
    db = f"sqlite:///{tmp_path}/vigie.db"
    run = lambda *a, **kw: asyncio.to_thread(users, db, *a, kafka=kafka, **kw)  # noqa: E731
    done = await run("add", "carol", "--roles", "operator", "--stations", "main", "--one-time", "--as", "admin-jo")
    assert done.returncode == 0, done.stderr
    password = re.search(r"one-time password of carol .*: (\S+)$", done.stdout, re.M).group(1)
    assert "1 entry published" in done.stderr
    async with running_station(kafka, db) as (_, base), console_http() as http:
        me = await login(http, base, "carol", password)
        assert me["mustChangePassword"] is True
        async with http.post(base + "/api/password", json={"current": password, "new": GOOD},
                             headers=write_headers(base, me)) as response:
            assert response.status == 200
        away = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", namespace=kafka.namespace)
        done = await asyncio.to_thread(users, db, "disable", "carol", "--as", "admin-jo", kafka=away)
        assert done.returncode == 0 and "wait in the outbox" in done.stderr
        await asyncio.sleep(2.5)  # the session cache's time
        async with http.get(base + "/api/me") as response:
            assert response.status == 401
    engine = make_engine(DatabaseSettings(url=db))
    assert await pending(engine) == 1
    assert await publish_outbox(kafka, engine) == 1
    assert await pending(engine) == 0
    await engine.dispose()
    entries = [e for e in await read_topic(kafka, Topics(kafka.namespace).audit)
               if e.kind == AuditEntry.KIND_ACCOUNT_CHANGE]
    assert [(e.service, e.operator, e.subject, e.detail) for e in entries] == [
        ("users", "admin-jo", "carol", "created: roles=operator stations=main one-time password"),
        ("station", "carol", "carol", "password changed"),
        ("users", "admin-jo", "carol", "disabled")]
    assert not any(password.encode() in e.SerializeToString() or GOOD.encode() in e.SerializeToString()
                   for e in entries)
