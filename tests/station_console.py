"""A station service run in the test's own event loop behind aiohttp's test server, with a real broker and a
real database; reading the topics it writes (actions, audit); publishing a database's audit outbox."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.accounts.outbox import flush_outbox

from vigie.contracts.v1 import Frame, Incident, RecordRef
from vigie.core.audit import AuditLog
from vigie.core.db import DatabaseSettings
from vigie.core.kafka import make_producer
from vigie.core.lifecycle import State, http_app
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic, Topics
from vigie.station.app import StationService, StationSettings
from vigie.station.auth import AuthSettings


@asynccontextmanager
async def running_station(kafka: KafkaSettings, db_url: str, station: str = "main", *, apps: list | None = None,
                          cameras_file: str | None = None, **auth: Any):
    """A started station (its alert consumer running) served on a free port; yields ``(service, base URL)``.

    Its aiohttp application is appended to ``apps`` when given (to enumerate its routes)."""
    service = StationService(StationSettings(kafka=kafka, station=station, database=DatabaseSettings(url=db_url),
                                             auth=AuthSettings(**auth), cameras_file=cameras_file))
    await service.start()
    service.state = State.RUNNING
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    app = http_app(service)
    if apps is not None:
        apps.append(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=service.ssl_context())
    try:
        yield service, f"{server.scheme}://127.0.0.1:{server.port}"
    finally:
        stop.set()
        await server.close()
        await task
        await service.stop()


async def publish_frame(kafka: KafkaSettings, camera: str, data: bytes = b"\xff\xd8jpeg-bytes\xff\xd9") -> RecordRef:
    """Publish one frame of ``camera`` to the frames topic; returns its reference (for an incident's snapshot)."""
    topics = Topics(kafka.namespace)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        frame = Frame(camera_id=camera, seq=1, capture_ns=time.time_ns(), width=4, height=4,
                      encoding=Frame.ENCODING_JPEG, data=data)
        meta = await producer.send_and_wait(topics.frames.name, topics.frames.encode(frame), key=camera.encode())
    finally:
        await producer.stop()
    return RecordRef(topic=meta.topic, partition=meta.partition, offset=meta.offset)


async def wait_for_incident(service: StationService, incident_id: str, timeout_s: float = 20.0) -> Incident:
    """The station's incident ``incident_id`` once it arrived from the alerts topic."""
    deadline = time.monotonic() + timeout_s
    while (found := service.incidents.get(incident_id)) is None:
        assert time.monotonic() < deadline, f"{incident_id} never reached the station"
        await asyncio.sleep(0.05)
    return found


async def read_topic(kafka: KafkaSettings, topic: Topic, settle_s: float = 2.0) -> list:
    """Every message of ``topic`` (decoded), read from the beginning until nothing came for ``settle_s``."""
    consumer = AIOKafkaConsumer(topic.name, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    messages, quiet_since = [], time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle_s:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                messages += [topic.decode(r.value) for r in records]
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return messages


async def publish_outbox(kafka: KafkaSettings, engine: AsyncEngine) -> int:
    """Publish the database's audit outbox to the namespace's audit topic, as the register service will;
    returns how many entries went."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        return await flush_outbox(engine, AuditLog(producer, Topics(kafka.namespace).audit))
    finally:
        await producer.stop()
