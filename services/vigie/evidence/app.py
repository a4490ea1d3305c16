"""The evidence service: each incident's clip and snapshot kept in the evidence store, destroyed on time.

Stages, in order:

1. :meth:`EvidenceService.prepare`: read the cameras file (the authorisations give each camera's
   retention), refuse a store policy keeping evidence longer than an authorisation allows (naming
   the store), reach the database and migrate it, open the store;
2. :meth:`EvidenceService.start`: check the ``frames`` topic keeps images no longer than the shortest
   authorisation (naming the topic), join consumer group ``evidence`` on ``incidents``;
3. :meth:`EvidenceService.run`: for each incident seen for the first time, wait until ``after_s``
   of stream after its triggering frame (plus ``grace_s``) have been captured, then cut the clip
   ``[t - before_s, t + after_s]`` from ``frames`` (:mod:`vigie.evidence.clip`: H.264 MP4, privacy
   masks already applied by the grabber), read its snapshot, write both whole to the store and list
   them with their ``recording`` entries (:class:`~vigie.evidence.catalogue.Catalogue`); the
   offset of an incident is committed only once its evidence is listed, so a crash or a restart
   redoes it (an incident already listed is skipped: nothing twice). Every ``purge_interval_s``:
   destroy the items past their retention that no legal hold covers.

A store that refuses a write (disk full) leaves nothing listed; the incident is retried every
``retry_s`` while its frames are in the topic, and the service reports ``degraded`` meanwhile. The
alert itself never waits for evidence: incidents reach the stations whatever happens here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import re
import shutil
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from vigie.accounts.outbox import flush_outbox
from vigie.contracts.v1 import Incident
from vigie.core.audit import AuditLog
from vigie.core.authorisations import DAY_NS, Clock, utc_now
from vigie.core.cameras import CamerasFile, load_cameras
from vigie.core.db import DatabaseSettings, check_reachable, describe_db_error, make_engine, migrate
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.kafka import check_image_retention, fetch_record, make_consumer, make_producer, require_topics
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.evidence.catalogue import Catalogue, NewItem
from vigie.evidence.clip import encode_clip, frames_between
from vigie.evidence.models import CLIP, SNAPSHOT
from vigie.evidence.store import FolderStore, StoreError, StoreSettings, open_store

log = logging.getLogger(__name__)
GROUP = "evidence"


class EvidenceSettings(StrictModel):
    """Settings of ``vigie evidence serve``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cameras_file: str = Field(description="Cameras YAML: the authorisations give each camera's retention.")
    before_s: float = Field(10.0, ge=0, le=300, description="Seconds of stream kept before the triggering frame.")
    after_s: float = Field(20.0, ge=0, le=300, description="Seconds of stream kept after the triggering frame.")
    grace_s: float = Field(5.0, ge=0, le=300, description="Seconds waited after the clip's end for late frames.")
    retry_s: float = Field(30.0, gt=0, le=3600, description="Seconds between two tries of evidence not stored.")
    purge_interval_s: float = Field(600.0, gt=0, le=86400, description="Seconds between two purges.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8095, ge=0, le=65535)


@dataclass(slots=True)
class Job:
    """Evidence to cut for one incident: ``at_ns`` its triggering frame's capture time, ``ready_ns`` when its
    clip's last frame should be in the topic, ``tp``/``offset`` the incident record (committed once done)."""

    incident: Incident
    at_ns: int
    ready_ns: int
    tp: TopicPartition
    offset: int
    tries: int = 0


def _safe(text: str) -> str:
    """A name usable in a store key: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120] or "_"


class EvidenceService(Service):
    """Keeps each incident's evidence and destroys it when its retention ends (see the module's stages)."""

    name = "evidence"

    def __init__(self, settings: EvidenceSettings, registry=None, clock: Clock = utc_now) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.clock = clock
        self.cameras: CamerasFile | None = None
        self.engine = None
        self.catalogue: Catalogue | None = None
        self._consumer = None
        self._producer = None
        self.jobs: dict[str, Job] = {}
        self.store_error = ""
        self.db_error = ""
        self._last_purge = 0.0
        self.stored = Counter("vigie_evidence_items", "Evidence items stored, by kind", ["kind"], registry=self.registry)
        self.stored_bytes = Counter("vigie_evidence_bytes", "Bytes of evidence stored", registry=self.registry)
        self.destroyed = Counter("vigie_evidence_destroyed", "Evidence items destroyed at the end of their retention",
                                 registry=self.registry)
        self.pending = Gauge("vigie_evidence_pending", "Incidents whose evidence is not stored yet",
                             registry=self.registry)
        #: The folder store's file system, bytes free to Vigie and in all (NaN before prepare, for S3 or when
        #: the folder cannot be read: an alert on their ratio stays silent then).
        self.store_free = Gauge("vigie_evidence_store_free_bytes", "Bytes free on the folder store's file system",
                                registry=self.registry)
        self.store_size = Gauge("vigie_evidence_store_size_bytes", "Bytes in all of the folder store's file system",
                                registry=self.registry)
        self.store_free.set(math.nan)
        self.store_size.set(math.nan)

    def now_ns(self) -> int:
        """The clock's time, ns since the epoch."""
        return int(self.clock().timestamp() * 1e9)

    def retention_days(self, camera_id: str) -> int:
        """Days evidence of ``camera_id`` is kept: its authorisation's retention (the shortest of the file's for
        a camera naming none), lowered to the store's ``retention_days`` when set."""
        authorisation = self.cameras.authorisation_of(camera_id)
        days = (authorisation.max_retention_days if authorisation is not None
                else min(a.max_retention_days for a in self.cameras.authorisations))
        return min(days, self.settings.store.retention_days or days)

    async def prepare(self) -> None:
        """Stage 1. Raises ConfigError (cameras file, store policy) or DatabaseUnavailable."""
        if self.catalogue is not None:
            return
        self.cameras = await asyncio.to_thread(load_cameras, self.settings.cameras_file)
        if not self.cameras.authorisations:
            raise ConfigError(f"{self.settings.cameras_file}: no authorisations: evidence has no retention to follow")
        store = self.settings.store
        shortest = min(self.cameras.authorisations, key=lambda a: a.max_retention_days)
        if store.retention_days is not None and store.retention_days > shortest.max_retention_days:
            raise ConfigError(f"evidence store {store.location.split('?')[0]} keeps evidence {store.retention_days} days, beyond the "
                              f"{shortest.max_retention_days} day(s) authorised by {shortest.id} ({shortest.reference})")
        try:
            folder = open_store(store.location)
        except StoreError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(folder, FolderStore):
            root = folder.root
            self.store_free.set_function(lambda: _disk_usage(root, "free"))
            self.store_size.set_function(lambda: _disk_usage(root, "total"))
        database = self.settings.database
        engine = make_engine(database)
        try:
            await check_reachable(engine, database)
            await migrate(engine, database)
        except BaseException:
            await engine.dispose()
            raise
        self.engine = engine
        self.catalogue = Catalogue(engine, folder)

    async def start(self) -> None:
        """Stage 2."""
        await self.prepare()
        topics = self.topics
        await require_topics(self.kafka, [topics.incidents, topics.frames, topics.audit])
        await check_image_retention(self.kafka, topics.frames, self.cameras.authorisations)
        self._producer = make_producer(self.kafka)
        await self._producer.start()
        self._consumer = make_consumer(self.kafka, topics.incidents, group=GROUP)
        await self._consumer.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Stage 3, until ``stop``; unfinished incidents stay uncommitted and are redone after a restart."""
        while not stop.is_set():
            polled = await self._consumer.getmany(timeout_ms=500, max_records=100)
            for tp, records in polled.items():
                for record in records:
                    await self._take(tp, record)
            await self._work(stop)
            await self._commit(polled)
            if time.monotonic() - self._last_purge >= self.settings.purge_interval_s:
                await self.purge()
            self.pending.set(len(self.jobs))

    async def _take(self, tp: TopicPartition, record: Any) -> None:
        try:
            incident = self.topics.incidents.decode(record.value)
        except MalformedMessage as exc:
            log.warning("incidents[%d]@%d: malformed, no evidence: %s", tp.partition, record.offset, exc)
            return
        if incident.id in self.jobs or await self._listed(incident.id):
            return
        at_ns = incident.snapshot_capture_ns or incident.first_seen_ns
        ready = at_ns + int((self.settings.after_s + self.settings.grace_s) * 1e9)
        self.jobs[incident.id] = Job(incident, at_ns, ready, tp, record.offset)

    async def _listed(self, incident_id: str) -> bool:
        try:
            return await self.catalogue.has_items(incident_id)
        except SQLAlchemyError as exc:
            self.db_error = describe_db_error(self.settings.database, exc)
            return False

    async def _work(self, stop: asyncio.Event) -> None:
        """Store the evidence of every job whose clip is complete in the topic (wall clock past ``ready_ns``)."""
        now = time.time_ns()
        for job in sorted(self.jobs.values(), key=lambda j: j.ready_ns):
            if stop.is_set() or job.ready_ns > now:
                break
            if job.tries and now < job.ready_ns + int(job.tries * self.settings.retry_s * 1e9):
                continue
            job.tries += 1
            try:
                stored = await self.keep(job)
            except StoreError as exc:
                self.store_error = str(exc)
                log.error("incident %s: evidence not stored, retried in %.0f s: %s", job.incident.id,
                          self.settings.retry_s, exc)
                continue
            except (SQLAlchemyError, OSError) as exc:
                self.db_error = describe_db_error(self.settings.database, exc)
                log.error("incident %s: evidence not listed, retried: %s", job.incident.id, self.db_error)
                continue
            self.store_error = self.db_error = ""
            del self.jobs[job.incident.id]
            if stored:
                await self._publish_outbox()

    async def keep(self, job: Job) -> int:
        """Cut, store and list one incident's evidence; returns the items listed (0: nothing left to keep).

        Raises StoreError (nothing listed then) or SQLAlchemyError."""
        incident, settings = job.incident, self.settings
        start = job.at_ns - int(settings.before_s * 1e9)
        end = job.at_ns + int(settings.after_s * 1e9)
        frames = await frames_between(self.kafka, self.topics.frames, incident.camera_id, start, end)
        snapshot = await self._snapshot(incident)
        authorisation = self.cameras.authorisation_of(incident.camera_id)
        due = job.at_ns + self.retention_days(incident.camera_id) * DAY_NS
        day = dt.datetime.fromtimestamp(job.at_ns / 1e9, dt.timezone.utc).strftime("%Y/%m/%d")
        base = f"{_safe(incident.camera_id)}/{day}/{_safe(incident.id)}"
        items = []
        if frames:
            clip = await asyncio.to_thread(encode_clip, frames)
            digest = await asyncio.to_thread(self.catalogue.store.put, f"{base}.mp4", clip.data)
            items.append(NewItem(incident.id, incident.camera_id, CLIP, f"{base}.mp4", digest, len(clip.data),
                                 clip.frames, clip.start_ns, clip.end_ns, due, authorisation.id if authorisation else ""))
        if snapshot is not None:
            digest = await asyncio.to_thread(self.catalogue.store.put, f"{base}.jpg", snapshot.data)
            items.append(NewItem(incident.id, incident.camera_id, SNAPSHOT, f"{base}.jpg", digest, len(snapshot.data),
                                 1, snapshot.capture_ns, snapshot.capture_ns, due,
                                 authorisation.id if authorisation else ""))
        if not items:
            log.warning("incident %s: no frame of camera %s left in the topic: no evidence", incident.id,
                        incident.camera_id)
            return 0
        await self.catalogue.record(items, self.now_ns())
        for item in items:
            self.stored.labels(item.kind).inc()
            self.stored_bytes.inc(item.size)
        log.info("incident %s: evidence stored (%s)", incident.id,
                 ", ".join(f"{i.kind} {i.size} bytes" for i in items))
        return len(items)

    async def _snapshot(self, incident: Incident) -> Any:
        if not incident.snapshot.topic:
            return None
        try:
            record = await fetch_record(self.kafka, incident.snapshot)
            return self.topics.frames.decode(record.value) if record is not None else None
        except (KafkaError, MalformedMessage) as exc:
            log.warning("incident %s: snapshot not read: %s", incident.id, exc)
            return None

    async def _commit(self, polled: dict) -> None:
        """Commit each partition up to its first incident still waiting for evidence."""
        offsets = {}
        for tp in set(polled) | {job.tp for job in self.jobs.values()}:
            waiting = [job.offset for job in self.jobs.values() if job.tp == tp]
            if waiting:
                offsets[tp] = min(waiting)
            elif polled.get(tp):
                offsets[tp] = polled[tp][-1].offset + 1
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("evidence: commit refused (redone after a rebalance): %s", exc)

    async def purge(self) -> int:
        """Destroy the items past their retention (not held); returns how many."""
        self._last_purge = time.monotonic()
        try:
            gone = await self.catalogue.purge(self.now_ns())
        except StoreError as exc:
            self.store_error = str(exc)
            log.error("evidence purge: %s", exc)
            return 0
        except SQLAlchemyError as exc:
            self.db_error = describe_db_error(self.settings.database, exc)
            log.error("evidence purge: %s", self.db_error)
            return 0
        if gone:
            self.destroyed.inc(len(gone))
            log.info("evidence purge: %d item(s) destroyed", len(gone))
            await self._publish_outbox()
        return len(gone)

    async def _publish_outbox(self) -> None:
        """Publish the register entries now (the register service also does, every few seconds)."""
        if self._producer is None:  # not started (a purge from the command line): the register publishes them
            return
        try:
            await flush_outbox(self.engine, AuditLog(self._producer, self.topics.audit))
        except (KafkaError, SQLAlchemyError, OSError) as exc:
            log.info("evidence: register entries wait in the outbox: %s", type(exc).__name__)

    async def stop(self) -> None:
        for part in (self._consumer, self._producer):
            if part is not None:
                await part.stop()
        self._consumer = self._producer = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine, self.catalogue = None, None

    def health(self) -> dict[str, Any]:
        return {"pending": len(self.jobs), "store": self.catalogue.store.describe() if self.catalogue else "",
                "before_s": self.settings.before_s, "after_s": self.settings.after_s}

    def degraded(self) -> dict[str, Any]:
        problems = {}
        if self.store_error:
            problems["store"] = self.store_error
        if self.db_error:
            problems["database"] = self.db_error
        return problems


def _disk_usage(root: object, field: str) -> float:
    """``shutil.disk_usage(root).<field>`` in bytes (``free``: free to an unprivileged user), NaN when the folder
    cannot be read: a scrape never fails on it."""
    try:
        return float(getattr(shutil.disk_usage(root), field))
    except OSError:
        return math.nan
