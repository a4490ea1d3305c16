"""An incident's evidence in the console, in headless Chromium: a supervisor plays the clip (a view in the
register, with their name), places a legal hold with a requisition reference and downloads the judicial
bundle; an operator may view but not hold; an operator of another station and an auditor get nothing."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from tests.browser import chromium_page
from tests.stack import service
from tests.station_console import publish_frame, read_topic
from tests.station_support import add_user, browser_login, get_json, incident, login_cookie
from vigie.contracts.v1 import AuditEntry
from vigie.core.authorisations import DAY_NS
from vigie.core.db import DatabaseSettings, make_engine
from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.evidence.catalogue import Catalogue, NewItem
from vigie.evidence.store import FolderStore

pytestmark = [pytest.mark.broker, pytest.mark.browser]


def _mp4(frames: int = 25) -> bytes:
    """A small H.264 MP4 (160x120, 5 fps), as the evidence service writes."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(frames):
            picture = np.full((120, 160, 3), (n * 9) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


async def _publish_incident(kafka: KafkaSettings) -> str:
    from tests.station_support import publish

    ref = await publish_frame(kafka, "cam-1")
    item = incident(7)
    item.snapshot.CopyFrom(ref)
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [item])
    return item.id


async def _store(db: str, folder: Path, incident_id: str) -> str:
    engine = make_engine(DatabaseSettings(url=db))
    try:
        catalogue = Catalogue(engine, FolderStore(folder))
        data = _mp4()
        digest = catalogue.store.put("cam-1/clip.mp4", data)
        now = 1_780_000_000 * 10**9
        (item_id,) = await catalogue.record([NewItem(incident_id, "cam-1", "clip", "cam-1/clip.mp4", digest, len(data),
                                                     25, now, now + 5 * 10**9, now + 7 * DAY_NS, "centre")], now)
        return item_id
    finally:
        await engine.dispose()


