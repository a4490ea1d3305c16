"""The evidence service against the real broker, a real SQLite file, a real folder and the register: an
incident gets its clip (the configured range, privacy mask still black) and snapshot, listed once with
their hashes in the register, even across a restart; with the clock advanced they are destroyed the
day their retention ends, the register's chain still verifies."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg

from vigie.contracts.v1 import Frame, Incident, RecordRef
from vigie.core.authorisations import DAY_NS
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.kafka import apply_topics, make_producer
from vigie.core.topics import Topics
from vigie.evidence.app import EvidenceService, EvidenceSettings
from vigie.evidence.store import StoreSettings
from vigie.register.query import list_entries, verify_chain

from tests.test_register_service import service as register_service, wait_for

pytestmark = pytest.mark.broker

CAMERAS = """authorisations:
  - {id: centre, reference: "Arrêté 2026-0142", order_date: 2020-01-01, valid_until: 2099-12-31,
     purposes: [security_of_persons], max_retention_days: 3}
cameras:
  - {id: cam-1, authorisation: centre, source: synthetic://scene}
  - {id: cam-2, authorisation: centre, source: synthetic://scene}
"""
FPS = 5
#: The privacy mask the grabber blacked out, in the frames' pixels: x0, y0, x1, y1.
MASK = (0, 0, 64, 48)


def _jpeg(n: int) -> bytes:
    picture = np.full((240, 320, 3), 60 + (n * 7) % 150, np.uint8)
    picture[100:140, (n * 5) % 280:(n * 5) % 280 + 40] = (230, 40, 40)  # something moving
    x0, y0, x1, y1 = MASK
    picture[y0:y1, x0:x1] = 0
    return simplejpeg.encode_jpeg(picture, quality=90, colorspace="RGB")


async def _publish(kafka, start_ns: int, count: int) -> dict[int, RecordRef]:  # noqa: ANN001
    """``count`` frames of cam-1 (and as many of cam-2) from ``start_ns`` at 5 fps; returns cam-1's refs by n."""
    topic = Topics(kafka.namespace).frames
    producer = make_producer(kafka)
    await producer.start()
    refs = {}
    try:
        for n in range(count):
            at = start_ns + n * 10**9 // FPS
            for camera in ("cam-1", "cam-2"):
                frame = Frame(camera_id=camera, seq=n, capture_ns=at, pts=n / FPS, width=320, height=240,
                              encoding=Frame.ENCODING_JPEG, data=_jpeg(n), privacy_masks=["window"], fps=FPS)
                meta = await producer.send_and_wait(topic.name, topic.encode(frame), key=topic.key(camera),
                                                    timestamp_ms=at // 10**6)
                if camera == "cam-1":
                    refs[n] = RecordRef(topic=meta.topic, partition=meta.partition, offset=meta.offset)
    finally:
        await producer.stop()
    return refs


def _incident(ref: RecordRef, at_ns: int) -> Incident:
    return Incident(id="inc-00042", kind="abandoned_object", camera_id="cam-1", state=Incident.STATE_NEW,
                    first_seen_ns=at_ns, last_seen_ns=at_ns, count=1, snapshot=ref, snapshot_capture_ns=at_ns,
                    revision=1, frame_width=320, frame_height=240)


def _decode(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]



def _scene(kafka, tmp_path: Path, location: str, **settings) -> tuple[EvidenceSettings, Topics, dict, int, int]:  # noqa: ANN001
    """Topics, the cameras file, the service's settings (the store at ``location``, 4 s before and after) and
    15 s of frames of both cameras published 20 s ago: ``(settings, topics, cam-1's refs, start_ns, at_ns)``
    with ``at_ns`` the capture time of frame 40, the trigger."""
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all([])))
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(CAMERAS)
    options = {"before_s": 4, "after_s": 4, "grace_s": 1, "http_port": 0, **settings}
    configured = EvidenceSettings(kafka=kafka, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'vigie.db'}"),
                                  cameras_file=str(cameras), store=StoreSettings(location=location), **options)
    start_ns = time.time_ns() - 20 * 10**9
    refs = asyncio.run(_publish(kafka, start_ns, 75))
    return configured, topics, refs, start_ns, start_ns + 40 * 10**9 // FPS

async def _send_incident(kafka, incident: Incident, times: int = 1) -> None:  # noqa: ANN001
    """Publish ``incident`` to the incidents topic ``times`` times (as the correlator republishes revisions)."""
    topic = Topics(kafka.namespace).incidents
    producer = make_producer(kafka)
    await producer.start()
    try:
        for _ in range(times):
            await producer.send_and_wait(topic.name, topic.encode(incident), key=topic.key(incident.camera_id))
    finally:
        await producer.stop()


