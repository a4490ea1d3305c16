"""End to end on real footage and the real broker: grabber → detector → correlator → station → browser.

ABODA video 4 is played as fast as possible through the four services, each a real
process. The module runs the pipeline once; the tests then read what reached the
station's alert topic, look at the console in headless Chromium and acknowledge.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.browser import chromium_page
from tests.clips import data_path
from tests.stack import consume, health, service
from tests.station_support import browser_login, logged_in_station
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import AuditEntry, OperatorAction
from vigie.core.kafka import apply_topics, fetch_record
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.data]

#: The bag once set down, in ABODA's 720x480 pixels (SOURCE.md), and when its owner walks away (s).
BAG = (452, 385, 50, 50)
OWNER_WALKS_AWAY_S = 19.0


def _overlaps(region, bag, scale: float) -> bool:
    bx, by, bw, bh = (v * scale for v in bag)
    ix = min(region.x + region.w, bx + bw) - max(region.x, bx)
    iy = min(region.y + region.h, by + bh) - max(region.y, by)
    return ix > 0 and iy > 0


@pytest.fixture(scope="module")
def pipeline(broker, tmp_path_factory):
    """Runs the whole stack on ABODA video 4, the register and the evidence service included; yields (kafka
    settings, alert incidents, station port, the grabber's camera health, the test folder)."""
    clip = data_path("aboda_video4", "video4.avi")
    tmp = tmp_path_factory.mktemp("e2e")
    kafka = KafkaSettings(bootstrap=broker, namespace=f"e2e{uuid.uuid4().hex[:8]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    cameras = tmp / "cameras.yaml"
    cameras.write_text(authorise_cameras(
        "cameras:\n"
        f"  - id: aboda-4\n    source: {clip}\n    fps: 5\n"
        "    privacy_masks:\n      - name: window\n        polygon: [[0, 0], [100, 0], [100, 50], [0, 50]]\n"
    ))
    with ExitStack() as stack:
        station = stack.enter_context(logged_in_station(kafka, "--evidence-store", str(tmp / "evidence"),
                                                        log_dir=tmp, user="agent-e2e"))
        database = f"sqlite:///{tmp}/accounts.db"
        stack.enter_context(service(kafka, "register", "--database", database, log_dir=tmp))
        stack.enter_context(service(kafka, "evidence", "serve", "--cameras", str(cameras), "--database", database,
                                    "--store", str(tmp / "evidence"), log_dir=tmp))
        stack.enter_context(service(kafka, "correlator", log_dir=tmp))
        _, detector_port = stack.enter_context(service(kafka, "detector", "--cameras", str(cameras), log_dir=tmp))
        _, grabber_port = stack.enter_context(
            service(kafka, "grabber", "--cameras", str(cameras), "--as-fast-as-possible", log_dir=tmp))
        deadline = time.monotonic() + 240
        while health(grabber_port)["cameras"]["aboda-4"]["state"] not in ("ended", "failed"):
            assert time.monotonic() < deadline, "the grabber did not finish the clip in time"
            time.sleep(1)
        grabbed = health(grabber_port)["cameras"]["aboda-4"]
        assert grabbed["state"] == "ended", grabbed
        while health(detector_port)["frames"] < grabbed["published"]:
            assert time.monotonic() < deadline, "the detector did not process every frame in time"
            time.sleep(1)
        time.sleep(5)  # let the correlator publish what the last anomalies caused
        records = consume(kafka, topics.alerts("main").name, lambda rs: False, timeout_s=3)
        incidents = [topics.alerts("main").decode(r.value) for r in records]
        yield kafka, incidents, station[1], grabbed, tmp


def test_one_abandoned_object_incident_on_the_bag_after_the_owner_left(pipeline) -> None:
    kafka, incidents, _, grabbed, _ = pipeline
    assert 190 <= grabbed["published"] <= 200, "39 s sampled at 5 fps"
    abandoned = {i.id: i for i in incidents if i.kind == "abandoned_object"}
    assert len(abandoned) == 1, f"expected exactly one abandoned-object incident, got {list(abandoned)}"
    incident = next(iter(abandoned.values()))
    assert incident.frame_width == 640 and incident.frame_height == 427
    scale = 640 / 720
    assert any(_overlaps(r, BAG, scale) for r in incident.regions), f"region not on the bag: {incident.regions}"
    record = asyncio.run(fetch_record(kafka, incident.snapshot))
    assert record is not None, "the snapshot reference points to no frame"
    frame = Topics(kafka.namespace).frames.decode(record.value)
    assert frame.pts >= OWNER_WALKS_AWAY_S, f"raised at {frame.pts:.1f} s, before the owner walked away"
    assert frame.pts <= 35.0, f"raised too late: {frame.pts:.1f} s"
    assert list(frame.privacy_masks) == ["window"]


def test_kcat_and_protoc_read_the_alert_topic(pipeline) -> None:
    """A control-room client needs nothing of Vigie's code: kcat and the .proto files suffice."""
    kafka, _, _, _, _ = pipeline
    if not (shutil.which("kcat") and shutil.which("protoc")):
        pytest.skip("kcat or protoc missing (make system-deps-test installs them)")
    root = Path(__file__).resolve().parents[1]
    raw = subprocess.run(
        ["kcat", "-b", kafka.bootstrap, "-C", "-t", Topics(kafka.namespace).alerts("main").name, "-c", "1", "-e",
         "-o", "beginning", "-f", "%s"],
        capture_output=True, check=True, timeout=30,
    ).stdout
    text = subprocess.run(
        ["protoc", "-I", str(root / "proto"), "--decode", "vigie.v1.Incident", "vigie/contracts/v1/incident.proto"],
        input=raw, capture_output=True, check=True,
    ).stdout.decode()
    assert 'kind: "abandoned_object"' in text and 'camera_id: "aboda-4"' in text


def test_console_shows_the_incident_and_acknowledge_publishes_the_action(pipeline) -> None:
    kafka, incidents, station_port, _, _ = pipeline
    topics = Topics(kafka.namespace)
    incident = next(i for i in incidents if i.kind == "abandoned_object")
    with chromium_page() as page:
        browser_login(page, f"http://127.0.0.1:{station_port}", "agent-e2e")
        page.uncheck("#fold")  # its own row, even among other incidents of its camera, kind and zone
        row = page.locator(f"#rows tr[data-incident-id='{incident.id}']")
        row.wait_for(timeout=15000)
        assert row.locator("td.c-kind").inner_text() == "Abandoned object"
        assert row.locator("td.c-camera").inner_text() == "aboda-4"
        row.click()
        card = page.locator(f"#detail[data-incident-id='{incident.id}']")
        card.wait_for()
        assert "static" in card.locator("dl.facts").inner_text()  # the latest anomaly's facts
        assert "unattended" in card.locator("dl.facts").inner_text()
        page.wait_for_function(
            "() => { const i = document.querySelector('#detail img');"
            " return i && i.complete && i.naturalWidth === 640; }", timeout=15000)
        assert card.locator("svg rect.region").count() == len(incident.regions) >= 1
        card.locator("button.ack").click()
        page.wait_for_function(
            "id => document.querySelector(`#detail[data-incident-id='${id}']`).dataset.state === 'acknowledged'",
            arg=incident.id, timeout=20000)
        assert row.locator("td.c-owner").inner_text() in ("agent-e2e", "—")  # owner: once the correlator sets it
        assert "agent-e2e" in card.locator("dl.facts").inner_text()  # the last operator
    actions = consume(kafka, topics.actions.name, lambda rs: len(rs) >= 1, timeout_s=10)
    action = topics.actions.decode(actions[0].value)
    assert action.kind == OperatorAction.KIND_ACKNOWLEDGE and action.incident_id == incident.id
    assert action.operator == "agent-e2e" and action.station == "main"
    def views(records: list) -> list[AuditEntry]:
        return [e for e in (topics.audit.decode(r.value) for r in records) if e.kind == AuditEntry.KIND_VIEW]

    entry = views(consume(kafka, topics.audit.name, lambda rs: bool(views(rs)), timeout_s=10))[0]
    assert entry.incident_id == incident.id and entry.operator == "agent-e2e"  # the logged-in user


def test_the_incident_gets_an_evidence_clip_masked_and_in_the_register(pipeline) -> None:
    """The abandoned-object incident's clip: H.264 MP4 that decodes, every frame of the camera captured in
    [t - 10 s, t + 20 s] around the snapshot, the privacy mask black in each, its SHA-256 in the register."""
    import hashlib
    import io
    import json

    import av

    from vigie.core.db import DatabaseSettings, make_engine
    from vigie.evidence.catalogue import Catalogue
    from vigie.evidence.store import FolderStore
    from vigie.register.query import list_entries, verify_chain

    kafka, incidents, _, _, tmp = pipeline
    incident = next(i for i in incidents if i.kind == "abandoned_object")
    url = f"sqlite:///{tmp}/accounts.db"

    async def evidence() -> tuple[list, list, bool]:
        engine = make_engine(DatabaseSettings(url=url))
        try:
            catalogue = Catalogue(engine, FolderStore(tmp / "evidence"))
            deadline = time.monotonic() + 90  # the clip is cut 25 s (after_s and grace_s) after the snapshot
            while True:
                items = await catalogue.items(incident_id=incident.id)
                recorded = [e for e in await list_entries(engine, kind="recording", limit=1000)
                            if e["incident_id"] == incident.id]
                if len(items) == 2 and len(recorded) == 2:
                    return items, recorded, (await verify_chain(engine)).ok
                assert time.monotonic() < deadline, f"no evidence for {incident.id}: {items} {recorded}"
                await asyncio.sleep(1)
        finally:
            await engine.dispose()

    items, recorded, chain_ok = asyncio.run(evidence())
    assert chain_ok
    clip = next(i for i in items if i.kind == "clip")
    data = (tmp / "evidence" / clip.key).read_bytes()
    assert hashlib.sha256(data).hexdigest() == clip.sha256
    assert {json.loads(e["detail"])["sha256"] for e in recorded} == {i.sha256 for i in items}
    at = incident.snapshot_capture_ns
    frames = [Topics(kafka.namespace).frames.decode(r.value)
              for r in consume(kafka, Topics(kafka.namespace).frames.name, lambda rs: False, timeout_s=3)]
    wanted = [f for f in frames if f.camera_id == "aboda-4" and at - 10 * 10**9 <= f.capture_ns <= at + 20 * 10**9]
    assert clip.frames == len(wanted) and clip.start_ns == wanted[0].capture_ns and clip.end_ns == wanted[-1].capture_ns
    with av.open(io.BytesIO(data)) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(pictures) == len(wanted) and pictures[0].shape[1] == 640
    # The window (100x50 of 720x480) is 89x45 of the published 640x427 frames: black in every frame of the clip.
    assert all(p[:42, :86].max() <= 24 for p in pictures)
    assert _mean_below_the_mask(pictures) > 30


def _mean_below_the_mask(pictures: list) -> float:
    """Mean brightness of the clip below the mask (the scene is there, not a black video)."""
    return float(sum(p[100:, 100:].mean() for p in pictures) / len(pictures))
