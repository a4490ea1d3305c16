"""The operator station: a browser console showing one station's incidents live.

Stages, in order (:meth:`StationService.start`):

1. a producer, for operator actions and the audit register;
2. a consumer of ``alerts.<station>`` outside any consumer group, read from the
   beginning, so every console process rebuilds the station's whole current view;
3. the HTTP routes: the console page, ``/api/incidents``, ``/api/events`` (server-sent
   events), the snapshot of an incident's frame with its regions, and operator actions.

Viewing a snapshot is an image view: each one is written to the ``audit`` topic with
the operator, the station and the frame viewed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError
from google.protobuf.json_format import MessageToDict
from pydantic import Field

from vigie.contracts.v1 import AuditEntry, Incident, OperatorAction
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.kafka import (describe_broker_error, fetch_record, make_consumer, make_producer, missing_topics,
                              retriable)
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.topics import station_topic_base

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ACTIONS = {
    "acknowledge": OperatorAction.KIND_ACKNOWLEDGE,
    "escalate": OperatorAction.KIND_ESCALATE,
    "comment": OperatorAction.KIND_COMMENT,
    "close": OperatorAction.KIND_CLOSE,
}


class StationSettings(StrictModel):
    """One operator station."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    station: str = Field("main", description="Station id; the console shows topic alerts.<station>.")
    operator: str = Field("operator", min_length=1, max_length=64, description="Operator name written on actions.")
    http_host: str = Field("127.0.0.1", description="Address the console listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the console listens on.")

    def model_post_init(self, _: Any) -> None:
        station_topic_base(self.station)


def incident_json(incident: Incident) -> dict[str, Any]:
    """The console's view of an incident: protobuf fields in camelCase, the state as a short word."""
    data = MessageToDict(incident, always_print_fields_with_no_presence=True)
    data["state"] = Incident.State.Name(incident.state).removeprefix("STATE_").lower()
    return data


