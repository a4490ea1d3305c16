"""Figures of the console's logins and live views (``vigie bench``, or ``python -m vigie.station.bench``).

A ``vigie station`` process runs on a scratch SQLite database with one account, in a namespace of its
own on the real broker. A client then logs in ``n`` times in a row (each login: argon2id check,
session row, audit entry acknowledged by the broker) and opens the console's first page after each
(the page, ``/api/me`` and ``/api/incidents``, as a browser does). The reference, measured in the same
run, is one argon2id verification in this process: the login's cost over it is what the console adds.

Live view (:func:`bench_live`): a ``vigie grabber`` publishes a synthetic 720x480 camera at 10 fps (640 pixels
wide), the station holds one incident of it, and an aiortc client (:mod:`vigie.station.live_client`) watches
its live view: how far behind capture each frame is handed to the station's encoder, and decoded by the client.

The console at scale (:func:`bench_console_scale`, :mod:`vigie.station.scale`): a station holding 10,000
incidents opened in headless Chromium (first row, all rows, a filter applied, the longest main-thread task) and
the incidents per minute a station passes from the alerts topic to a console's event stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import numpy as np

from vigie.accounts.passwords import generate_password, hash_password, verify_password
from vigie.core.kafka import apply_topics, wait_for_broker
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.chaos.cluster import free_port as _free_port

USER = "bench-operator"


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(values, 50)) * 1000, "p99_ms": float(np.percentile(values, 99)) * 1000}


async def _run(base: str, password: str, n: int) -> dict[str, Any]:
    logins, pages = [], []
    for _ in range(n):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # an IP address
            began = time.perf_counter()
            async with http.post(f"{base}/login", json={"user": USER, "password": password},
                                 headers={"Origin": base}) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"bench login refused: {answer.status} {await answer.text()}")
            logins.append(time.perf_counter() - began)
            began = time.perf_counter()
            for path in ("/", "/api/me", "/api/incidents"):
                async with http.get(f"{base}{path}") as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"bench first page: {path} answered {answer.status}")
            pages.append(time.perf_counter() - began)
    return {"login": _ms(logins), "first_page": _ms(pages), "n": n}


def bench_console(bootstrap: str, n: int = 100) -> dict[str, Any]:
    """Log in ``n`` times to a fresh station and open its first page; returns p50/p99 in ms of both and the
    argon2id reference, and under ``scale`` the figures of :func:`bench_console_scale`. Raises RuntimeError when
    the station does not start or refuses the login."""
    password = generate_password()
    digest = hash_password(password)
    began = time.perf_counter()
    for _ in range(10):
        verify_password(digest, password)
    reference_ms = (time.perf_counter() - began) / 10 * 1000
    with _station(bootstrap, "console", password) as (base, _):
        figures = asyncio.run(_run(base, password, n))
    figures["argon2id_verify_ms"] = reference_ms
    figures["scale"] = bench_console_scale(bootstrap)
    return figures


def _start(bootstrap: str, namespace: str, args: list[str]) -> tuple[subprocess.Popen, int]:
    """``vigie <args>`` in ``namespace`` on a free port, once that port takes connections. Raises RuntimeError."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vigie", "--kafka", bootstrap, "--namespace", namespace,
                             "--log-level", "WARNING", *args, "--http-port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ})
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the bench's {args[0]} did not start (exit {proc.poll()})") from None
            time.sleep(0.3)


@contextmanager
def _station(bootstrap: str, what: str, password: str, *args: str) -> Iterator[tuple[str, KafkaSettings]]:
    """A station (``vigie station <args>``) with account :data:`USER` (``password``) in a fresh namespace; yields
    its base URL and the namespace's settings, and stops it on exit."""
    from vigie.accounts.store import provision
    from vigie.core.db import DatabaseSettings

    namespace = f"bench-{what}-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(bootstrap=bootstrap, namespace=namespace)
    asyncio.run(wait_for_broker(kafka, timeout_s=60))
    asyncio.run(apply_topics(kafka, Topics(namespace).all(["main"])))
    with tempfile.TemporaryDirectory(prefix=f"vigie-bench-{what}-") as tmp:
        url = f"sqlite:///{tmp}/accounts.db"
        asyncio.run(provision(DatabaseSettings(url=url), USER, ["operator"], ["main"], by="bench", password=password))
        proc, port = _start(bootstrap, namespace, ["station", "--database", url, *args])
        try:
            time.sleep(2.0)  # let it reach 'running'
            yield f"http://127.0.0.1:{port}", kafka
        finally:
            proc.terminate()
            proc.wait(30)