def test_an_incident_gets_its_clip_and_snapshot_once_and_they_are_destroyed_on_time(kafka, tmp_path: Path) -> None:
    settings, topics, refs, start_ns, at_ns = _scene(kafka, tmp_path, str(tmp_path / "evidence"))
    url = settings.database.url
    now = [dt.datetime.now(dt.timezone.utc)]
    trigger = 40  # the 40th frame, 8 s into the stream

    async def scenario() -> tuple[list, bytes, list]:
        # the same incident twice (a new revision): still one set of evidence
        await _send_incident(kafka, _incident(refs[trigger], at_ns), times=2)
        for _ in range(2):  # a restart reads the incidents again: nothing stored twice
            service = EvidenceService(settings, clock=lambda: now[0])
            await service.start()
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            await wait_for(lambda: _stored(service), timeout_s=60)
            stop.set()
            await task
            items = await service.catalogue.items()
            store = service.catalogue.store
            clip = next(i for i in items if i.kind == "clip")
            data = store.read(clip.key)
            await service.stop()
        async with register_service(kafka, url):
            await wait_for(lambda: _kinds(url, "recording", 2), timeout_s=30)
        service = EvidenceService(settings, clock=lambda: now[0])
        await service.prepare()
        now[0] += dt.timedelta(days=3) - dt.timedelta(seconds=30)  # 30 s before the retention ends: kept
        assert await service.purge() == 0
        now[0] += dt.timedelta(seconds=60)
        assert await service.purge() == 2
        assert not (tmp_path / "evidence" / clip.key).exists()
        await service.stop()
        async with register_service(kafka, url):
            await wait_for(lambda: _kinds(url, "purge", 2), timeout_s=30)
        engine = make_engine(DatabaseSettings(url=url))
        try:
            assert (await verify_chain(engine)).ok
            entries = await list_entries(engine, limit=1000)
        finally:
            await engine.dispose()
        return items, data, entries

    items, data, entries = asyncio.run(scenario())
    assert sorted(i.kind for i in items) == ["clip", "snapshot"]
    clip = next(i for i in items if i.kind == "clip")
    assert clip.start_ns == at_ns - 4 * 10**9 and clip.end_ns == at_ns + 4 * 10**9  # [t - 4 s, t + 4 s]
    assert clip.frames == 41 and clip.due_ns == at_ns + 3 * DAY_NS and clip.sha256 == hashlib.sha256(data).hexdigest()
    pictures = _decode(data)
    assert len(pictures) == 41 and pictures[0].shape == (240, 320, 3)
    x0, y0, x1, y1 = MASK
    for picture in pictures:  # the privacy mask is still black (H.264 is lossy: a margin of 2 pixels)
        assert picture[y0:y1 - 2, x0:x1 - 2].max() <= 24 and picture[y1 + 4:, x1 + 4:].mean() > 40
    recordings = [e for e in entries if e["kind"] == "recording"]
    assert len(recordings) == 2 and all(e["incident_id"] == "inc-00042" for e in recordings)
    assert {json.loads(e["detail"])["sha256"] for e in recordings} == {i.sha256 for i in items}
    purges = [json.loads(e["detail"]) for e in entries if e["kind"] == "purge"]
    assert len(purges) == 2 and {p["item"] for p in purges} == {i.id for i in items}


async def _stored(service: EvidenceService) -> bool:
    return len(await service.catalogue.items()) == 2 and not service.jobs


async def _kinds(url: str, kind: str, n: int) -> bool:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        return len(await list_entries(engine, kind=kind, limit=1000)) >= n
    finally:
        await engine.dispose()


