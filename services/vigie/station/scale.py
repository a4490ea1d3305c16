"""The console at scale: a station holding 10,000 incidents, measured in headless Chromium, and the rate of new
incidents a station passes on to its consoles.

Used by the station's bench (:mod:`vigie.station.bench`, in ``vigie bench``) and by
``tests/test_console_scale.py``, which asserts generous bounds on the same figures.

- :func:`storm` makes ``n`` incidents as the correlator publishes them: 200 cameras, every kind,
  priorities 1 to 5 (few of 1 and 2), zones, some taken;
- :func:`measure_console` opens the console in a logged-in Playwright page and times, from the start
  of the page's load: the first row painted, every incident in the table, a camera filter applied
  (time to interactive); then the longest main-thread task (``longtask`` entries) and a burst of new
  incidents shown;
- :func:`sustained_rate` times how fast incidents published to the alerts topic reach a console's event
  stream (incidents per minute).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from vigie.contracts.v1 import HistoryItem, Incident, Region
from vigie.core.kafka import make_producer
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

NS = 1_000_000_000
KINDS = ("intrusion", "abandoned_object", "wrong_way", "density", "fire", "person_down", "tamper", "crowd_movement")
#: Debian's chromium, as the console tests use it.
CHROMIUM = "/usr/bin/chromium"
#: Records the main thread's long tasks (> 50 ms) of the page in ``window.__longTasks`` (ms).
LONG_TASKS = """window.__longTasks = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
  .observe({ type: "longtask", buffered: true });"""


def storm(n: int, *, first: int = 0, cameras: int = 200, station: str = "main") -> list[Incident]:
    """Incidents ``inc-<first>`` to ``inc-<first + n - 1>``, open, last seen over the past hour (one second apart
    at most), on ``cameras`` cameras; priorities about 2 % 1, 8 % 2, 40 % 3, 30 % 4, 20 % 5."""
    now = time.time_ns()
    out = []
    for k in range(first, first + n):
        seen = now - (k * 7919 % 3600) * NS
        camera = f"cam-{k % cameras:03d}"
        kind = KINDS[k % len(KINDS)]
        priority = 1 + sum(k % 50 >= edge for edge in (1, 5, 25, 40))
        state = Incident.STATE_ACKNOWLEDGED if k % 7 == 0 else Incident.STATE_NEW
        out.append(Incident(
            id=f"inc-{k:06d}", kind=kind, camera_id=camera, state=state, first_seen_ns=seen - 20 * NS,
            last_seen_ns=seen, count=1 + k % 9, severity=0.6, regions=[Region(x=10, y=20, w=30, h=40)],
            frame_width=640, frame_height=360, revision=1, updated_ns=seen, stations=[station],
            operator="op-day" if state == Incident.STATE_ACKNOWLEDGED else "", priority=priority,
            owner="op-day" if state == Incident.STATE_ACKNOWLEDGED else "", zone=str(k % 3),
            track_ids=[f"{camera}/{kind}/{k}"], opened_by=f"an-{k}",
            history=[HistoryItem(at_ns=seen - 20 * NS, actor="vigie", what="opened")]))
    return out


async def publish_all(kafka: KafkaSettings, topic: Topic[Incident], incidents: list[Incident]) -> None:
    """Send ``incidents`` to ``topic`` keyed by camera, as the correlator does; returns once all are acknowledged."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        for item in incidents:
            await producer.send(topic.name, topic.encode(item), key=topic.key(item.camera_id))
        await producer.flush()
    finally:
        await producer.stop()


def _until(page: Any, selector: str, timeout_s: float) -> None:
    page.locator(selector).first.wait_for(state="attached", timeout=timeout_s * 1000)


def measure_console(page: Any, base: str, held: int, camera: str, in_camera: int,
                    publish_more: Callable[[int], None] | None = None, more: int = 100,
                    timeout_s: float = 120.0) -> dict[str, float]:
    """Time the console of a logged-in Playwright ``page`` on a station holding ``held`` open incidents, of which
    ``in_camera`` on ``camera``; seconds from the start of the page's load. With ``publish_more(k)`` (publishes
    ``k`` new open incidents), also the time until a burst of ``more`` shows in the table.

    Returns ``first_row_s``, ``all_rows_s``, ``interactive_s`` (the camera filter applied), ``filter_ms`` (that
    filter alone), ``longest_task_ms`` (main thread, during all that) and ``burst_s``. Raises Playwright's
    TimeoutError past ``timeout_s`` for one step.
    """
    page.add_init_script(LONG_TASKS)
    began = time.perf_counter()
    page.goto(f"{base}/")
    _until(page, "#rows tr.row", timeout_s)
    first_row = time.perf_counter() - began
    _until(page, f"#alarms[data-rows='{held}']", timeout_s)
    all_rows = time.perf_counter() - began
    filtering = time.perf_counter()
    page.select_option("#filter-camera", camera)
    _until(page, f"#alarms[data-rows='{in_camera}']", timeout_s)
    done = time.perf_counter()
    top = page.locator("#rows tr.row td.c-camera").first.inner_text()
    if top != camera:
        raise RuntimeError(f"the camera filter shows {top!r} at the top, not {camera!r}")
    figures = {"first_row_s": first_row, "all_rows_s": all_rows, "interactive_s": done - began,
               "filter_ms": (done - filtering) * 1000}
    figures["longest_task_ms"] = max(page.evaluate("window.__longTasks") or [0.0])
    if publish_more is not None:
        page.select_option("#filter-camera", "")
        _until(page, f"#alarms[data-rows='{held}']", timeout_s)
        burst = time.perf_counter()
        publish_more(more)
        _until(page, f"#alarms[data-rows='{held + more}']", timeout_s)
        figures["burst_s"] = time.perf_counter() - burst
    return figures


async def sustained_rate(base: str, user: str, password: str, kafka: KafkaSettings, topic: Topic[Incident],
                         incidents: list[Incident], timeout_s: float = 120.0) -> float:
    """Incidents per minute from the alerts topic to a console's event stream: ``incidents`` (new ones) are
    published as fast as the producer goes while a logged-in client reads ``/api/events``; the rate is their
    number over the time from the first send to the last one read. Raises TimeoutError past ``timeout_s``."""
    wanted = {i.id for i in incidents}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{base}/login", json={"user": user, "password": password},
                             headers={"Origin": base}) as answer:
            if answer.status != 200:
                raise RuntimeError(f"login refused: {answer.status} {await answer.text()}")
        async with http.get(f"{base}/api/events", timeout=aiohttp.ClientTimeout(total=None)) as stream:
            began = time.perf_counter()
            sending = asyncio.create_task(publish_all(kafka, topic, incidents))
            async with asyncio.timeout(timeout_s):
                event = ""
                while wanted:
                    line = (await stream.content.readline()).decode()
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "incident":
                        start = line.find('"id":"') + 6
                        wanted.discard(line[start:line.find('"', start)])
            elapsed = time.perf_counter() - began
            await sending
    return len(incidents) / elapsed * 60.0
