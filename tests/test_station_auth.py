"""Accounts, roles and sessions of the operator console, against a real broker and a real SQLite file.

Each test runs a station service in its own event loop (tests/station_console.py) and talks to it
with aiohttp's client, as a browser would (cookies, Origin, CSRF header).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

import aiohttp
import pytest

from tests.station_console import publish_frame, read_topic, running_station, wait_for_incident
from tests.station_support import PASSWORD, add_user_async, console_http, incident, login, publish, write_headers
from vigie.accounts.store import AccountStore
from vigie.contracts.v1 import AuditEntry, Incident
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.topics import Topics
from vigie.station.auth import PUBLIC_PATHS

#: A close action with its verdict (required).
CLOSE = {"action": "close", "verdict": "confirmed"}

pytestmark = pytest.mark.broker


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh SQLite database file for the test."""
    return f"sqlite:///{tmp_path}/vigie.db"


def _concrete(path: str) -> str:
    """A request path for a route's canonical path: ``{id}`` filled in, ``/static`` given a file."""
    path = re.sub(r"\{[^}]+\}", "inc-00001", path)
    return "/static/station.js" if path == "/static" else path


async def test_every_route_answers_401_without_a_session_except_the_public_ones(kafka, db_url) -> None:
    """Defect: anyone reaching the console's port saw every snapshot and could act on any incident.

    Every route of the application, enumerated from its router (so a route added later without an access
    rule fails here), answers 401 without a session, whatever the method; only /healthz, /livez,
    /metrics and the login page and its assets answer. Every route but those of the lifecycle has an access rule.
    """
    apps: list = []
    async with running_station(kafka, db_url, apps=apps) as (station, base), console_http() as http:
        routes = list(apps[0].router.routes())
        seen = set()
        for route in routes:
            method, path = route.method, _concrete(route.resource.canonical)
            if method == "HEAD":
                continue
            seen.add((method, path))
            async with http.request(method, base + path, data="{}", headers={
                    "Origin": base, "Content-Type": "application/json"}) as response:
                if path in PUBLIC_PATHS:
                    assert response.status != 401, (method, path)
                else:
                    assert response.status == 401, (method, path, response.status)
        assert {("GET", "/api/incidents"), ("GET", "/api/events"), ("POST", "/api/incidents/inc-00001/actions"),
                ("GET", "/api/incidents/inc-00001/snapshot.jpg"), ("GET", "/"), ("GET", "/register"),
                ("GET", "/api/register"), ("GET", "/api/register/verify"), ("GET", "/api/register/export")} <= seen
        lifecycle = {"/healthz", "/livez", "/metrics"}
        assert all(r in station.auth.access for r in routes if r.resource.canonical not in lifecycle)
        for path, status in (("/static/login.js", 200), ("/static/station.css", 200), ("/login", 200),
                             ("/static/station.js", 401), ("/static/../static/station.js", 401), ("/nowhere", 401)):
            async with http.get(base + path) as response:
                assert response.status == status, path
        for page in ("/", "/register"):  # a browser is sent to the login page
            async with http.get(base + page) as response:
                assert response.status == 401 and 'url=/login' in await response.text()
        async with http.get(base + "/api/incidents") as response:  # an API client is told, in words
            assert response.status == 401 and "log in first" in await response.text()
        for method, path in (("GET", "/api/incidents"), ("GET", "/nowhere"), ("HEAD", "/login"), ("GET", "/login")):
            async with http.request(method, base + path) as response:  # errors carry the headers too
                assert response.status in (200, 401), (method, path, response.status)
                assert response.headers["X-Frame-Options"] == "DENY", (method, path)
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], (method, path)
                assert response.headers["Cache-Control"] == "no-store", (method, path)


