"""An incident's evidence in the console: its clip played, its legal holds placed and lifted.

Routes (all :attr:`~vigie.station.auth.Access.VIEWER`: operators and supervisors of the station):

- ``GET /api/incidents/{id}/evidence``: the incident's items (kind, time range, size, SHA-256, due date)
  and the active holds covering them;
- ``GET /api/evidence/{item}``: the item's file (MP4 clip or JPEG snapshot), sent only once an image
  view naming the user, the item and its incident is in the ``audit`` topic (503 and nothing sent
  otherwise), like a snapshot;
- ``POST /api/incidents/{id}/holds`` ``{"requisition": "..."}``: a supervisor holds the incident's
  evidence for a judicial requisition (recorded in the register);
- ``POST /api/incidents/{id}/transmissions`` ``{"requisition": "...", "authority": "..."}``: a supervisor
  downloads the judicial bundle of the incident's evidence as a ZIP (:mod:`vigie.evidence.transmit`; recorded);
- ``POST /api/incidents/{id}/access-exports`` ``{"from", "to", "requester": {"at", "box": [x, y, w, h]},
  "method"}``: a supervisor's right-of-access export of the incident's camera (the requester's box drawn
  on a frame in the console; :mod:`vigie.evidence.access`), downloaded as a ZIP (MP4 and manifest) once
  recorded; needs the console started with the cameras file (``--cameras``: retention, privacy masks);
- ``GET /api/holds`` and ``POST /api/holds/{hold}/release``: a supervisor lists and lifts holds.

Only items of incidents this station shows are served: an operator of another station gets 404.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.contracts.v1 import AuditEntry, Incident
from vigie.core.cameras import CamerasFile
from vigie.core.settings import KafkaSettings
from vigie.evidence.catalogue import Catalogue, EvidenceError, covers, hold_scope, iso, parse_time
from vigie.evidence.models import CLIP, EvidenceItem, LegalHold
from vigie.evidence.store import StoreError, open_store
from vigie.register.query import iso_of
from vigie.evidence.transmit import build_bundle, items_for
from vigie.station.auth import SESSION, Access, StationAuth
from vigie.station.login import read_json

CONTENT_TYPES = {CLIP: "video/mp4", "snapshot": "image/jpeg"}


def item_json(item: EvidenceItem, holds: list[LegalHold]) -> dict[str, Any]:
    """The console's view of an item and of the holds covering it."""
    return {"id": item.id, "kind": item.kind, "camera": item.camera_id, "incident": item.incident_id,
            "from": iso_of(item.start_ns), "to": iso_of(item.end_ns),  # to the ms: a snapshot names its frame "bytes": item.bytes, "frames": item.frames,
            "sha256": item.sha256, "due": iso(item.due_ns), "holds": [hold_json(h) for h in holds],
            "url": f"/api/evidence/{item.id}"}


def hold_json(hold: LegalHold) -> dict[str, Any]:
    return {"id": hold.id, "requisition": hold.requisition, "scope": hold_scope(hold), "placedBy": hold.placed_by,
            "placed": iso(hold.placed_ns)}