class StationService(Service):
    """Console of one station. ``incidents`` maps incident id to its latest revision."""

    name = "station"

    def __init__(self, settings: StationSettings, registry=None) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.alerts = self.topics.alerts(settings.station)
        self.incidents: dict[str, Incident] = {}
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._producer = None
        self._consumer = None
        self._snapshots: dict[str, bytes] = {}

    async def start(self) -> None:
        if self._producer is not None:
            return
        if await missing_topics(self.settings.kafka, [self.alerts, self.topics.actions, self.topics.audit]):
            raise ConfigError(f"topic {self.alerts.name} (or actions, audit) does not exist: run "
                              f"`vigie topics apply --stations {self.settings.station}` first")
        self._producer = make_producer(self.settings.kafka)
        await self._producer.start()
        # No consumer group: every console process reads all partitions from the beginning.
        self._consumer = make_consumer(self.settings.kafka, self.alerts, group=None)
        await self._consumer.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Show the alerts as they come. While the broker is away the consumer waits (aiokafka reconnects
        by itself) and it resumes from its position when the broker is back; an error that says
        only that the broker is out of reach is waited out, never the end of the console."""
        while not stop.is_set():
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                if not retriable(exc):
                    raise
                log.warning("alerts not read, retrying in 1 s: %s", describe_broker_error(exc))
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    self._on_alert(record.value)

    def _on_alert(self, value: bytes) -> None:
        self.metrics.records_in(self.alerts.name).inc()
        try:
            incident = self.alerts.decode(value)
        except MalformedMessage as exc:
            self.metrics.errors("decode").inc()
            log.warning("skipping alert: %s", exc)
            return
        known = self.incidents.get(incident.id)
        if known is not None and known.revision >= incident.revision:
            return
        self.incidents[incident.id] = incident
        if known is None:
            self.metrics.end_to_end_seconds.observe(max(0.0, (time.time_ns() - incident.first_seen_ns) / 1e9))
        event = f"event: incident\ndata: {json.dumps(incident_json(incident))}\n\n"
        for queue in list(self._subscribers):
            if queue.full():  # a console that does not read any more is dropped, not waited for
                self._subscribers.discard(queue)
            else:
                queue.put_nowait(event)

    async def stop(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait("")
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def health(self) -> dict[str, Any]:
        return {"station": self.settings.station, "incidents": len(self.incidents), "consoles": len(self._subscribers)}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/api/incidents", self._list)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/incidents/{id}/snapshot.jpg", self._snapshot)
        app.router.add_post("/api/incidents/{id}/actions", self._action)

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _list(self, _: web.Request) -> web.Response:
        items = sorted(self.incidents.values(), key=lambda i: i.first_seen_ns, reverse=True)
        return web.json_response({"station": self.settings.station, "incidents": [incident_json(i) for i in items]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        for incident in sorted(self.incidents.values(), key=lambda i: i.first_seen_ns):
            queue.put_nowait(f"event: incident\ndata: {json.dumps(incident_json(incident))}\n\n")
        self._subscribers.add(queue)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), 15.0)
                except asyncio.TimeoutError:
                    event = ": keep-alive\n\n"
                if not event:
                    break
                await response.write(event.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.discard(queue)
        return response

    def _incident(self, request: web.Request) -> Incident:
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            raise web.HTTPNotFound(text="no such incident at this station")
        return incident

    async def _snapshot(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        data = self._snapshots.get(incident.id)
        if data is None:
            record = await fetch_record(self.settings.kafka, incident.snapshot)
            if record is None:
                raise web.HTTPGone(text="the frame is no longer kept (retention)")
            data = self.topics.frames.decode(record.value).data
            self._snapshots[incident.id] = data
            while len(self._snapshots) > 200:
                self._snapshots.pop(next(iter(self._snapshots)))
        await self._audit(AuditEntry.KIND_VIEW, incident, "snapshot")
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _audit(self, kind: int, incident: Incident, detail: str) -> None:
        entry = AuditEntry(
            id=uuid.uuid4().hex, kind=kind, camera_id=incident.camera_id, operator=self.settings.operator,
            station=self.settings.station, at_ns=time.time_ns(), record=incident.snapshot,
            incident_id=incident.id, detail=detail,
        )
        topic = self.topics.audit
        await self._producer.send_and_wait(topic.name, topic.encode(entry), key=topic.key(incident.camera_id))

    async def _action(self, request: web.Request) -> web.Response:
        """POST ``{"action": "acknowledge|close|comment|escalate", "comment": "text"}``: 202 once published.

        400 (nothing published) for a body that is not such an object, an unknown key
        (named, with the accepted ones), or a ``comment`` action without comment text.
        """
        incident = self._incident(request)
        expected = {"action": " | ".join(sorted(ACTIONS)), "comment": "text (needed by 'comment')"}
        try:
            body = await request.json()
            kind = ACTIONS[body["action"]]
            comment = body.get("comment", "")
            if not isinstance(comment, str):
                raise TypeError("comment")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise web.HTTPBadRequest(text=f"expected JSON {json.dumps(expected)}") from None
        unknown = sorted(str(key) for key in body if key not in expected)
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown key {unknown[0]!r} in the action; accepted keys: "
                                          f"{', '.join(expected)} (expected JSON {json.dumps(expected)})")
        if kind == OperatorAction.KIND_COMMENT and not comment.strip():
            raise web.HTTPBadRequest(text="a 'comment' action needs a non-empty 'comment' text")
        action = OperatorAction(
            id=uuid.uuid4().hex, incident_id=incident.id, camera_id=incident.camera_id, kind=kind,
            operator=self.settings.operator, station=self.settings.station, at_ns=time.time_ns(),
            comment=comment[:2000],
        )
        topic = self.topics.actions
        await self._producer.send_and_wait(topic.name, topic.encode(action), key=topic.key(incident.camera_id))
        self.metrics.records_out(topic.name).inc()
        log.info("operator action", extra={"action": body["action"], "incident": incident.id})
        return web.json_response({"id": action.id, "incident": incident.id, "action": body["action"]}, status=202)
