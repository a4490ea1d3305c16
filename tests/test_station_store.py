"""The station's memory is bounded: the incident store (open incidents, closed ones for a while, a hard
cap) and the snapshot cache (an LRU capped in bytes)."""

from __future__ import annotations

import asyncio
import io
import random
import time
import urllib.request

import aiohttp
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from PIL import Image
from prometheus_client import CollectorRegistry

from tests.stack import health
from tests.station_support import NS, ConsoleView, follow, get_json, incident, logged_in_station, metric, publish
from vigie.contracts.v1 import Frame, Incident, RecordRef
from vigie.core.topics import Topics
from vigie.station.store import IncidentStore

CLOSED = Incident.STATE_CLOSED


def test_closed_incidents_leave_memory_after_keep_closed_s_and_never_come_back() -> None:
    """Defect: the station kept every incident of 30 days in memory.

    With a clock the test moves: a closed incident stays ``keep_closed_s`` after its closing revision,
    then leaves (counted, announced); an open one stays until ``keep_open_s`` without change; a late,
    older revision of an incident that left does not bring it back, a newer one does.
    """
    now = [time.time_ns()]
    store = IncidentStore(100, keep_closed_s=60, keep_open_s=3600, registry=CollectorRegistry(),
                          clock_ns=lambda: now[0])
    gone: list[str] = []
    store.on_evict = gone.append
    opened, closed = incident(1), incident(2, state=CLOSED, revision=3)
    assert store.put(opened) and store.put(closed) and len(store) == 2
    now[0] += 59 * NS
    store.prune()
    assert len(store) == 2 and not gone
    now[0] += 2 * NS
    store.prune()
    assert gone == [closed.id] and store.get(opened.id) is not None
    assert not store.put(incident(2, revision=2))  # older than what left
    assert store.get(closed.id) is None
    now[0] += 3600 * NS
    store.prune()
    assert gone == [closed.id, opened.id] and store.counts()["evicted"]["open_expired"] == 1
    late = incident(1, revision=2)  # a new change (its updated_ns is the test's wall clock): back
    now[0] = late.updated_ns
    assert store.put(late) and store.get(opened.id).revision == 2


@pytest.mark.broker
def test_store_holds_open_and_recent_closed_within_the_cap(kafka, tmp_path) -> None:
    """Defect: the station kept every incident of 30 days in memory.

    A station limited to 300 incidents reads 200 incidents closed two hours ago, 100 closed in the last
    100 seconds, 5 open ones unchanged for 8 days and 250 open ones, shuffled. It holds exactly the 250
    open ones and the 50 closed last; /healthz and /metrics count each reason; a console following
    the stream ends with the same list (it heard of the cap's evictions as ``gone``); an old revision
    of an evicted incident, replayed, does not come back.
    """
    old_closed = [incident(n, state=CLOSED, revision=2, age_s=7200) for n in range(200)]
    recent_closed = [incident(n, state=CLOSED, revision=2, age_s=300 - n) for n in range(200, 300)]
    stale_open = [incident(n, age_s=8 * 86400) for n in range(300, 305)]
    live_open = [incident(n) for n in range(305, 555)]
    records = old_closed + recent_closed + stale_open + live_open
    random.Random(7).shuffle(records)
    expected = {i.id for i in live_open} | {i.id for i in recent_closed[50:]}
    topic = Topics(kafka.namespace).alerts("main")

    async def run(port: int) -> ConsoleView:
        view = ConsoleView()
        async with aiohttp.ClientSession(headers={"Cookie": cookie}) as session, \
                session.get(f"http://127.0.0.1:{port}/api/events") as events:
            await follow(events, view, lambda v: bool(v.resyncs))
            await publish(kafka, topic, records)
            await asyncio.wait_for(follow(events, view, lambda v: set(v.live) == expected), 60)
        return view

    with logged_in_station(kafka, "--max-incidents", "300", "--keep-closed-s", "600",
                           log_dir=tmp_path) as (_, port, cookie):
        view = asyncio.run(run(port))
        assert set(view.gone) == {i.id for i in recent_closed[:50]}
        store = health(port)["store"]
        assert (store["open"], store["closed"]) == (250, 50)
        assert store["evicted"] == {"closed_expired": 200, "open_expired": 5, "cap_closed": 50, "cap_open": 0}
        assert metric(port, "vigie_station_incidents_evicted_total", 'reason="cap_closed"') == 50
        assert metric(port, "vigie_station_incidents_held", 'state="open"') == 250
        status, body = get_json(port, "/api/incidents", cookie)
        assert status == 200 and {i["id"] for i in body["incidents"]} == expected
        status, body = get_json(port, "/api/incidents?state=open", cookie)
        assert {i["id"] for i in body["incidents"]} == {i.id for i in live_open}

        evicted = recent_closed[0]
        asyncio.run(publish(kafka, topic, [incident(200, revision=1), incident(999)]))
        deadline = time.monotonic() + 30
        while "inc-00999" not in {i["id"] for i in get_json(port, "/api/incidents", cookie)[1]["incidents"]}:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert evicted.id not in {i["id"] for i in get_json(port, "/api/incidents", cookie)[1]["incidents"]}