def test_a_supervisor_plays_the_clip_and_places_a_hold_others_cannot(broker, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    db = f"sqlite:///{tmp_path}/accounts.db"
    for name, roles, stations in (("sup-main", "supervisor", "main"), ("op-main", "operator", "main"),
                                  ("op-east", "operator", "east"), ("audit-1", "auditor", "main")):
        add_user(db, name, roles, stations)
    incident_id = asyncio.run(_publish_incident(kafka))
    store = tmp_path / "evidence"
    item_id = asyncio.run(_store(db, store, incident_id))
    with service(kafka, "station", "--database", db, "--evidence-store", str(store), log_dir=tmp_path) as (_, port):
        base = f"http://127.0.0.1:{port}"
        for name, status in (("op-east", 403), ("audit-1", 403)):
            cookie = login_cookie(port, name)
            assert get_json(port, f"/api/evidence/{item_id}", cookie)[0] == status, name
            assert get_json(port, f"/api/incidents/{incident_id}/evidence", cookie)[0] == status, name
        cookie = login_cookie(port, "op-main")
        assert get_json(port, "/api/holds", cookie)[0] == 403  # an operator views, a supervisor holds
        assert get_json(port, "/api/evidence/no-such-item", cookie)[0] == 404
        with chromium_page() as page:
            browser_login(page, base, "sup-main")
            page.locator(f"#rows tr[data-incident-id='{incident_id}']").click(timeout=15000)
            card = page.locator(f"#detail[data-incident-id='{incident_id}']")
            card.locator(".evidence button.play").click(timeout=10000)  # listed on opening, played on demand
            video = card.locator(".evidence video")
            video.wait_for(timeout=10000)
            page.wait_for_function("v => v.readyState >= 1 && v.videoWidth === 160", arg=video.element_handle(),
                                   timeout=15000)
            assert "destroyed after" in card.locator(".evidence").inner_text()
            page.once("dialog", lambda dialog: dialog.accept("PV 2026/118 Lyon"))
            card.locator("button.hold-button").click()
            card.locator(".evidence", has_text="held: PV 2026/118 Lyon (sup-main)").wait_for(timeout=10000)
            answers = iter(["PV 2026/118 Lyon", "Parquet de Lyon"])
            page.on("dialog", lambda dialog: dialog.accept(next(answers, "")))  # then: the lift's confirmation
            with page.expect_download(timeout=20000) as download:
                card.locator("button.transmit-button").click()
            bundle = zipfile.ZipFile(download.value.path())
            names = bundle.namelist()
            assert download.value.suggested_filename.startswith("transmission-")
            assert any(n.endswith(f"items/{item_id}.mp4") for n in names)
            manifest = json.loads(bundle.read(next(n for n in names if n.endswith("manifest.json"))))
            assert manifest["authority"] == "Parquet de Lyon" and manifest["made_by"] == "sup-main"
            page.locator("#holds-toggle").click()
            hold = page.locator("#holds li.hold")
            hold.wait_for(timeout=10000)
            assert "PV 2026/118 Lyon" in hold.inner_text() and f"incident {incident_id}" in hold.inner_text()
            hold.locator("button").click()
            page.locator("#holds", has_text="No active legal hold.").wait_for(timeout=10000)
        cookie = login_cookie(port, "sup-main")
        status, body = get_json(port, "/api/holds", cookie)
        assert status == 200 and body["holds"] == []  # placed, then lifted in the page
    entries = asyncio.run(read_topic(kafka, topics.audit))
    views = [e for e in entries if e.kind == AuditEntry.KIND_VIEW and e.detail == f"evidence clip {item_id}"]
    assert views and all(v.operator == "sup-main" and v.incident_id == incident_id for v in views)
    assert not [e for e in entries if e.kind == AuditEntry.KIND_VIEW and e.operator in ("op-east", "audit-1")]
    holds = [(e.kind, e.operator, e.incident_id) for e in entries
             if e.kind in (AuditEntry.KIND_HOLD, AuditEntry.KIND_HOLD_RELEASED, AuditEntry.KIND_TRANSMISSION)]
    assert sorted(holds) == sorted([(AuditEntry.KIND_HOLD, "sup-main", incident_id),
                                    (AuditEntry.KIND_HOLD_RELEASED, "sup-main", incident_id),
                                    (AuditEntry.KIND_TRANSMISSION, "sup-main", "")]), holds


def test_a_supervisor_draws_the_requester_and_downloads_the_access_export(broker, tmp_path: Path) -> None:
    """Right of access in the console: the supervisor draws the requester's box on the incident's snapshot and
    downloads the export (MP4 and manifest: the range asked, the requester's box as drawn, in frame pixels);
    it is recorded in the register; an operator is refused."""
    import time

    import simplejpeg

    from tests.station_console import read_topic
    from tests.station_support import publish
    from vigie.contracts.v1 import Frame
    from vigie.core.authorisations import authorise_cameras
    from vigie.core.kafka import make_producer

    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    db = f"sqlite:///{tmp_path}/accounts.db"
    add_user(db, "sup-main", "supervisor", "main")
    add_user(db, "op-main", "operator", "main")
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: cam-1\n    source: synthetic://scene\n"))
    start = time.time_ns() - 12 * 10**9

    def picture(n: int) -> bytes:
        image = np.full((240, 320, 3), 90, np.uint8)
        image[100:180, 40 + 4 * n:70 + 4 * n] = (200, 60, 60)  # someone walking right
        return simplejpeg.encode_jpeg(image, 90, colorspace="RGB")

    async def prepare() -> tuple[str, str]:
        producer = make_producer(kafka)
        await producer.start()
        for n in range(50):
            at = start + n * 200_000_000
            frame = Frame(camera_id="cam-1", seq=n, capture_ns=at, pts=n / 5, width=320, height=240,
                          encoding=Frame.ENCODING_JPEG, data=picture(n), fps=5)
            await producer.send_and_wait(topics.frames.name, topics.frames.encode(frame), key=b"cam-1",
                                         timestamp_ms=at // 10**6)
        await producer.stop()
        item = incident(11, cameras=10)  # camera cam-1
        await publish(kafka, topics.alerts("main"), [item])
        engine = make_engine(DatabaseSettings(url=db))
        try:
            catalogue = Catalogue(engine, FolderStore(tmp_path / "evidence"))
            data, at = picture(25), start + 25 * 200_000_000
            digest = catalogue.store.put("cam-1/snap.jpg", data)
            await catalogue.record([NewItem(item.id, "cam-1", "snapshot", "cam-1/snap.jpg", digest, len(data), 1,
                                            at, at, at + DAY_NS, "drill")], at)
        finally:
            await engine.dispose()
        return item.id, iso_of(start)

    from vigie.register.query import iso_of

    incident_id, _ = asyncio.run(prepare())
    with service(kafka, "station", "--database", db, "--evidence-store", str(tmp_path / "evidence"),
                 "--cameras", str(cameras), log_dir=tmp_path) as (_, port):
        base = f"http://127.0.0.1:{port}"
        with chromium_page() as page:
            browser_login(page, base, "sup-main")
            page.locator(f"#rows tr[data-incident-id='{incident_id}']").click(timeout=15000)
            card = page.locator(f"#detail[data-incident-id='{incident_id}']")
            card.locator("button.access-button").click(timeout=10000)
            img = card.locator(".access-frame img")
            page.wait_for_function("i => i.complete && i.naturalWidth === 320", arg=img.element_handle(), timeout=10000)
            shown = img.bounding_box()
            scale = shown["width"] / 320
            x0, y0 = shown["x"] + (40 + 100) * scale, shown["y"] + 100 * scale  # the walker on frame 25
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + 30 * scale, y0 + 80 * scale, steps=5)
            page.mouse.up()
            form = card.locator(".access-form")
            form.locator("input[name=from]").fill(iso_of(start + 2 * 10**9))
            form.locator("input[name=to]").fill(iso_of(start + 8 * 10**9))
            with page.expect_download(timeout=120000) as download:
                form.locator("button[type=submit]").click()
            bundle = zipfile.ZipFile(download.value.path())
        names = bundle.namelist()
        manifest = json.loads(bundle.read(next(n for n in names if n.endswith(".json"))))
        video = bundle.read(next(n for n in names if n.endswith(".mp4")))
        assert manifest["camera"] == "cam-1" and manifest["by"] == "sup-main" and manifest["frames"] >= 25
        x, y, w, h = manifest["requester"]["box"]
        assert abs(x - 140) <= 3 and abs(y - 100) <= 3 and abs(w - 30) <= 3 and abs(h - 80) <= 3, manifest
        with av.open(io.BytesIO(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == manifest["frames"]
        cookie = login_cookie(port, "op-main")
        status, _ = get_json(port, f"/api/incidents/{incident_id}/evidence", cookie)
        assert status == 200  # an operator sees the evidence...
    entries = asyncio.run(read_topic(kafka, topics.audit))
    exports = [e for e in entries if e.kind == AuditEntry.KIND_EXPORT]
    assert len(exports) == 1 and exports[0].operator == "sup-main" and exports[0].camera_id == "cam-1"
    assert json.loads(exports[0].detail)["sha256"] == manifest["sha256"]
