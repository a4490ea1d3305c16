"""Test helpers for the station: incidents as the correlator publishes them, a batched producer,
a server-sent-events reader that keeps a console's view, reading a service's metrics, and
accounts: a user in a real database and a logged-in console session (aiohttp or urllib)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from vigie.accounts.store import provision
from vigie.contracts.v1 import HistoryItem, Incident, Note, Region
from vigie.core.db import DatabaseSettings
from vigie.station.client import login_cookie as client_login
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic, Topics

NS = 1_000_000_000
#: Password of the users the tests create (it passes the policy).
PASSWORD = "Vigie-test-Pass-42"


def incident(n: int, *, state: int = Incident.STATE_NEW, revision: int = 1, age_s: float = 0.0,
             comment_chars: int = 0, cameras: int = 10) -> Incident:
    """Incident ``inc-<n>`` of camera ``cam-<n % cameras>``, last changed ``age_s`` seconds ago.

    ``comment_chars`` adds that many characters of comments (operators' notes), to make big records.
    """
    now = time.time_ns()
    changed = now - int(age_s * NS)
    comments = [f"op: note {n} " + "x" * 1990 for _ in range(comment_chars // 2000)]
    return Incident(
        id=f"inc-{n:05d}", kind="intrusion", camera_id=f"cam-{n % cameras}", state=state,
        first_seen_ns=changed - 5 * NS, last_seen_ns=changed, count=revision, severity=0.7,
        regions=[Region(x=10, y=20, w=30, h=40)], frame_width=640, frame_height=360, revision=revision,
        updated_ns=changed, stations=["main"], operator="op" if state != Incident.STATE_NEW else "",
        comments=comments, opened_by=f"an-{n}", track_ids=[f"cam-{n % cameras}/intrusion/{n}"],
    )


def alarm(n: int, camera: str, kind: str = "intrusion", *, priority: int = 3, zone: str = "",
          state: int = Incident.STATE_NEW, age_s: float = 0.0, owner: str = "", note: str = "") -> Incident:
    """Incident ``inc-<n>`` of :func:`incident` as the alarm manager's correlator publishes it: on ``camera``,
    of ``kind``, with a priority, a zone, an owner, an opening in its history and ``note`` as a comment."""
    item = incident(n, state=state, age_s=age_s)
    item.camera_id, item.kind, item.priority, item.zone, item.owner = camera, kind, priority, zone, owner
    del item.track_ids[:]
    item.track_ids.append(f"{camera}/{kind}/{n}")
    item.history.append(HistoryItem(at_ns=item.first_seen_ns, actor="vigie", what="opened", detail=f"by an-{n}"))
    if note:
        item.notes.append(Note(author="op-night", at_ns=item.last_seen_ns, text=note))
    return item


def publish_now(kafka: KafkaSettings, topic: Topic[Incident], incidents: list[Incident]) -> None:
    """:func:`publish` from synchronous code, even inside another event loop (Playwright's)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish(kafka, topic, incidents)).result()


async def publish(kafka: KafkaSettings, topic: Topic, incidents: list) -> None:
    """Send ``incidents`` (or any messages with a ``camera_id``: anomalies, actions) to ``topic``, keyed by camera id
    like the services, and wait for every acknowledgement."""
    from vigie.station.scale import publish_all

    await publish_all(kafka, topic, incidents)


@dataclass
class ConsoleView:
    """What a browser keeps from ``/api/events``: the live incidents (id -> revision), resyncs and gone ids."""

    live: dict[str, int] = field(default_factory=dict)
    resyncs: list[dict] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    events: int = 0

    def apply(self, event: str, data: str) -> None:
        """Apply one server-sent event as station.js does."""
        self.events += 1
        body = json.loads(data)
        if event == "resync":
            self.resyncs.append(body)
            self.live.clear()
        elif event == "gone":
            self.gone.append(body["id"])
            self.live.pop(body["id"], None)
        elif event == "incident" and body["revision"] > self.live.get(body["id"], 0):
            self.live[body["id"]] = body["revision"]


async def follow(response: aiohttp.ClientResponse, view: ConsoleView, until: Callable[[ConsoleView], bool]) -> None:
    """Read server-sent events from ``response`` into ``view`` until ``until(view)`` is true (after an event)."""
    event, data = "message", []
    while not until(view):
        line = (await response.content.readline()).decode()
        if not line:
            raise EOFError(f"the event stream ended; view had {len(view.live)} incidents")
        line = line.rstrip("\n")
        if line == "":
            if data:
                view.apply(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def metric(port: int, name: str, labels: str = "") -> float:
    """The value of sample ``name{labels}`` in the service's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


async def add_user_async(url: str, name: str, roles: str = "operator", stations: str = "main", *,
                         password: str = PASSWORD, must_change: bool = False) -> None:
    """Create account ``name`` in database ``url`` (migrated first), as ``vigie users add`` does."""
    await provision(DatabaseSettings(url=url), name, roles.split(","), [s for s in stations.split(",") if s],
                    by="tests", password=password, must_change=must_change)


def add_user(url: str, name: str, roles: str = "operator", stations: str = "main", **kw) -> None:  # noqa: ANN003
    """Synchronous :func:`add_user_async` (in a thread of its own, so that it works inside an event loop too)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, add_user_async(url, name, roles, stations, **kw)).result()


def console_http(**kw) -> aiohttp.ClientSession:  # noqa: ANN003
    """An HTTP client that keeps the console's cookie like a browser (also for a host given as an IP address)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kw)


async def login(session: aiohttp.ClientSession, base: str, name: str, password: str = PASSWORD) -> dict:
    """Log ``session`` in to the console at ``base`` (``http://host:port``); returns ``/api/me``'s body, with
    ``csrf``. The session's cookie jar keeps the cookie; raises AssertionError when refused."""
    async with session.post(f"{base}/login", json={"user": name, "password": password},
                            headers={"Origin": base}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def write_headers(base: str, me: dict) -> dict[str, str]:
    """Headers of a state-changing request of a logged-in console: same origin and the CSRF token."""
    return {"Origin": base, "X-CSRF-Token": me["csrf"]}


def login_cookie(port: int, name: str, password: str = PASSWORD) -> str:
    """Log in over urllib; returns the ``Cookie`` header value for :func:`get_json`."""
    return client_login(f"http://127.0.0.1:{port}", name, password)


def get_json(port: int, path: str, cookie: str = "") -> tuple[int, object]:
    """``(status, body)`` of GET ``path`` on the service (the body as JSON when it is JSON, else its text),
    with the session ``cookie`` of :func:`login_cookie` when given."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def logged_in_station(kafka: KafkaSettings, *args: str, log_dir: Path, user: str = "op-main",
                      roles: str = "operator", **kw):  # noqa: ANN003
    """``vigie station <args>`` on a database of its own in ``log_dir`` with account ``user`` (password
    :data:`PASSWORD`, station main), logged in; yields ``(process, port, cookie)`` (see tests.stack.service)."""
    from tests.stack import service

    url = f"sqlite:///{log_dir}/accounts.db"
    add_user(url, user, roles, "main")
    with service(kafka, "station", "--database", url, *args, log_dir=log_dir, **kw) as (proc, port):
        yield proc, port, login_cookie(port, user)


def browser_login(page, base: str, user: str, password: str = PASSWORD) -> None:  # noqa: ANN001
    """Log a Playwright ``page`` in through the login page, as a person would; returns once the console shows."""
    page.goto(f"{base}/login")
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("#login-button")
    page.wait_for_url(f"{base}/")
    page.locator("#whoami").wait_for()


def station_namespace(broker: str, folder: Path, users: dict[str, str]) -> tuple[KafkaSettings, Topics, str]:
    """A namespace of its own with every topic of station main, and a SQLite accounts database in ``folder``
    with ``users`` (name -> roles, on station main); returns (kafka settings, topics, database URL)."""
    import asyncio
    import uuid

    from vigie.core.kafka import apply_topics

    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    db = f"sqlite:///{folder}/accounts.db"
    for name, roles in users.items():
        add_user(db, name, roles, "main")
    return kafka, topics, db


@contextmanager
def console_page(base: str, user: str, prepare: Callable[[object], None] | None = None, **kw):  # noqa: ANN003
    """A headless Chromium page (``tests.browser.chromium_page(**kw)``) logged in to the console at ``base`` as
    ``user``, after ``prepare(page)`` when given (routes, init scripts); yields ``(page, errors)``, the
    uncaught script errors of the page."""
    from tests.browser import chromium_page

    with chromium_page(**kw) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if prepare is not None:
            prepare(page)
        browser_login(page, base, user)
        yield page, errors