def _jpeg(width: int, height: int, quality: int, seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.mark.broker
def test_snapshot_cache_is_an_lru_capped_in_bytes(kafka, tmp_path) -> None:
    """Defect: the snapshot cache (``_snapshots``) was bounded by count only, not by bytes.

    With a 1 MiB cap and snapshots of about 360 kB, two fit: viewing a third evicts the least recently
    viewed, a snapshot viewed again is served from memory, and a 2 MB snapshot is served but not kept.
    """
    topics = Topics(kafka.namespace)
    jpegs = [_jpeg(800, 600, 85, seed) for seed in range(3)] + [_jpeg(1600, 1200, 95, 9)]
    assert all(300_000 < len(j) < 500_000 for j in jpegs[:3]) and len(jpegs[3]) > 1 << 20

    async def publish_frames() -> list[Incident]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=4 << 20)
        await producer.start()
        try:
            refs = []
            for n, data in enumerate(jpegs):
                frame = Frame(camera_id=f"cam-{n}", seq=1, capture_ns=time.time_ns(), width=800, height=600,
                              encoding=Frame.ENCODING_JPEG, data=data)
                meta = await producer.send_and_wait(topics.frames.name, topics.frames.encode(frame), key=b"cam")
                refs.append(RecordRef(topic=meta.topic, partition=meta.partition, offset=meta.offset))
        finally:
            await producer.stop()
        made = []
        for n, ref in enumerate(refs):
            item = incident(n, cameras=100)
            item.snapshot.CopyFrom(ref)
            made.append(item)
        await publish(kafka, topics.alerts("main"), made)
        return made

    made = asyncio.run(publish_frames())
    with logged_in_station(kafka, "--snapshot-cache-mib", "1", log_dir=tmp_path) as (_, port, cookie):
        deadline = time.monotonic() + 30
        while health(port)["incidents"] < len(made):
            assert time.monotonic() < deadline
            time.sleep(0.2)

        def view(n: int) -> bytes:
            url = f"http://127.0.0.1:{port}/api/incidents/{made[n].id}/snapshot.jpg"
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie})) as r:
                return r.read()

        def hits() -> tuple[float, float]:
            return (metric(port, "vigie_station_snapshot_cache_requests_total", 'result="hit"'),
                    metric(port, "vigie_station_snapshot_cache_requests_total", 'result="miss"'))

        for n in (0, 1, 2):
            assert view(n) == jpegs[n]
        cache = health(port)["snapshot_cache"]
        assert cache == {"items": 2, "bytes": len(jpegs[1]) + len(jpegs[2]), "max_bytes": 1 << 20}
        assert hits() == (0, 3) and metric(port, "vigie_station_snapshot_cache_evictions_total") == 1
        assert view(2) == jpegs[2] and hits() == (1, 3)
        assert view(0) == jpegs[0] and hits() == (1, 4)  # 0 was evicted; now 1, the least recent, goes
        assert health(port)["snapshot_cache"]["bytes"] == len(jpegs[2]) + len(jpegs[0])
        assert view(3) == jpegs[3]
        assert health(port)["snapshot_cache"]["bytes"] == len(jpegs[2]) + len(jpegs[0])

        asyncio.run(publish(kafka, topics.alerts("main"), [incident(50)]))  # no snapshot reference
        while health(port)["incidents"] < len(made) + 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status, text = get_json(port, "/api/incidents/inc-00050/snapshot.jpg", cookie)
        assert status == 404 and "no snapshot" in text
