"""The evidence catalogue: items listed with their register entries, destroyed on the day their retention
ends unless a legal hold covers them, holds placed and lifted by supervisors only, a full disk leaving
nothing listed. Against a real SQLite file, a real folder, the real broker and the register service."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from vigie.accounts.models import OutboxEntry
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import kind_name
from vigie.core.authorisations import DAY_NS
from vigie.core.db import DatabaseSettings, make_engine, migrate
from vigie.core.kafka import apply_topics
from vigie.core.topics import Topics
from vigie.evidence.catalogue import Catalogue, EvidenceError, NewItem
from vigie.evidence.store import FolderStore, StoreError
from vigie.register.query import list_entries, verify_chain

from tests.test_register_service import service as register_service, wait_for
from tests.filesystems import small_tmpfs
from tests.station_support import add_user_async

T0 = 1_780_000_000 * 10**9  # 2026-05-28T20:26:40Z


async def _catalogue(tmp_path: Path) -> tuple[Catalogue, object, str]:
    url = f"sqlite:///{tmp_path / 'vigie.db'}"
    settings = DatabaseSettings(url=url)
    engine = make_engine(settings)
    await migrate(engine, settings)
    return Catalogue(engine, FolderStore(tmp_path / "evidence")), engine, url


def _item(catalogue: Catalogue, incident: str, camera: str = "cam-1", at_ns: int = T0, days: int = 7) -> NewItem:
    key = f"{camera}/{incident}.mp4"
    data = f"clip of {incident}".encode()
    digest = catalogue.store.put(key, data)
    return NewItem(incident, camera, "clip", key, digest, len(data), 150, at_ns - 10 * 10**9, at_ns + 20 * 10**9,
                   at_ns + days * DAY_NS, "centre")


async def _outbox(engine) -> list[AuditEntry]:  # noqa: ANN001
    from sqlalchemy.ext.asyncio import async_sessionmaker

    async with async_sessionmaker(engine)() as session:
        return [AuditEntry.FromString(p) for p in (await session.scalars(
            select(OutboxEntry.payload).order_by(OutboxEntry.id))).all()]


def test_items_are_destroyed_the_day_their_retention_ends_unless_held(tmp_path: Path) -> None:
    async def scenario() -> None:
        catalogue, engine, _ = await _catalogue(tmp_path)
        try:
            await catalogue.record([_item(catalogue, "inc-1"), _item(catalogue, "inc-2"),
                                    _item(catalogue, "inc-3", camera="cam-2", days=2)], T0)
            hold = await catalogue.place_hold("PV 2026/118 parquet de Lyon", "sup", T0, incident_id="inc-1")
            ranged = await catalogue.place_hold("RQ-7", "sup", T0, camera_id="cam-2", start_ns=T0, end_ns=T0 + 1)
            assert await catalogue.purge(T0 + 2 * DAY_NS - 1) == []  # one ns before the shortest retention ends
            assert await catalogue.purge(T0 + 7 * DAY_NS - 1) == []  # cam-2's item is held by range
            gone = await catalogue.purge(T0 + 7 * DAY_NS)
            assert [i.incident_id for i in gone] == ["inc-2"]
            assert not (catalogue.store.root / "cam-1/inc-2.mp4").exists()
            assert (catalogue.store.root / "cam-1/inc-1.mp4").exists()
            kept = {i.incident_id for i in await catalogue.items()}
            assert kept == {"inc-1", "inc-3"}
            assert [i.incident_id for i in await catalogue.items(destroyed=True) if i.destroyed_ns] == ["inc-2"]
            await catalogue.release_hold(hold.id, "sup", T0 + 8 * DAY_NS)
            with pytest.raises(EvidenceError, match="no active legal hold"):
                await catalogue.release_hold(hold.id, "sup", T0 + 8 * DAY_NS)
            gone = await catalogue.purge(T0 + 8 * DAY_NS)
            assert [i.incident_id for i in gone] == ["inc-1"]
            assert [h.id for h in await catalogue.active_holds()] == [ranged.id]
            assert await catalogue.purge(T0 + 9 * DAY_NS) == []  # nothing twice
            entries = await _outbox(engine)
        finally:
            await engine.dispose()
        kinds = [kind_name(e.kind) for e in entries]
        assert kinds == ["recording"] * 3 + ["hold", "hold", "purge", "hold_released", "purge"]
        purge = json.loads(entries[5].detail)
        assert purge["due"] == "2026-06-04T20:26:40Z" and purge["destroyed"] == "2026-06-04T20:26:40Z"
        assert entries[5].incident_id == "inc-2" and entries[5].camera_id == "cam-1"
        recording = json.loads(entries[0].detail)
        assert recording["sha256"] and recording["start"] == "2026-05-28T20:26:30Z" and recording["bytes"] == len(b"clip of inc-1")
        held = json.loads(entries[3].detail)
        assert held["requisition"] == "PV 2026/118 parquet de Lyon" and held["incident"] == "inc-1"
        assert entries[3].operator == "sup" and json.loads(entries[4].detail)["camera"] == "cam-2"

    asyncio.run(scenario())


def test_a_hold_needs_a_requisition_and_existing_evidence(tmp_path: Path) -> None:
    async def scenario() -> None:
        catalogue, engine, _ = await _catalogue(tmp_path)
        try:
            await catalogue.record([_item(catalogue, "inc-1")], T0)
            for kwargs, words in (({"requisition": "  ", "incident_id": "inc-1"}, "requisition's reference"),
                                  ({"requisition": "R", "incident_id": "inc-404"}, "inc-404 has no evidence"),
                                  ({"requisition": "R"}, "either one incident"),
                                  ({"requisition": "R", "incident_id": "inc-1", "camera_id": "c"}, "either one"),
                                  ({"requisition": "R", "camera_id": "c", "start_ns": T0, "end_ns": T0 - 1},
                                   "end is not before")):
                requisition = kwargs.pop("requisition")
                with pytest.raises(EvidenceError, match=words):
                    await catalogue.place_hold(requisition, "sup", T0, **kwargs)
            assert await catalogue.active_holds() == []
            assert [kind_name(e.kind) for e in await _outbox(engine)] == ["recording"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_full_disk_leaves_no_partial_item(tmp_path: Path) -> None:
    """The store on a 64 KiB filesystem: a 200 KiB clip is refused whole (StoreError naming it), no file or
    temporary file is left, and a small one still fits."""
    with small_tmpfs(tmp_path / "small", "64k") as mount:
        store = FolderStore(mount / "evidence")
        with pytest.raises(StoreError, match=r"cam-1/inc-1.mp4: not written to folder .*No space left"):
            store.put("cam-1/inc-1.mp4", os.urandom(200 * 1024))
        assert [p.name for p in (mount / "evidence" / "cam-1").iterdir()] == []
        assert store.put("cam-1/inc-2.jpg", b"\xff\xd8small\xff\xd9")
        with pytest.raises(StoreError, match="outside the store"):
            store.put("../escape.mp4", b"x")


@pytest.mark.broker
def test_holds_from_the_command_line_need_a_supervisor_and_reach_the_register(kafka, tmp_path: Path) -> None:
    """`vigie evidence hold` checks the supervisor's password and role; the hold, the recording and the
    destructions reach the register once each, and `vigie register verify` passes."""
    asyncio.run(apply_topics(kafka, Topics(kafka.namespace).all([])))

    async def prepare() -> str:
        catalogue, engine, url = await _catalogue(tmp_path)
        try:
            await catalogue.record([_item(catalogue, "inc-1"), _item(catalogue, "inc-2")], T0)
        finally:
            await engine.dispose()
        await add_user_async(url, "sup-1", "supervisor", "main")
        await add_user_async(url, "op-1", "operator", "main")
        return url

    url = asyncio.run(prepare())
    base = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "evidence"]
    where = ["--database", url, "--store", str(tmp_path / "evidence")]
    from tests.station_support import PASSWORD

    def hold(user: str, password: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, "hold", *where, "--supervisor", user, "--password-stdin", *extra],
                              input=password + "\n", capture_output=True, text=True, timeout=60)

    refused = hold("op-1", PASSWORD, "--requisition", "RQ-1", "--incident", "inc-1")
    assert refused.returncode == 1 and "op-1 is not a supervisor" in refused.stderr
    refused = hold("sup-1", "wrong-password-1", "--requisition", "RQ-1", "--incident", "inc-1")
    assert refused.returncode == 1 and "login refused" in refused.stderr
    refused = hold("sup-1", PASSWORD, "--requisition", "RQ-1", "--camera", "cam-1")
    assert refused.returncode == 2 and "--from and --to" in refused.stderr
    placed = hold("sup-1", PASSWORD, "--requisition", "RQ-1", "--incident", "inc-1")
    assert placed.returncode == 0, placed.stderr
    holds = subprocess.run([*base, "holds", *where], capture_output=True, text=True, timeout=60)
    assert "RQ-1" in holds.stdout and "incident inc-1" in holds.stdout and "sup-1" in holds.stdout
    shown = subprocess.run([sys.executable, "-m", "vigie", "register", "show", "--holds", "--database", url],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "RQ-1" in shown.stdout and "1 active legal hold(s)" in shown.stdout
    listed = subprocess.run([*base, "list", *where], capture_output=True, text=True, timeout=60)
    assert listed.stdout.count("held ") == 1 and listed.stdout.count(" kept ") == 1, listed.stdout

    async def purge_and_register() -> list:
        catalogue, engine, _ = await _catalogue(tmp_path)
        try:
            gone = await catalogue.purge(T0 + 30 * DAY_NS)
        finally:
            await engine.dispose()
        assert [i.incident_id for i in gone] == ["inc-2"]
        async with register_service(kafka, url):
            await wait_for(lambda: _kinds(url), timeout_s=30)
        settings = DatabaseSettings(url=url)
        engine = make_engine(settings)
        try:
            assert (await verify_chain(engine)).ok
            return [(e["kind"], e["incident_id"], e["user"]) for e in await list_entries(engine)]
        finally:
            await engine.dispose()

    async def _kinds(url: str) -> bool:
        engine = make_engine(DatabaseSettings(url=url))
        try:
            kinds = [e["kind"] for e in await list_entries(engine)]
        finally:
            await engine.dispose()
        return kinds.count("recording") == 2 and "hold" in kinds and "purge" in kinds

    entries = asyncio.run(purge_and_register())
    ours = [e for e in entries if e[0] in ("recording", "hold", "purge", "hold_released")]
    assert sorted(ours) == sorted([("recording", "inc-1", ""), ("recording", "inc-2", ""), ("hold", "inc-1", "sup-1"),
                                   ("purge", "inc-2", "")]), ours
    verify = subprocess.run([sys.executable, "-m", "vigie", "register", "verify", "--database", url],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "chain intact" in verify.stdout


@pytest.mark.broker
def test_a_transmission_bundle_proves_its_items_and_is_recorded(kafka, tmp_path: Path) -> None:
    """`vigie evidence transmit`: the held items, a manifest with their SHA-256, the register's entries about
    them and SHA256SUMS (checked by sha256sum); the transmission reaches the register. A file changed in the
    store stops a transmission, naming it; so do a missing authority and an unknown hold."""
    asyncio.run(apply_topics(kafka, Topics(kafka.namespace).all([])))
    from tests.station_support import PASSWORD

    async def prepare() -> tuple[str, str]:
        catalogue, engine, url = await _catalogue(tmp_path)
        try:
            await catalogue.record([_item(catalogue, "inc-1"), _item(catalogue, "inc-2")], T0)
            hold = await catalogue.place_hold("RQ-9", "sup-1", T0, camera_id="cam-1", start_ns=T0 - 1, end_ns=T0)
        finally:
            await engine.dispose()
        await add_user_async(url, "sup-1", "supervisor", "main")
        async with register_service(kafka, url):  # the register holds the recordings and the hold
            await wait_for(lambda: _count(url, 3), timeout_s=30)
        return url, hold.id

    url, hold_id = asyncio.run(prepare())
    base = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "evidence",
            "transmit", "--database", url, "--store", str(tmp_path / "evidence"), "--supervisor", "sup-1",
            "--password-stdin", "--requisition", "RQ-9"]

    def transmit(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *extra], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)

    bundle = tmp_path / "bundle"
    done = transmit("--authority", "Parquet de Lyon", "--hold", hold_id, "--output", str(bundle))
    assert done.returncode == 0, done.stderr
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=bundle, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 4, checked.stdout  # 2 items, 2 JSON files
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["authority"] == "Parquet de Lyon" and manifest["made_by"] == "sup-1"
    assert sorted(i["incident"] for i in manifest["items"]) == ["inc-1", "inc-2"]
    register = json.loads((bundle / "register.json").read_text())
    assert sorted(e["incident_id"] for e in register if e["kind"] == "recording") == ["inc-1", "inc-2"]
    assert all(len(e["chain_hash"]) == 64 for e in register)
    for extra, words in ((("--authority", " ", "--hold", hold_id), "authority it goes to"),
                         (("--authority", "P", "--hold", "nope"), "no active legal hold 'nope'"),
                         (("--authority", "P", "--hold", hold_id, "--output", str(bundle)), "is not empty")):
        refused = transmit("--output", str(tmp_path / "refused"), *extra)
        assert refused.returncode == 1 and words in refused.stderr, refused.stderr
        assert not (tmp_path / "refused").exists()
    (tmp_path / "evidence" / "cam-1" / "inc-2.mp4").write_bytes(b"edited")
    refused = transmit("--authority", "P", "--incident", "inc-2", "--output", str(tmp_path / "other"))
    assert refused.returncode == 1 and "no longer matches the SHA-256" in refused.stderr

    async def recorded() -> list:
        async with register_service(kafka, url):
            await wait_for(lambda: _count(url, 4), timeout_s=30)
        engine = make_engine(DatabaseSettings(url=url))
        try:
            return await list_entries(engine, kind="transmission")
        finally:
            await engine.dispose()

    (entry,) = asyncio.run(recorded())
    detail = json.loads(entry["detail"])
    assert entry["user"] == "sup-1" and detail["authority"] == "Parquet de Lyon" and len(detail["items"]) == 2


async def _count(url: str, n: int) -> bool:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        kinds = [e["kind"] for e in await list_entries(engine, limit=1000)]
    finally:
        await engine.dispose()
    return sum(k in ("recording", "hold", "transmission") for k in kinds) >= n


def test_the_purge_bench_destroys_every_item_it_lists(tmp_path: Path) -> None:
    """`vigie bench`'s purge figure is measured on a purge that really destroyed every item (files and rows)."""
    from vigie.evidence.bench import bench_purge, rows

    figures = asyncio.run(bench_purge(tmp_path, 300))
    assert figures["items"] == 300 and figures["purge_s"] > 0 and figures["unlink_s"] > 0
    assert not [p for p in (tmp_path / "purge").rglob("*.jpg")]
    clip = {"total_ms": 1.0, "cut_ms": 0.2, "encode_ms": 0.7, "store_ms": 0.1, "bytes": 2048, "real_time_ratio": 30,
            "access_s": 2.0, "access_ratio": 3.0, "access_boxes": 12}
    assert "300 items" in rows({"clip": clip, "purge": figures})[-1][0]


def test_a_store_location_is_a_folder_or_an_s3_url() -> None:
    """`s3://BUCKET[/PREFIX][?endpoint=&region=]` opens object storage; a location without a bucket or with an
    unknown parameter is refused naming what is expected (never echoing a query that could hold a secret)."""
    from vigie.evidence.s3 import S3Store
    from vigie.evidence.store import open_store

    store = open_store("s3://vigie-evidence/lyon/north?endpoint=http://127.0.0.1:9&region=eu-west-3")
    assert isinstance(store, S3Store) and store.describe() == "s3://vigie-evidence/lyon/north at http://127.0.0.1:9"
    assert store.client.meta.region_name == "eu-west-3"
    for bad in ("s3:///lyon", "s3://bucket?secret_key=hunter2"):
        with pytest.raises(StoreError, match="expected s3://BUCKET") as refused:
            open_store(bad)
        assert "hunter2" not in str(refused.value)
    with pytest.raises(StoreError, match="outside the store"):
        store.put("../escape.mp4", b"x")
