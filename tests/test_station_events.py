"""The station's event stream (server-sent events) with more than 1,000 incidents and a slow console,
against the real station process and the real broker, read with aiohttp's HTTP client."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest

from tests.stack import health
from tests.station_support import ConsoleView, follow, incident, logged_in_station, metric, publish
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker

BEFORE, DURING = 1500, 3000


async def test_event_stream_survives_over_1000_incidents_and_a_console_that_stops_reading(kafka, tmp_path) -> None:
    """Defect: the event stream failed once 1,000 incidents existed (a bounded queue per console filled
    with put_nowait raised QueueFull), and a console that stopped reading broke the stream.

    1,500 incidents exist before two consoles connect: both get the whole list. A console that then
    stops reading (its socket's receive buffer shrunk) while 3,000 more incidents of about 6 kB arrive
    does not stop the other console, which sees every incident, nor the service; once it reads again it
    gets ``resync`` (reason overflow, with the events dropped) and the whole list. The resync is counted.
    """
    topic = Topics(kafka.namespace).alerts("main")
    await publish(kafka, topic, [incident(n) for n in range(BEFORE)])
    later = [incident(n, comment_chars=6000) for n in range(BEFORE, BEFORE + DURING)]
    everything = {f"inc-{n:05d}" for n in range(BEFORE + DURING)}
    with logged_in_station(kafka, log_dir=tmp_path) as (_, port, cookie):
        deadline = time.monotonic() + 60
        while health(port)["incidents"] < BEFORE:
            assert time.monotonic() < deadline, health(port)
            await asyncio.sleep(0.2)
        url = f"http://127.0.0.1:{port}/api/events"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout, headers={"Cookie": cookie}) as session, \
                session.get(url) as slow, session.get(url) as fast:
            slow_view, fast_view = ConsoleView(), ConsoleView()
            await follow(slow, slow_view, lambda v: len(v.live) == 1)
            slow_socket = slow.connection.transport.get_extra_info("socket")
            slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await follow(fast, fast_view, lambda v: len(v.live) == BEFORE)
            assert fast_view.resyncs[0]["reason"] == "connect"

            reader = asyncio.create_task(follow(fast, fast_view, lambda v: len(v.live) == len(everything)))
            await publish(kafka, topic, later)
            await asyncio.wait_for(reader, 120)
            assert set(fast_view.live) == everything
            assert health(port)["state"] == "running"

            deadline = time.monotonic() + 60
            while metric(port, "vigie_station_console_resyncs_total") < 1:
                assert time.monotonic() < deadline, "the slow console was never resynchronised"
                await asyncio.sleep(0.5)
            assert metric(port, "vigie_station_console_events_dropped_total") > 0

            slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # reads at full speed again

            await asyncio.wait_for(follow(slow, slow_view, lambda v: len(v.live) == len(everything) and any(
                r["reason"] == "overflow" for r in v.resyncs)), 120)
            assert set(slow_view.live) == everything
            overflow = next(r for r in slow_view.resyncs if r["reason"] == "overflow")
            assert overflow["dropped"] > 0
            assert health(port)["consoles"] == 2