async def test_roles_and_stations_decide_what_a_user_sees(kafka, db_url) -> None:
    """An operator of station A gets 403 on station main's incidents, snapshots and event stream; an auditor
    and an admin never see an image; an operator of main does, and logging out ends the session."""
    for name, roles, stations in (("op-a", "operator", "a"), ("auditor1", "auditor", "main"),
                                  ("admin1", "admin", "main"), ("op-main", "operator", "main")):
        await add_user_async(db_url, name, roles, stations)
    ref = await publish_frame(kafka, "cam-1")
    item = incident(1)
    item.snapshot.CopyFrom(ref)
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [item])
    async with running_station(kafka, db_url) as (station, base):
        await wait_for_incident(station, item.id)
        for name in ("op-a", "auditor1", "admin1", "op-main"):
            async with console_http() as http:
                me = await login(http, base, name)
                allowed = name == "op-main"
                assert me["user"] == name and me["views"] is allowed
                for path in ("/api/incidents", "/api/events", f"/api/incidents/{item.id}/snapshot.jpg",
                             "/api/incidents?state=closed"):
                    async with http.get(base + path) as response:
                        assert response.status == (200 if allowed else 403), (name, path, response.status)
                        assert response.headers["Cache-Control"] == "no-store", path  # never in a cache
                        if path.endswith(".jpg") and allowed:
                            assert await response.read() == b"\xff\xd8jpeg-bytes\xff\xd9"
                async with http.post(f"{base}/api/incidents/{item.id}/actions", json={"action": "acknowledge"},
                                     headers=write_headers(base, me)) as response:
                    assert response.status == (202 if allowed else 403), name
                async with http.get(base + "/") as response:
                    assert response.status == 200  # the page itself; it tells a non-viewer why it is empty
                async with http.post(base + "/logout", json={}, headers=write_headers(base, me)) as response:
                    assert response.status == 200
                async with http.get(base + "/api/me") as response:
                    assert response.status == 401
    actions = await read_topic(kafka, Topics(kafka.namespace).actions)
    assert [(a.operator, a.incident_id) for a in actions] == [("op-main", item.id)]


async def test_forged_requests_are_refused_and_change_nothing(kafka, db_url) -> None:
    """Defect: a cross-origin text/plain POST closed an incident.

    A POST from another origin, one without Origin, one without the CSRF token, one with a wrong token and
    a text/plain one are refused (403, 403, 403, 403, 415) and nothing reaches the actions topic; an escalated
    incident needs a supervisor. The same request done right is accepted, once, in the logged-in user's name.
    """
    await add_user_async(db_url, "op-main", "operator", "main")
    await add_user_async(db_url, "sup-main", "supervisor", "main")
    escalated = incident(2, state=Incident.STATE_ESCALATED, revision=2)
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [incident(1), escalated])
    async with running_station(kafka, db_url) as (station, base), console_http() as http:
        await wait_for_incident(station, escalated.id)
        me = await login(http, base, "op-main")
        url = f"{base}/api/incidents/inc-00001/actions"
        body = json.dumps(CLOSE)
        forged = [
            ({"Origin": "http://evil.example", "X-CSRF-Token": me["csrf"], "Content-Type": "application/json"}, 403),
            ({"X-CSRF-Token": me["csrf"], "Content-Type": "application/json"}, 403),
            ({"Origin": base, "Content-Type": "application/json"}, 403),
            ({"Origin": base, "X-CSRF-Token": "x" + me["csrf"], "Content-Type": "application/json"}, 403),
            ({"Origin": base, "X-CSRF-Token": me["csrf"], "Content-Type": "text/plain"}, 415),
        ]
        for headers, status in forged:
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == status, (headers, await response.text())
        async with http.post(f"{base}/api/incidents/{escalated.id}/actions", json=CLOSE,
                             headers=write_headers(base, me)) as response:
            assert response.status == 403 and "supervisor" in await response.text()
        assert await read_topic(kafka, Topics(kafka.namespace).actions, settle_s=1.0) == []
        async with http.post(url, data=body, headers={**write_headers(base, me), "Content-Type": "application/json"}
                             ) as response:
            assert response.status == 202
        async with console_http() as other:
            sup = await login(other, base, "sup-main")
            async with other.post(f"{base}/api/incidents/{escalated.id}/actions", json=CLOSE,
                                  headers=write_headers(base, sup)) as response:
                assert response.status == 202
    actions = await read_topic(kafka, Topics(kafka.namespace).actions)
    assert sorted((a.operator, a.incident_id) for a in actions) == [("op-main", "inc-00001"),
                                                                   ("sup-main", escalated.id)]


