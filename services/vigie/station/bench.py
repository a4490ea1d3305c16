"""Figures of the console's logins (``vigie bench``, or ``python -m vigie.station.bench``).

A ``vigie station`` process runs on a scratch SQLite database with one account, in a namespace of its
own on the real broker. A client then logs in ``n`` times in a row (each login: argon2id check,
session row, audit entry acknowledged by the broker) and opens the console's first page after each
(the page, ``/api/me`` and ``/api/incidents``, as a browser does). The reference, measured in the same
run, is one argon2id verification in this process: the login's cost over it is what the console adds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
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
    argon2id reference. Raises RuntimeError when the station does not start or refuses the login."""
    from vigie.accounts.store import provision
    from vigie.core.db import DatabaseSettings

    password = generate_password()
    digest = hash_password(password)
    began = time.perf_counter()
    for _ in range(10):
        verify_password(digest, password)
    reference_ms = (time.perf_counter() - began) / 10 * 1000
    namespace = f"bench-console-{uuid.uuid4().hex[:8]}."
    kafka = KafkaSettings(bootstrap=bootstrap, namespace=namespace)
    asyncio.run(wait_for_broker(kafka, timeout_s=60))
    asyncio.run(apply_topics(kafka, Topics(namespace).all(["main"])))
    with tempfile.TemporaryDirectory(prefix="vigie-bench-console-") as tmp:
        url = f"sqlite:///{tmp}/accounts.db"
        asyncio.run(provision(DatabaseSettings(url=url), USER, ["operator"], ["main"], by="bench", password=password))
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vigie", "--kafka", bootstrap, "--namespace", namespace,
                                 "--log-level", "WARNING", "station", "--database", url, "--http-port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ})
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the bench station did not start (exit {proc.poll()})") from None
                    time.sleep(0.3)
            time.sleep(2.0)  # let it reach 'running'
            figures = asyncio.run(_run(base, password, n))
        finally:
            proc.terminate()
            proc.wait(30)
    figures["argon2id_verify_ms"] = reference_ms
    return figures


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
    ]


if __name__ == "__main__":
    result = bench_console(os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092"), n=20 if "--quick" in sys.argv else 100)
    for row in rows(result):
        print(" | ".join(row))