def bench_console_scale(bootstrap: str, held: int = 10_000) -> dict[str, Any]:
    """The console with ``held`` incidents (:mod:`vigie.station.scale`): its load in headless Chromium (None when
    Playwright or Debian's chromium is missing) and the incidents per minute a station passes on to a console."""
    from vigie.station.scale import CHROMIUM, measure_console, publish_all, storm, sustained_rate

    password = generate_password()
    with _station(bootstrap, "console-scale", password, "--max-incidents", str(3 * held)) as (base, kafka):
        alerts = Topics(kafka.namespace).alerts("main")
        asyncio.run(publish_all(kafka, alerts, storm(held)))
        deadline = time.monotonic() + 120
        while _held(base) < held:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench station holds {_held(base)} of {held} incidents after 120 s")
            time.sleep(0.5)
        browser = None
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if sync_playwright is not None and os.path.exists(CHROMIUM):
            with sync_playwright() as p:
                chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                page = chromium.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/login")
                page.fill("#user", USER)
                page.fill("#password", password)
                page.click("#login-button")
                page.wait_for_url(f"{base}/")
                browser = measure_console(page, base, held, "cam-007", held // 200)
                chromium.close()
        rate = asyncio.run(sustained_rate(base, USER, password, kafka, alerts, storm(2000, first=2 * held)))
    return {"held": held, "browser": browser, "incidents_per_minute": rate}


def _held(base: str) -> int:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
        return int(json.loads(answer.read())["store"]["open"])


async def _watch_live(base: str, kafka: KafkaSettings, password: str, frames: int) -> dict[str, Any]:
    from vigie.contracts.v1 import Incident
    from vigie.core.kafka import make_producer
    from vigie.station.live_client import LiveClient, LiveRefused

    alerts = Topics(kafka.namespace).alerts("main")
    producer = make_producer(kafka)
    await producer.start()
    try:
        now = time.time_ns()
        item = Incident(id="bench-live", kind="intrusion", camera_id="cam-live", state=Incident.STATE_NEW,
                        first_seen_ns=now, last_seen_ns=now, revision=1, updated_ns=now, stations=["main"])
        await producer.send_and_wait(alerts.name, alerts.encode(item), key=alerts.key(item.camera_id))
    finally:
        await producer.stop()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{base}/login", json={"user": USER, "password": password},
                             headers={"Origin": base}) as answer:
            me = await answer.json()
        for attempt in range(20):  # until the station has read the incident
            try:
                async with LiveClient(http, base, me["csrf"], "cam-live", item.id) as client:
                    figures = await client.watch(frames, timeout_s=frames / 5 + 30)
                break
            except LiveRefused:  # 403 while the station has not read the incident yet
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
    return {"frames": figures.frames, "client": _ms(figures.delays_s), "server": _ms(figures.server_delays_s),
            "matched": len(figures.delays_s)}


def bench_live(bootstrap: str, frames: int = 300) -> dict[str, Any]:
    """Watch a synthetic camera's live view for ``frames`` frames (10 fps); returns p50/p99 in ms of the delay
    behind capture at the station's encoder and decoded by the client. Raises RuntimeError when a service
    does not start."""
    from vigie.core.authorisations import authorise_cameras

    password = generate_password()
    with _station(bootstrap, "live", password) as (base, kafka), tempfile.TemporaryDirectory() as tmp:
        cameras = os.path.join(tmp, "cameras.yaml")
        with open(cameras, "w") as out:
            out.write(authorise_cameras("cameras:\n  - id: cam-live\n    source: synthetic://scene?seed=3&w=720&h=480"
                                        "&fps=10\n    fps: 10\n"))
        grabber, _ = _start(bootstrap, kafka.namespace, ["grabber", "--cameras", cameras])
        try:
            return asyncio.run(_watch_live(base, kafka, password, frames))
        finally:
            grabber.terminate()
            grabber.wait(30)


def live_rows(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows (figure, value, target) of :func:`bench_live`'s results."""
    server, client = figures["server"], figures["client"]
    return [
        (f"live view, capture to the station's encoder, p50 / p99 (n={figures['frames']})",
         f"{server['p50_ms']:.0f} / {server['p99_ms']:.0f} ms", ""),
        (f"live view, capture to decoded by an aiortc client, p50 / p99 (n={figures['matched']})",
         f"{client['p50_ms']:.0f} / {client['p99_ms']:.0f} ms", "<= 500 ms"),
    ]


def rows(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows (figure, value, reference) of :func:`bench_console`'s results."""
    ref = figures["argon2id_verify_ms"]
    login, page = figures["login"], figures["first_page"]
    return [
        (f"console login, p50 / p99 (n={figures['n']}; argon2id check, session, audit entry)",
         f"{login['p50_ms']:.0f} / {login['p99_ms']:.0f} ms ({login['p99_ms'] / ref:.1f}x one argon2id check)",
         f"ref {ref:.0f} ms"),
        ("console first page after login (page, /api/me, /api/incidents), p50 / p99",
         f"{page['p50_ms']:.0f} / {page['p99_ms']:.0f} ms", ""),
        *scale_rows(figures.get("scale")),
    ]


def scale_rows(scale: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Table rows of :func:`bench_console_scale`'s results (none when it did not run)."""
    if not scale:
        return []
    held, browser = f"{scale['held']:,}", scale["browser"]
    out = [(f"station → console event stream, new incidents per minute ({held} held)",
            f"{scale['incidents_per_minute']:,.0f} / min", ">= 100 / min")]
    if browser is None:
        return [*out, (f"console with {held} incidents (Chromium)", "not measured: no Playwright or chromium", "")]
    return [*out,
            (f"console with {held} incidents: first row / all rows / interactive (a filter applied)",
             f"{browser['first_row_s']:.1f} / {browser['all_rows_s']:.1f} / {browser['interactive_s']:.1f} s", "< 20 s"),
            (f"console with {held} incidents: a filter, the longest main-thread task",
             f"{browser['filter_ms']:.0f} ms, {browser['longest_task_ms']:.0f} ms", "")]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    bootstrap = os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092")
    for row in [*rows(bench_console(bootstrap, n=20 if quick else 100)),
                *live_rows(bench_live(bootstrap, frames=100 if quick else 300))]:
        print(" | ".join(row))