def test_a_full_disk_lists_nothing_then_the_evidence_is_stored_once_space_is_back(kafka, tmp_path: Path) -> None:
    """The store on a small filesystem filled up: the clip is refused whole, nothing is listed, no partial file
    is left, the service says degraded with the reason; once space is freed the next try stores it, once."""
    from tests.filesystems import small_tmpfs

    with small_tmpfs(tmp_path / "small", "512k") as mount:
        filler = mount / "filler"
        try:  # the filesystem filled up: not a byte left
            with open(filler, "wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
        except OSError:
            pass
        settings, _, refs, _, at_ns = _scene(kafka, tmp_path, str(mount / "evidence"), retry_s=1)

        async def scenario() -> tuple[dict, list]:
            await _send_incident(kafka, _incident(refs[40], at_ns))
            async with _running(EvidenceService(settings)) as service:
                await wait_for(lambda: _refused(service), timeout_s=60)
                degraded = service.degraded()
                # what VigieEvidenceStoreNearlyFull divides: nothing free of the 512 KiB
                value = service.registry.get_sample_value
                assert value("vigie_evidence_store_free_bytes") == 0
                assert value("vigie_evidence_store_size_bytes") == 512 * 1024
                assert await service.catalogue.items() == [] and service.jobs
                assert not [p.name for p in (mount / "evidence").rglob("*") if p.is_file()]
                filler.unlink()
                await wait_for(lambda: _stored(service), timeout_s=60)
                assert service.degraded() == {}
                assert value("vigie_evidence_store_free_bytes") > 0
                return degraded, await service.catalogue.items()

        degraded, items = asyncio.run(scenario())
        assert "No space left on device" in degraded["store"] and ".mp4" in degraded["store"]
        assert sorted(i.kind for i in items) == ["clip", "snapshot"]

@contextlib.asynccontextmanager
async def _running(service: EvidenceService):  # noqa: ANN202
    """``service`` started and running in this loop until the block ends, then drained and stopped."""
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await task
        await service.stop()


async def _refused(service: EvidenceService) -> bool:
    return bool(service.store_error)


def test_evidence_in_object_storage_waits_out_an_unreachable_store(kafka, tmp_path: Path, monkeypatch) -> None:
    """The store is an S3 bucket whose server is down when the incident comes: nothing is listed, the service
    says degraded naming the bucket and its endpoint (never a credential); once the server answers the clip
    and snapshot are stored there once, their SHA-256 that of the objects; the purge removes the objects."""
    import boto3

    from tests.s3_server import CREDENTIALS, need_server, s3_server
    from tests.stack import free_port

    need_server()
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    location = f"s3://vigie-evidence/lyon?endpoint=http://127.0.0.1:{port}"
    settings, topics, refs, _, at_ns = _scene(kafka, tmp_path, location, retry_s=1)
    now = [dt.datetime.now(dt.timezone.utc)]

    async def scenario() -> tuple[dict, list, dict]:
        await _send_incident(kafka, _incident(refs[40], at_ns))
        async with _running(EvidenceService(settings, clock=lambda: now[0])) as service:
            await wait_for(lambda: _refused(service), timeout_s=60)
            degraded = service.degraded()
            assert await service.catalogue.items() == []
            with s3_server(port) as endpoint:
                await wait_for(lambda: _stored(service), timeout_s=60)
                items = await service.catalogue.items()
                client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
                objects = {o["Key"]: client.get_object(Bucket="vigie-evidence", Key=o["Key"])["Body"].read()
                           for o in client.list_objects_v2(Bucket="vigie-evidence").get("Contents", [])}
                now[0] += dt.timedelta(days=3, minutes=1)
                assert await service.purge() == 2
                left = client.list_objects_v2(Bucket="vigie-evidence").get("KeyCount", 0)
            assert left == 0
            return degraded, items, objects

    degraded, items, objects = asyncio.run(scenario())
    assert f"s3://vigie-evidence/lyon at http://127.0.0.1:{port}" in degraded["store"]
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in json.dumps(degraded)
    assert sorted(objects) == sorted(f"lyon/{i.key}" for i in items)
    assert {hashlib.sha256(data).hexdigest() for data in objects.values()} == {i.sha256 for i in items}


def test_the_folder_stores_free_space_is_a_gauge(kafka, tmp_path: Path) -> None:
    """vigie_evidence_store_free_bytes / _size_bytes give the folder store's file system (what the alert
    VigieEvidenceStoreNearlyFull divides); NaN before the store is opened."""
    import math
    import shutil

    (tmp_path / "cameras.yaml").write_text(CAMERAS)
    settings = EvidenceSettings(kafka=kafka, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'vigie.db'}"),
                                cameras_file=str(tmp_path / "cameras.yaml"),
                                store=StoreSettings(location=str(tmp_path / "evidence")), http_port=0)
    service = EvidenceService(settings)
    value = service.registry.get_sample_value
    assert math.isnan(value("vigie_evidence_store_free_bytes"))

    async def opened() -> tuple[float, float]:
        await service.prepare()
        try:
            return value("vigie_evidence_store_free_bytes"), value("vigie_evidence_store_size_bytes")
        finally:
            await service.stop()

    free, size = asyncio.run(opened())
    usage = shutil.disk_usage(tmp_path)
    assert size == usage.total
    assert 0 < free <= size and abs(free - usage.free) < 256 * 2**20  # other writers on the disk meanwhile