def _zip(name: str, files: dict[str, bytes]) -> web.Response:
    """``files`` in a ZIP named ``name`` (their folder inside it too), sent as an attachment, never cached."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for path, data in files.items():
            bundle.writestr(f"{name}/{path}", data)
    return web.Response(body=archive.getvalue(), content_type="application/zip", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}.zip"'})


class EvidencePage:
    """The evidence routes of one station's console.

    Args:
        auth: the console's access checks.
        store_folder: the evidence store's folder (shared with ``vigie evidence serve``).
        incident: ``request -> Incident`` of the station (raises 404 for another station's).
        audit: the station's audit writer (:meth:`vigie.station.login.ConsoleAccounts.audit`).
        publish: publishes the audit outbox, where a hold's entry is written with it
            (:meth:`vigie.station.login.ConsoleAccounts.publish_outbox`).
    """

    def __init__(self, auth: StationAuth, store_folder: str, incident: Callable[[str], Incident | None],
                 audit: Callable[..., Any], publish: Callable[[str], Any]) -> None:
        self.auth = auth
        self.store_folder = store_folder
        self.incident = incident
        self.audit = audit
        self.publish = publish
        self.catalogue: Catalogue | None = None
        #: Set by the station when it was given the cameras file (access exports need it).
        self.cameras: CamerasFile | None = None
        self.kafka: KafkaSettings | None = None

    def open(self, engine: AsyncEngine) -> None:
        """Use the database of ``engine`` (migrated) and the store. Raises StoreError for an unusable folder."""
        self.catalogue = Catalogue(engine, open_store(self.store_folder))

    def routes(self, app: web.Application) -> None:
        add = self.auth.add
        add(app, "GET", "/api/incidents/{id}/evidence", self._list, Access.VIEWER)
        add(app, "GET", "/api/evidence/{item}", self._item, Access.VIEWER)
        add(app, "POST", "/api/incidents/{id}/holds", self._hold, Access.VIEWER)
        add(app, "POST", "/api/incidents/{id}/transmissions", self._transmit, Access.VIEWER)
        add(app, "POST", "/api/incidents/{id}/access-exports", self._access_export, Access.VIEWER)
        add(app, "GET", "/api/holds", self._holds, Access.VIEWER)
        add(app, "POST", "/api/holds/{hold}/release", self._release, Access.VIEWER)

    def _known(self, incident_id: str) -> Incident:
        incident = self.incident(incident_id)
        if incident is None:
            raise web.HTTPNotFound(text="no such incident at this station")
        return incident

    @staticmethod
    def _supervisor(request: web.Request) -> str:
        user = request[SESSION].user
        if not user.supervisor:
            raise web.HTTPForbidden(text="only a supervisor places, lists or lifts legal holds")
        return user.name

    async def _list(self, request: web.Request) -> web.Response:
        incident = self._known(request.match_info["id"])
        items = await self.catalogue.items(incident_id=incident.id)
        holds = await self.catalogue.active_holds()
        return web.json_response({"incident": incident.id,
                                  "items": [item_json(i, [h for h in holds if covers(h, i)]) for i in items]})

    async def _item(self, request: web.Request) -> web.Response:
        items = await self.catalogue.items(item_id=request.match_info["item"], limit=1)
        if not items:
            raise web.HTTPNotFound(text="no such evidence (or destroyed at the end of its retention)")
        item = items[0]
        incident = self._known(item.incident_id)
        try:
            data = await asyncio.to_thread(self.catalogue.store.read, item.key)
        except StoreError:
            raise web.HTTPGone(text="this evidence is no longer in the store") from None
        try:  # recorded before it is sent: no entry, no image
            await self.audit(AuditEntry.KIND_VIEW, request, request[SESSION].user.name, camera_id=incident.camera_id,
                             incident_id=incident.id, detail=f"evidence {item.kind} {item.id}")
        except KafkaError:
            raise web.HTTPServiceUnavailable(text="the view could not be written to the register: the evidence "
                                                  "is not shown; try again") from None
        return web.Response(body=data, content_type=CONTENT_TYPES.get(item.kind, "application/octet-stream"),
                            headers={"Cache-Control": "no-store", "Content-Disposition": "inline"})

    async def _hold(self, request: web.Request) -> web.Response:
        by = self._supervisor(request)
        incident = self._known(request.match_info["id"])
        body = await read_json(request, 'expected JSON {"requisition": "the judicial requisition\'s reference"}')
        requisition = body.get("requisition") if isinstance(body, dict) else None
        if not isinstance(requisition, str) or set(body) != {"requisition"}:
            raise web.HTTPBadRequest(text='expected JSON {"requisition": "the judicial requisition\'s reference"}')
        try:
            hold = await self.catalogue.place_hold(requisition, by, time.time_ns(), incident_id=incident.id,
                                                   client=self.auth.client(request))
        except EvidenceError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await self.publish(f"legal hold {hold.id}")
        return web.json_response(hold_json(hold), status=201)

    async def _transmit(self, request: web.Request) -> web.Response:
        by = self._supervisor(request)
        incident = self._known(request.match_info["id"])
        expected = 'expected JSON {"requisition": "reference", "authority": "judicial authority"}'
        body = await read_json(request, expected)
        if not isinstance(body, dict) or set(body) != {"requisition", "authority"} or not all(
                isinstance(v, str) for v in body.values()):
            raise web.HTTPBadRequest(text=expected)
        try:
            items = await items_for(self.catalogue, incidents=[incident.id])
            transmission_id, files = await build_bundle(self.catalogue, self.catalogue.engine, items,
                                                        requisition=body["requisition"],
                                                        authority=body["authority"], by=by, now_ns=time.time_ns())
        except EvidenceError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        except StoreError as exc:
            raise web.HTTPGone(text=str(exc)) from None
        await self.publish(f"transmission {transmission_id}")
        return _zip(f"transmission-{transmission_id}", files)

    async def _access_export(self, request: web.Request) -> web.Response:
        by = self._supervisor(request)
        incident = self._known(request.match_info["id"])
        if self.cameras is None:
            raise web.HTTPServiceUnavailable(text="this console was started without the cameras file (--cameras): "
                                                  "use `vigie evidence access-export`")
        expected = ('expected JSON {"from": ISO, "to": ISO, "requester": {"at": ISO, "box": [x, y, w, h]}, '
                    '"method": "blur|black"}')
        body = await read_json(request, expected)
        try:
            requester = body["requester"]
            box = tuple(int(v) for v in requester["box"])
            start, end, marked_at = parse_time(body["from"]), parse_time(body["to"]), parse_time(requester["at"])
            method = body.get("method", "blur")
            if len(box) != 4 or method not in ("blur", "black") or set(body) - {"from", "to", "requester", "method"}:
                raise ValueError(expected)
        except (KeyError, TypeError, ValueError, AttributeError, EvidenceError):
            raise web.HTTPBadRequest(text=expected) from None
        from vigie.evidence.exports import make_access_export  # the analytics (torch): loaded on the first export

        try:
            export_id, clip, manifest = await make_access_export(
                self.kafka, self.catalogue, self.cameras, incident.camera_id, start, end, marked_at, box, by=by,
                method=method, client=self.auth.client(request))
        except EvidenceError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await self.publish(f"access export {export_id}")
        manifest_json = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        return _zip(f"access-{export_id}", {f"access-{export_id}.mp4": clip.data,
                                            f"access-{export_id}.json": manifest_json})

    async def _holds(self, request: web.Request) -> web.Response:
        self._supervisor(request)
        return web.json_response({"holds": [hold_json(h) for h in await self.catalogue.active_holds()]})

    async def _release(self, request: web.Request) -> web.Response:
        by = self._supervisor(request)
        await read_json(request, "expected a JSON object ({})")
        try:
            hold = await self.catalogue.release_hold(request.match_info["hold"], by, time.time_ns(),
                                                     client=self.auth.client(request))
        except EvidenceError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        await self.publish(f"release of legal hold {hold.id}")
        return web.json_response({**hold_json(hold), "released": iso(hold.released_ns)})
