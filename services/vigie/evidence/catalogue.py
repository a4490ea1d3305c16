"""The evidence catalogue: what is stored, what is held, what is destroyed, each step in the register.

Every change writes its register entry into the audit outbox in the same database transaction
(:func:`vigie.accounts.store.record`; the register service publishes the outbox), so an item is
never listed without its ``recording`` entry, nor destroyed without its ``purge`` entry:

- :meth:`Catalogue.record` lists items already written whole to the store (``recording``);
- :meth:`Catalogue.place_hold` / :meth:`Catalogue.release_hold`: legal holds for a judicial
  requisition, on one incident's items or on a camera and a time range (``hold``, ``hold_released``);
- :meth:`Catalogue.record_access_export`: an image export for the right of access (``export``);
- :meth:`Catalogue.purge` destroys every item past its due date that no active hold covers
  (``purge``: item, due date, actual date). Time comes from an injectable clock.

The entries' ``detail`` is canonical JSON (sorted keys), so an auditor's tool can read it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from vigie.accounts.models import OutboxEntry
from vigie.accounts.store import record as outbox_record
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import entry
from vigie.core.errors import VigieError
from vigie.evidence.models import EvidenceItem, LegalHold, Transmission
from vigie.evidence.store import Store, StoreError

__all__ = ["Catalogue", "EvidenceError", "NewItem", "active_holds", "covers", "hold_scope", "iso", "parse_time"]

SERVICE = "evidence"
#: Items destroyed per transaction by :meth:`Catalogue.purge`.
PURGE_BATCH = 2000


class EvidenceError(VigieError):
    """A refused evidence operation; the message says why (no requisition, unknown incident, range...)."""


def iso(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC to the second, e.g. ``2026-12-05T10:00:00Z``."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """An ISO 8601 date or date-time (UTC when no offset is given) as ns since the epoch.

    Raises EvidenceError naming the text."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EvidenceError(f"{text!r} is not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1e9)


def _detail(**fields: object) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item written to the store, to be listed: ``key`` in the store, its hex ``sha256``, ``size`` in bytes,
    ``frames`` (1 for a snapshot), capture range ``start_ns``..``end_ns``, ``due_ns`` when its retention ends."""

    incident_id: str
    camera_id: str
    kind: str
    key: str
    sha256: str
    size: int
    frames: int
    start_ns: int
    end_ns: int
    due_ns: int
    authorisation: str
    id: str = ""


def covers(hold: LegalHold, item: EvidenceItem) -> bool:
    """True when the active ``hold`` covers ``item`` (its incident, or its camera over an overlapping range)."""
    if hold.incident_id:
        return hold.incident_id == item.incident_id
    return hold.camera_id == item.camera_id and item.start_ns <= hold.end_ns and item.end_ns >= hold.start_ns


async def active_holds(engine: AsyncEngine) -> list[LegalHold]:
    """The legal holds not lifted in the database of ``engine``, oldest first."""
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        return list((await session.scalars(select(LegalHold).where(LegalHold.released_ns == 0)
                                           .order_by(LegalHold.placed_ns))).all())


def hold_scope(hold: LegalHold) -> str:
    """What ``hold`` covers, in words: ``incident inc-7`` or ``camera cam-1 <from>..<to>``."""
    return (f"incident {hold.incident_id}" if hold.incident_id
            else f"camera {hold.camera_id} {iso(hold.start_ns)}..{iso(hold.end_ns)}")


class Catalogue:
    """The evidence items and holds of one database, the files of one store.

    Args:
        engine: async engine of a database migrated by :func:`vigie.core.db.migrate` (revision 0003 or later).
        store: where the items' files lie.
    """

    def __init__(self, engine: AsyncEngine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def has_items(self, incident_id: str) -> bool:
        """True when ``incident_id`` has items listed (destroyed ones included)."""
        async with self.sessions() as session:
            return await session.scalar(select(EvidenceItem.id).where(EvidenceItem.incident_id == incident_id)
                                        .limit(1)) is not None

    async def record(self, items: Sequence[NewItem], now_ns: int) -> list[str]:
        """List ``items`` (written whole to the store) with one ``recording`` entry each, in one transaction;
        returns their ids."""
        ids = []
        async with self.sessions.begin() as session:
            for item in items:
                item_id = item.id or uuid.uuid4().hex
                ids.append(item_id)
                session.add(EvidenceItem(
                    id=item_id, incident_id=item.incident_id, camera_id=item.camera_id, kind=item.kind, key=item.key,
                    sha256=item.sha256, bytes=item.size, frames=item.frames, start_ns=item.start_ns,
                    end_ns=item.end_ns, created_ns=now_ns, due_ns=item.due_ns, authorisation=item.authorisation,
                    destroyed_ns=0))
                detail = _detail(item=item_id, kind=item.kind, sha256=item.sha256, bytes=item.size,
                                 start=iso(item.start_ns), end=iso(item.end_ns), due=iso(item.due_ns),
                                 authorisation=item.authorisation)
                outbox_record(session, AuditEntry.KIND_RECORDING, service=SERVICE, by="", subject=item_id,
                              detail=detail, camera_id=item.camera_id, incident_id=item.incident_id)
        return ids

    async def items(self, *, camera_id: str = "", incident_id: str = "", item_id: str = "", destroyed: bool = False,
                    limit: int = 1000) -> list[EvidenceItem]:
        """Items, newest first, filtered by camera, incident and id; destroyed ones too when ``destroyed``."""
        query = select(EvidenceItem).order_by(EvidenceItem.start_ns.desc()).limit(limit)
        if item_id:
            query = query.where(EvidenceItem.id == item_id)
        if camera_id:
            query = query.where(EvidenceItem.camera_id == camera_id)
        if incident_id:
            query = query.where(EvidenceItem.incident_id == incident_id)
        if not destroyed:
            query = query.where(EvidenceItem.destroyed_ns == 0)
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def active_holds(self) -> list[LegalHold]:
        """Holds not lifted, oldest first."""
        return await active_holds(self.engine)

    async def held(self, item: EvidenceItem) -> list[LegalHold]:
        """The active holds covering ``item``."""
        return [hold for hold in await self.active_holds() if covers(hold, item)]

    async def place_hold(self, requisition: str, by: str, now_ns: int, *, incident_id: str = "", camera_id: str = "",
                         start_ns: int = 0, end_ns: int = 0, client: str = "") -> LegalHold:
        """Place a hold (the caller checked that ``by`` is a supervisor) and record it.

        Raises EvidenceError: no requisition reference; neither an incident nor a camera with a range, or
        both; an incident without evidence; a range ending before it starts.
        """
        requisition = " ".join(requisition.split())
        if not requisition:
            raise EvidenceError("a legal hold needs the judicial requisition's reference")
        if bool(incident_id) == bool(camera_id):
            raise EvidenceError("hold either one incident's evidence or a camera over a time range")
        if incident_id and not await self.has_items(incident_id):
            raise EvidenceError(f"incident {incident_id} has no evidence to hold")
        if camera_id and not (0 < start_ns <= end_ns):
            raise EvidenceError("a camera hold needs a time range whose end is not before its start")
        hold = LegalHold(id=uuid.uuid4().hex, requisition=requisition[:200], incident_id=incident_id,
                         camera_id=camera_id, start_ns=start_ns, end_ns=end_ns, placed_by=by, placed_ns=now_ns,
                         released_by="", released_ns=0)
        scope = {"incident": incident_id} if incident_id else {"camera": camera_id, "from": iso(start_ns),
                                                               "to": iso(end_ns)}
        async with self.sessions.begin() as session:
            session.add(hold)
            outbox_record(session, AuditEntry.KIND_HOLD, service=SERVICE, by=by, subject=hold.id, client=client,
                          detail=_detail(hold=hold.id, requisition=hold.requisition, **scope),
                          camera_id=camera_id, incident_id=incident_id)
        return hold

    async def release_hold(self, hold_id: str, by: str, now_ns: int, *, client: str = "") -> LegalHold:
        """Lift an active hold (the caller checked ``by`` is a supervisor) and record it.

        Raises EvidenceError for an unknown or already lifted hold."""
        async with self.sessions.begin() as session:
            hold = await session.get(LegalHold, hold_id)
            if hold is None or hold.released_ns:
                raise EvidenceError(f"no active legal hold {hold_id!r}")
            hold.released_by, hold.released_ns = by, now_ns
            outbox_record(session, AuditEntry.KIND_HOLD_RELEASED, service=SERVICE, by=by, subject=hold.id,
                          client=client, detail=_detail(hold=hold.id, requisition=hold.requisition),
                          camera_id=hold.camera_id, incident_id=hold.incident_id)
        return hold

    async def record_transmission(self, transmission_id: str, requisition: str, authority: str, items: list[str],
                                  manifest_sha256: str, by: str, now_ns: int) -> None:
        """List a transmission to a judicial authority with its ``transmission`` entry, in one transaction."""
        async with self.sessions.begin() as session:
            session.add(Transmission(id=transmission_id, requisition=requisition[:200], authority=authority[:200],
                                     items=items, manifest_sha256=manifest_sha256, made_by=by, made_ns=now_ns))
            outbox_record(session, AuditEntry.KIND_TRANSMISSION, service=SERVICE, by=by, subject=transmission_id,
                          detail=_detail(transmission=transmission_id, requisition=requisition, authority=authority,
                                         items=items, manifest_sha256=manifest_sha256))

    async def record_access_export(self, export_id: str, manifest: dict, by: str, *, client: str = "") -> None:
        """Record an access export (:mod:`vigie.evidence.access`) made by supervisor ``by``: one ``export`` entry,
        in its own transaction, whose detail holds the manifest's SHA-256, camera, range, requester frame,
        method and person source (never an image nor the requester's box)."""
        requester = manifest["requester"]
        detail = _detail(export=export_id, kind="access", sha256=manifest["sha256"], camera=manifest["camera"],
                         start=manifest["from"], end=manifest["to"], requester_frame=requester["frame"],
                         requester_at=requester["at"], method=manifest["method"],
                         person_source=manifest["person_source"], frames=manifest["frames"])
        async with self.sessions.begin() as session:
            outbox_record(session, AuditEntry.KIND_EXPORT, service=SERVICE, by=by, subject=export_id, client=client,
                          detail=detail, camera_id=manifest["camera"])

    async def purge(self, now_ns: int) -> list[EvidenceItem]:
        """Destroy every item due by ``now_ns`` that no active hold covers; returns those destroyed.

        Each file is removed from the store, then its row marked destroyed with a ``purge`` entry, in batches
        of :data:`PURGE_BATCH`; a file already gone (a purge interrupted) is recorded as destroyed now. An item
        the store cannot remove stays listed, is retried next time, and raises StoreError after the batch.
        """
        holds = await self.active_holds()
        destroyed: list[EvidenceItem] = []
        failure: StoreError | None = None
        after = ""
        while True:
            async with self.sessions() as session:
                batch = list((await session.scalars(
                    select(EvidenceItem).where(EvidenceItem.destroyed_ns == 0, EvidenceItem.due_ns <= now_ns,
                                               EvidenceItem.id > after)
                    .order_by(EvidenceItem.id).limit(PURGE_BATCH))).all())
            if not batch:
                break
            after = batch[-1].id
            due = [item for item in batch if not any(covers(hold, item) for hold in holds)]
            gone, error = await asyncio.to_thread(self._delete, due)
            failure = error or failure
            await self._mark_destroyed(gone, now_ns)
            destroyed += gone
        if failure is not None:
            raise failure
        return destroyed

    def _delete(self, items: list[EvidenceItem]) -> tuple[list[EvidenceItem], StoreError | None]:
        """Remove the files of ``items`` (blocking); returns those gone and the last error met."""
        gone, failure = [], None
        for item in items:
            try:
                self.store.delete(item.key)
            except StoreError as exc:
                failure = exc
                continue
            gone.append(item)
        return gone, failure

    async def _mark_destroyed(self, items: Iterable[EvidenceItem], now_ns: int) -> None:
        items = list(items)
        if not items:
            return
        created = time.time()
        outbox = []
        for item in items:
            message = entry(AuditEntry.KIND_PURGE, service=SERVICE, subject=item.id, camera_id=item.camera_id,
                            incident_id=item.incident_id,
                            detail=_detail(item=item.id, kind=item.kind, sha256=item.sha256, due=iso(item.due_ns),
                                           destroyed=iso(now_ns)))
            outbox.append({"entry_id": message.id, "payload": message.SerializeToString(), "created_at": created})
            item.destroyed_ns = now_ns
        async with self.sessions.begin() as session:  # bulk statements: a purge may destroy 100,000 items
            await session.execute(update(EvidenceItem).where(EvidenceItem.id.in_([i.id for i in items]))
                                  .values(destroyed_ns=now_ns))
            await session.execute(insert(OutboxEntry), outbox)