async def test_malformed_bodies_get_400_and_closed_incidents_409(kafka, db_url) -> None:
    """A trial found 500s (a traceback in the log) for JSON nested 100,000 deep and for a lone surrogate in a
    user name or password, on /login and on actions; and actions on a closed incident answered 202 and went
    to the register although the correlator refuses them. Now 400 and 409, and nothing is published."""
    await add_user_async(db_url, "op-main", "operator", "main")
    closed = incident(3, state=Incident.STATE_CLOSED, revision=3)
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [incident(1), closed])
    async with running_station(kafka, db_url) as (station, base), console_http() as http:
        await wait_for_incident(station, closed.id)
        me = await login(http, base, "op-main")
        headers = {**write_headers(base, me), "Content-Type": "application/json"}
        for body in ("[" * 100_000, '{"user": "op\\ud800", "password": "x"}',
                     '{"user": "op-main", "password": "x\\udfff"}'):
            async with http.post(f"{base}/login", data=body, headers=headers) as response:
                assert response.status == 400, (body[:40], await response.text())
        for body in ("[" * 100_000, '{"action": "comment", "comment": "\\ud800"}'):
            async with http.post(f"{base}/api/incidents/inc-00001/actions", data=body, headers=headers) as response:
                assert response.status == 400, (body[:40], await response.text())
        async with http.post(f"{base}/api/incidents/{closed.id}/actions", json={"action": "acknowledge"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 409 and "closed" in await response.text()
    assert await read_topic(kafka, Topics(kafka.namespace).actions, settle_s=1.0) == []


async def test_views_actions_logins_and_failures_are_audited_once(kafka, db_url) -> None:
    """Every login, refused login (name tried, client address, never the password), snapshot view, action
    and logout is one entry of the audit topic, in the logged-in user's name; a view whose entry cannot be
    written shows no image (503)."""
    await add_user_async(db_url, "op-main", "operator", "main")
    ref = await publish_frame(kafka, "cam-1")
    item = incident(1)
    item.snapshot.CopyFrom(ref)
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [item])
    async with running_station(kafka, db_url) as (station, base), console_http() as http:
        await wait_for_incident(station, item.id)
        for name in ("op-main", "nobody-here"):
            async with http.post(base + "/login", json={"user": name, "password": "Wrong-password-77"},
                                 headers={"Origin": base}) as response:
                assert response.status == 401 and await response.text() == "wrong user name or password"
        me = await login(http, base, "op-main")
        async with http.get(f"{base}/api/incidents/{item.id}/snapshot.jpg") as response:
            assert response.status == 200
        async with http.post(f"{base}/api/incidents/{item.id}/actions", json={"action": "acknowledge"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 202
        async with http.post(base + "/logout", json={}, headers=write_headers(base, me)) as response:
            assert response.status == 200
        me = await login(http, base, "op-main")
        await station._producer.stop()  # the broker no longer takes the station's entries
        async with http.get(f"{base}/api/incidents/{item.id}/snapshot.jpg") as response:
            assert response.status == 503 and response.content_type != "image/jpeg"
    records = await read_topic(kafka, Topics(kafka.namespace).audit)
    kinds = [(AuditEntry.Kind.Name(e.kind), e.operator) for e in records]
    assert kinds == [("KIND_LOGIN_FAILED", "op-main"), ("KIND_LOGIN_FAILED", "nobody-here"), ("KIND_LOGIN", "op-main"),
                     ("KIND_VIEW", "op-main"), ("KIND_ACTION", "op-main"), ("KIND_LOGOUT", "op-main"),
                     ("KIND_LOGIN", "op-main")], kinds
    assert all(e.client == "127.0.0.1" and e.service == "station" and e.station == "main" for e in records)
    view = records[3]
    assert view.incident_id == item.id and view.record == ref and view.camera_id == "cam-1"
    assert records[0].detail == records[1].detail  # an unknown name is not told apart
    assert not any(b"Wrong-password-77" in e.SerializeToString() or PASSWORD.encode() in e.SerializeToString()
                   for e in records)


async def test_lockout_grows_and_unknown_names_lock_alike(kafka, db_url) -> None:
    """After ``lock_after`` failures an account is locked (429 with Retry-After), even for the right password;
    the lock ends after ``lock_base_s``; an unknown name is locked the same way."""
    await add_user_async(db_url, "op-main", "operator", "main")
    async with running_station(kafka, db_url, lock_after=3, lock_base_s=1.5) as (_, base), \
            console_http() as http:
        for name in ("op-main", "ghost"):
            statuses = []
            for _ in range(4):
                async with http.post(base + "/login", json={"user": name, "password": "Not-the-one-123"},
                                     headers={"Origin": base}) as response:
                    statuses.append(response.status)
                    retry = response.headers.get("Retry-After")
            assert statuses == [401, 401, 401, 429] and retry is not None, (name, statuses)
        async with http.post(base + "/login", json={"user": "op-main", "password": PASSWORD},
                             headers={"Origin": base}) as response:
            assert response.status == 429
        await asyncio.sleep(1.6)
        await login(http, base, "op-main")


async def test_sessions_are_shared_by_replicas_and_end_with_logout_or_a_disabled_account(kafka, db_url) -> None:
    """Sessions live in the database: a cookie of one station process works on another (a replica, or the
    same station restarted); a logout on one, or disabling the account, ends it on the other within
    ``session_cache_s``; after ``session_idle_s`` without a request it ends."""
    await add_user_async(db_url, "op-main", "operator", "main")
    async with running_station(kafka, db_url, session_cache_s=0.3) as (_, one), \
            running_station(kafka, db_url, session_cache_s=0.3, session_idle_s=1.0) as (_, two), \
            console_http() as http:
        me = await login(http, one, "op-main")
        async with http.get(two + "/api/incidents") as response:
            assert response.status == 200
        async with http.post(one + "/logout", json={}, headers=write_headers(one, me)) as response:
            assert response.status == 200
        await asyncio.sleep(0.4)
        async with http.get(two + "/api/incidents") as response:
            assert response.status == 401

        await login(http, two, "op-main")
        engine = make_engine(DatabaseSettings(url=db_url))
        await AccountStore(engine).set_disabled("op-main", True, by="tests")
        await engine.dispose()
        await asyncio.sleep(0.4)
        async with http.get(two + "/api/incidents") as response:
            assert response.status == 401
        async with http.post(two + "/login", json={"user": "op-main", "password": PASSWORD},
                             headers={"Origin": two}) as response:
            assert response.status == 403 and "disabled" in await response.text()


async def test_an_open_event_stream_ends_after_logout_even_while_incidents_flow(kafka, db_url) -> None:
    """Defect found by a trial: the event stream checked its session only after 5 s without an event, so a
    console kept receiving live incidents after its logout (or its account disabled) as long as alerts kept
    coming. The session is now checked every SESSION_CHECK_S (2 s) whatever the traffic."""
    await add_user_async(db_url, "op-main", "operator", "main")
    topic = Topics(kafka.namespace).alerts("main")
    async with running_station(kafka, db_url, session_cache_s=0.3) as (_, base), console_http() as http:
        me = await login(http, base, "op-main")
        flowing = True

        async def alerts() -> None:
            n = 0
            while flowing:
                n += 1
                await publish(kafka, topic, [incident(n)])
                await asyncio.sleep(0.3)

        feeder = asyncio.create_task(alerts())
        try:
            async with http.get(base + "/api/events") as stream:
                assert stream.status == 200
                seen_after, logged_out_at = 0, None
                async for line in stream.content:
                    if line.startswith(b"event: incident") and logged_out_at is not None:
                        seen_after += 1
                    if logged_out_at is None and line.startswith(b"event: incident"):
                        async with http.post(base + "/logout", json={}, headers=write_headers(base, me)) as out:
                            assert out.status == 200
                        logged_out_at = asyncio.get_running_loop().time()
                    assert logged_out_at is None or asyncio.get_running_loop().time() - logged_out_at < 8, \
                        f"the stream still runs after logout ({seen_after} incidents since)"
                assert logged_out_at is not None  # the stream ended by itself after the logout
        finally:
            flowing = False
            await feeder


async def test_one_time_password_must_be_changed_first(kafka, db_url) -> None:
    """An account with a one-time password reaches only who-am-I, the password change and logout until it
    chose a new password, which the policy checks (a clear 400 when refused)."""
    await add_user_async(db_url, "op-new", "operator", "main", must_change=True)
    async with running_station(kafka, db_url) as (_, base), console_http() as http:
        me = await login(http, base, "op-new")
        assert me["mustChangePassword"] is True
        async with http.get(base + "/api/incidents") as response:
            assert response.status == 403 and "password" in await response.text()
        for page in ("/", "/register"):  # a browser is told where to change it
            async with http.get(base + page) as response:
                assert response.status == 403 and 'href="/login"' in await response.text()
                assert response.content_type == "text/html"
        async with http.post(base + "/api/password", json={"current": PASSWORD, "new": "short"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 400 and "at least 12 characters" in await response.text()
        async with http.post(base + "/api/password", json={"current": PASSWORD, "new": "op-new-Password-9"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 400 and "user name" in await response.text()
        async with http.post(base + "/api/password", json={"current": PASSWORD, "new": "Brand-new-Secret-81"},
                             headers=write_headers(base, me)) as response:
            assert response.status == 200 and (await response.json())["mustChangePassword"] is False
        async with http.get(base + "/api/incidents") as response:
            assert response.status == 200
    entries = await read_topic(kafka, Topics(kafka.namespace).audit)
    change = [e for e in entries if e.kind == AuditEntry.KIND_ACCOUNT_CHANGE]
    # The station published its outbox: the creation's entry (written by the test, as the CLI would) and its own.
    assert [(e.service, e.operator, e.subject, e.detail) for e in change] == [
        ("users", "tests", "op-new", "created: roles=operator stations=main one-time password"),
        ("station", "op-new", "op-new", "password changed")]


async def test_trusted_proxy_names_the_user_only_from_its_addresses(kafka, db_url) -> None:
    """Single sign-on: a trusted proxy's user header opens a session for an existing, enabled account; the
    header of an unknown user gets 401; from an address outside ``trusted_proxies`` it is ignored."""
    await add_user_async(db_url, "op-main", "operator", "main")
    sso = {"X-Remote-User": "op-main"}
    async with running_station(kafka, db_url, trusted_proxies=("127.0.0.0/8",),
                               proxy_user_header="X-Remote-User") as (_, base), console_http() as http:
        async with http.get(base + "/api/me", headers=sso) as response:
            assert response.status == 200 and (await response.json())["user"] == "op-main"
        async with http.get(base + "/api/incidents") as response:  # the session's cookie, no header
            assert response.status == 200
        async with console_http() as other, other.get(base + "/api/me",
                                                              headers={"X-Remote-User": "stranger"}) as response:
            assert response.status == 401
        async with console_http() as other, other.get(base + "/api/me",
                                                      headers={**sso, "X-Forwarded-Proto": "https"}) as response:
            assert response.status == 200 and "Secure" in response.headers["Set-Cookie"]  # HTTPS at the proxy
    async with running_station(kafka, db_url, trusted_proxies=("10.0.0.0/8",),
                               proxy_user_header="X-Remote-User") as (_, base), console_http() as http:
        async with http.get(base + "/api/me", headers=sso) as response:
            assert response.status == 401


async def test_https_serves_the_console_with_a_secure_cookie(kafka, db_url, tmp_path) -> None:
    """With ``tls_cert`` and ``tls_key`` the console is served over HTTPS and its cookie is Secure."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    await add_user_async(db_url, "op-main", "operator", "main")
    async with running_station(kafka, db_url, tls_cert=str(cert), tls_key=str(key)) as (_, base), \
            console_http(connector=aiohttp.TCPConnector(ssl=False)) as http:
        assert base.startswith("https://")
        async with http.post(base + "/login", json={"user": "op-main", "password": PASSWORD},
                             headers={"Origin": base}) as response:
            assert response.status == 200 and "Secure" in response.headers["Set-Cookie"]
            assert "HttpOnly" in response.headers["Set-Cookie"] and "SameSite=Strict" in response.headers["Set-Cookie"]
        async with http.get(base + "/api/incidents") as response:
            assert response.status == 200


def test_a_station_whose_database_cannot_be_reached_says_which_and_exits_3(kafka) -> None:
    """Before: the console started, then died with a traceback in its log. Now the database is reached first:
    one line naming it (password hidden), exit 3 (as `vigie register`), nothing listening."""
    import sys

    from tests.stack import free_port

    done = subprocess.run([sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace,
                           "station", "--database", "postgresql://vigie:hunter2-secret@127.0.0.1:1/vigie",
                           "--http-port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "database postgresql://vigie:***@127.0.0.1:1/vigie" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr
