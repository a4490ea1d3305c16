"""The operator station: a browser console showing one station's incidents live.

Stages, in order (:meth:`StationService.start`):

1. a producer, for operator actions and the audit register;
2. a consumer of ``alerts.<station>`` outside any consumer group, read from the
   beginning, so every console process rebuilds the station's whole current view; likewise one of
   ``camera-status``, the health of the cameras (:mod:`vigie.station.cameras_page`, ``/api/cameras``);
3. the HTTP routes: the console page, ``/api/incidents``, ``/api/events`` (server-sent
   events), the snapshot of an incident's frame with its regions, a camera's zones and headings
   (:mod:`vigie.station.geometry`), and operator actions.

Memory is bounded: the incidents held are the open ones and those closed in the last
``keep_closed_s``, at most ``max_incidents`` (:mod:`vigie.station.store`); older closed ones are read
back from the alerts topic page by page (:mod:`vigie.station.history`); each console's event
queue is bounded and a console that falls behind gets the whole list again instead of an error
(:mod:`vigie.station.events`); the snapshot cache is an LRU capped in bytes.

Only logged-in users reach the console (:mod:`vigie.station.auth`, :mod:`vigie.station.login`):
operators and supervisors assigned the station see its incidents and act on them (escalated ones:
supervisors only; assigning: supervisors only), as the correlator's transition table allows
(:mod:`vigie.station.actions`, :func:`vigie.correlator.incidents.refusal`); the false-alarm rates of the
operators' verdicts (:mod:`vigie.station.rates_page`) are for supervisors only; auditors read the register
(:mod:`vigie.station.register_page`) and land there.
Viewing a snapshot is an image view: each one is written to the ``audit`` topic with the user, the
station, the client's address and the frame viewed, before the image is sent (503 and no image when
it cannot be written); so is every action, and every live view of a camera (:mod:`vigie.station.live`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError
from google.protobuf.json_format import MessageToDict
from pydantic import Field
from sqlalchemy.exc import DBAPIError, OperationalError

from vigie.accounts.passwords import verify_dummy
from vigie.accounts.sessions import SessionStore
from vigie.accounts.store import LockoutPolicy
from vigie.contracts.v1 import AuditEntry, Incident, OperatorAction, Verdict
from vigie.core.audit import AuditLog
from vigie.core.cameras import load_cameras
from vigie.core.db import DatabaseSettings, check_reachable, make_engine, migrate
from vigie.core.errors import BrokerUnavailable, ConfigError, MalformedMessage
from vigie.core.kafka import (check_image_retention, describe_broker_error, fetch_record, make_consumer,
                              make_producer, require_topics, retriable)
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.topics import station_topic_base
from vigie.correlator.incidents import refusal
from vigie.station.actions import REASONS, REFUSED, SHAPE, VERDICTS, action_body, describe
from vigie.station.cameras_page import CamerasPage
from vigie.station.auth import SESSION, STATIC, Access, AuthSettings, StationAuth, reads_register
from vigie.station.events import CLOSE, RESYNC, EventHub, sse
from vigie.station.geometry import geometry_handler
from vigie.station.history import CursorError, closed_page
from vigie.station.login import ConsoleAccounts, read_json
from vigie.evidence.store import StoreError
from vigie.station.evidence_page import EvidencePage
from vigie.station.rates_page import RatesPage
from vigie.station.live import LivePage
from vigie.station.register_page import RegisterPage
from vigie.station.store import IncidentStore, SnapshotCache
from vigie.station.verdicts import MAX_WINDOW_S, MIN_WINDOW_S, VerdictStats

log = logging.getLogger(__name__)
DAY_S = 86400.0
#: Default and largest page of ``/api/incidents?state=closed``.
HISTORY_LIMIT, HISTORY_MAX = 50, 200
#: Seconds between two checks that an event stream's session is still live, whether events flow or not
#: (a logout, an expiry or a disabled account closes an open stream within this time, plus the session cache).
SESSION_CHECK_S = 2.0
#: Seconds without an event after which a keep-alive comment is sent.
KEEP_ALIVE_S = 15.0
#: Seconds between two deletions of expired console sessions.
PURGE_EVERY_S = 600.0


class StationSettings(StrictModel):
    """One operator station."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    station: str = Field("main", description="Station id; the console shows topic alerts.<station>.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Accounts and sessions.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Sessions, HTTPS, trusted proxy.")
    http_host: str = Field("127.0.0.1", description="Address the console listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the console listens on.")
    max_incidents: int = Field(5000, ge=1, le=1_000_000, description="Most incidents held in memory, open and "
                               "closed; over it the incident closed first leaves first, then the open one "
                               "unchanged for longest.")
    keep_closed_s: float = Field(1800.0, ge=0, le=DAY_S, description="Seconds a closed incident stays in the "
                                 "console's live list; after that it is in the history (read from the alerts topic).")
    keep_open_s: float = Field(7 * DAY_S, gt=0, le=30 * DAY_S, description="Seconds an open incident without any "
                               "change stays in memory (the correlator keeps open incidents until they are closed).")
    event_queue: int = Field(1000, ge=1, le=100_000, description="Events waiting per console before its backlog "
                             "is dropped and it gets the whole list again (a resync).")
    evidence_store: str = Field("var/evidence", min_length=1, description="Folder of the evidence store "
                                "(`vigie evidence serve --store`): the console plays incidents' clips from it.")
    cameras_file: str | None = Field(None, description="Cameras YAML: its authorisations and privacy masks, for "
                                     "the supervisors' right-of-access exports (without it they are refused); "
                                     "its cameras are those the camera health shows (without it: all that report); "
                                     "its zones and headings are drawn on snapshots (without it: none drawn).")
    snapshot_cache_bytes: int = Field(32 << 20, ge=0, le=4 << 30, description="Bytes of snapshot JPEGs kept in "
                                      "memory (least recently viewed evicted first).")
    rates_window_s: float = Field(7 * DAY_S, ge=MIN_WINDOW_S, le=MAX_WINDOW_S, description="Seconds of closing "
                                  "time over which false-alarm rates are shown and exported (1 h to 30 days).")
    false_alarm_flag_rate: float = Field(0.5, ge=0, le=1, description="A camera-kind pair is flagged when its "
                                         "false-alarm rate is over this, with false_alarm_min_verdicts verdicts.")
    false_alarm_min_verdicts: int = Field(10, ge=1, le=1_000_000, description="Fewest verdicts (confirmed + false "
                                          "alarms; tests are left out) for a camera-kind pair to be flagged.")
    max_live_views: int = Field(8, ge=0, le=256, description="Live views (WebRTC video of a camera, "
                                ":mod:`vigie.station.live`) open at a time; 503 beyond.")

    def model_post_init(self, _: Any) -> None:
        station_topic_base(self.station)


def incident_json(incident: Incident) -> dict[str, Any]:
    """The console's view of an incident: protobuf fields in camelCase, the state as a short word (new,
    acknowledged, on_hold, escalated, closed), the verdict as ``{"kind": "false_alarm", "reason": "reflection",
    "author": ..., "atNs": ...}`` (``reason`` "" unless a false alarm; null while open)."""
    data = MessageToDict(incident, always_print_fields_with_no_presence=True)
    data["state"] = Incident.State.Name(incident.state).removeprefix("STATE_").lower()
    verdict = incident.verdict
    data["verdict"] = {
        "kind": Verdict.Kind.Name(verdict.kind).removeprefix("KIND_").lower(),
        "reason": Verdict.Reason.Name(verdict.reason).removeprefix("REASON_").lower() if verdict.reason else "",
        "author": verdict.author, "atNs": str(verdict.at_ns),
    } if incident.HasField("verdict") else None
    return data


class StationService(Service):
    """Console of one station. ``incidents`` holds the latest revision of the live incidents."""

    name = "station"

    def __init__(self, settings: StationSettings, registry=None) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.alerts = self.topics.alerts(settings.station)
        self.incidents = IncidentStore(settings.max_incidents, settings.keep_closed_s, settings.keep_open_s,
                                       self.registry)
        self.events = EventHub(settings.event_queue, self.registry)
        self.incidents.on_evict = lambda incident_id: self.events.publish(sse("gone", {"id": incident_id}))
        self._producer = None
        self._consumer = None
        self._snapshots = SnapshotCache(settings.snapshot_cache_bytes, self.registry)
        self.auth = StationAuth(settings.auth, settings.station)
        auth = settings.auth
        self.login = ConsoleAccounts(self.auth, settings.station,
                                     LockoutPolicy(auth.lock_after, auth.lock_base_s, auth.lock_max_s))
        self.register = RegisterPage(self.auth, self.login.audit)
        self.evidence = EvidencePage(self.auth, settings.evidence_store, self.incidents.get, self.login.audit,
                                     self.login.publish_outbox)
        self.verdicts = VerdictStats(settings.rates_window_s, settings.false_alarm_flag_rate,
                                     settings.false_alarm_min_verdicts, self.registry)
        self.rates = RatesPage(self.auth, self.verdicts, settings.station)
        self.live = LivePage(self.auth, settings.station, settings.kafka, self.topics.frames, self.incidents,
                             self.login.audit, self._still_allowed, self.registry, settings.max_live_views)
        self.cameras = CamerasPage(self.auth, settings.kafka, self.topics.camera_status, self.events.publish,
                                   self.metrics)
        self._engine = None

    async def prepare(self) -> None:
        """Read the cameras file when given; reach the accounts database and migrate its schema, before anything
        listens.

        Raises ConfigError for a bad cameras file, DatabaseUnavailable naming the database (password hidden)
        when it cannot be reached or written.
        """
        if self._engine is not None:
            return
        if self.settings.cameras_file:
            self.evidence.cameras = await asyncio.to_thread(load_cameras, self.settings.cameras_file)
            self.cameras.only = {c.id for c in self.evidence.cameras.cameras}
        self.evidence.kafka = self.settings.kafka
        engine = make_engine(self.settings.database)
        try:
            await check_reachable(engine, self.settings.database)
            await migrate(engine, self.settings.database)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        await asyncio.to_thread(verify_dummy, "")  # makes the dummy hash once, before the first login

    async def start(self) -> None:
        if self._producer is not None:
            return
        await self.prepare()
        await require_topics(self.settings.kafka, [self.alerts, self.topics.actions, self.topics.audit,
                                                   self.topics.camera_status],
                             [self.settings.station])
        if self.evidence.cameras is not None:  # it shows frames (snapshots): they too must not outlive the orders
            await check_image_retention(self.settings.kafka, self.topics.frames, self.evidence.cameras.authorisations)
        auth = self.settings.auth
        self.auth.sessions = SessionStore(self._engine, idle_s=auth.session_idle_s, max_s=auth.session_max_s,
                                          cache_s=auth.session_cache_s)
        self._producer = make_producer(self.settings.kafka)
        await self._producer.start()
        self.login.open(self._engine, AuditLog(self._producer, self.topics.audit))
        self.register.engine = self._engine
        try:
            self.evidence.open(self._engine)
        except StoreError as exc:
            raise ConfigError(f"evidence_store: {exc}") from None
        # No consumer group: every console process reads all partitions from the beginning.
        self._consumer = make_consumer(self.settings.kafka, self.alerts, group=None)
        await self._consumer.start()
        await self.cameras.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Show the alerts as they come. While the broker is away the consumer waits (aiokafka reconnects
        by itself) and it resumes from its position when the broker is back; an error that says
        only that the broker is out of reach is waited out, never the end of the console. Every
        ``PURGE_EVERY_S`` it deletes the console sessions past their timeouts."""
        purged = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - purged > PURGE_EVERY_S:
                purged = time.monotonic()
                await self._purge_sessions()
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

    async def _purge_sessions(self) -> None:
        try:
            if count := await self.auth.sessions.purge_expired():
                log.info("%d expired console sessions deleted", count)
        except (OperationalError, DBAPIError) as exc:
            log.warning("expired sessions not deleted (the database does not answer): %s", type(exc).__name__)

    def _on_alert(self, value: bytes) -> None:
        self.metrics.records_in(self.alerts.name).inc()
        try:
            incident = self.alerts.decode(value)
        except MalformedMessage as exc:
            self.metrics.errors("decode").inc()
            log.warning("skipping alert: %s", exc)
            return
        self.verdicts.observe(incident)
        if self.incidents.put(incident):
            if incident.revision == 1:
                self.metrics.end_to_end_seconds.observe(max(0.0, (time.time_ns() - incident.first_seen_ns) / 1e9))
            self.events.publish(sse("incident", incident_json(incident)))
        self.incidents.prune()

    async def stop(self) -> None:
        self.events.close()
        await self.live.close()  # before the producer stops: the views' end entries are written
        await self.cameras.stop()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """HTTPS when ``tls_cert`` and ``tls_key`` are set. Raises ConfigError for unreadable files."""
        auth = self.settings.auth
        if not auth.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(auth.tls_cert, auth.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_cert/tls_key: {exc}") from None
        return context

    def health(self) -> dict[str, Any]:
        self.incidents.prune()
        return {"station": self.settings.station, "incidents": len(self.incidents), "consoles": len(self.events),
                "store": self.incidents.counts(), "verdicts": len(self.verdicts), "resyncs": self.events.resyncs,
                "cameras": self.cameras.counts(), "snapshot_cache": self._snapshots.stats(), "live": self.live.stats(),
                "database": self.settings.database.redacted(),
                "https": bool(self.settings.auth.tls_cert), "trusted_proxy": bool(self.settings.auth.trusted_proxies)}

    def routes(self, app: web.Application) -> None:
        """The console's routes, each with its access rule, behind the session middleware."""
        app.middlewares.append(self.auth.middleware)
        add = self.auth.add
        add(app, "GET", "/", self._index, Access.USER)
        self.auth.add_static(app, "/static", STATIC, Access.USER)
        add(app, "GET", "/api/incidents", self._list, Access.VIEWER)
        add(app, "GET", "/api/events", self._events, Access.VIEWER)
        add(app, "GET", "/api/incidents/{id}/snapshot.jpg", self._snapshot, Access.VIEWER)
        add(app, "POST", "/api/incidents/{id}/actions", self._action, Access.VIEWER)
        add(app, "GET", "/api/cameras/{id}/geometry", geometry_handler(lambda: self.evidence.cameras), Access.VIEWER)
        self.login.routes(app)
        self.register.routes(app)
        self.evidence.routes(app)
        self.rates.routes(app)
        self.live.routes(app)
        self.cameras.routes(app)

    async def _index(self, request: web.Request) -> web.FileResponse:
        """The incidents page; an auditor who does not see this station's incidents lands on the register."""
        user = request[SESSION].user
        if reads_register(user) and not user.views(self.settings.station):
            raise web.HTTPFound("/register")
        return web.FileResponse(STATIC / "index.html")

    async def _list(self, request: web.Request) -> web.Response:
        """``GET /api/incidents``: the live list (open incidents and those closed recently), newest first.

        ``?state=open`` gives the open ones only. ``?state=closed[&before=<cursor>][&limit=50]`` pages
        the history of closed incidents from the alerts topic, newest closing first; the answer's
        ``next`` is the cursor of the following page (null after the oldest). 400 for another state, a
        bad cursor or a limit outside 1-200; 503 when the broker cannot be read.
        """
        query = request.query
        state = query.get("state", "")
        if state not in ("", "open", "closed"):
            raise web.HTTPBadRequest(text=f"state {state[:40]!r}: expected 'open' or 'closed' (the history)")
        if state != "closed" and ("before" in query or "limit" in query):
            raise web.HTTPBadRequest(text="'before' and 'limit' page the history: use them with state=closed")
        body: dict[str, Any] = {"station": self.settings.station}
        if state == "closed":
            try:
                limit = int(query.get("limit", HISTORY_LIMIT))
            except ValueError:
                limit = 0
            if not 1 <= limit <= HISTORY_MAX:
                raise web.HTTPBadRequest(text=f"limit: expected an integer from 1 to {HISTORY_MAX}")
            try:
                page = await closed_page(self.settings.kafka, self.alerts, query.get("before") or None, limit)
            except CursorError as exc:
                raise web.HTTPBadRequest(text=str(exc)) from None
            except BrokerUnavailable as exc:
                raise web.HTTPServiceUnavailable(text=f"the history cannot be read now: {exc}") from None
            body.update(incidents=[incident_json(i) for i in page.incidents], next=page.next)
            return web.json_response(body)
        items = [i for i in reversed(self.incidents.live())
                 if state != "open" or i.state != Incident.STATE_CLOSED]
        body.update(incidents=[incident_json(i) for i in items])
        return web.json_response(body)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/events``: server-sent events, see :mod:`vigie.station.events` for the stream's shape."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        subscriber = self.events.subscribe()
        try:
            await self._send_all(response, "connect", 0)
            checked = quiet_since = time.monotonic()
            while True:
                try:
                    item = await asyncio.wait_for(subscriber.get(), SESSION_CHECK_S)
                except asyncio.TimeoutError:
                    self.incidents.prune()  # closed incidents expire even when no alert comes
                    item = None
                if time.monotonic() - checked >= SESSION_CHECK_S:  # also while events keep coming
                    checked = time.monotonic()
                    if not await self._still_allowed(request):
                        break  # logged out, expired or disabled: the browser reconnects and gets 401
                if item is None:
                    if time.monotonic() - quiet_since < KEEP_ALIVE_S:
                        continue
                    item = ": keep-alive\n\n"
                quiet_since = time.monotonic()
                if item is CLOSE:
                    break
                if item is RESYNC:
                    dropped, subscriber.dropped = subscriber.dropped, 0
                    await self._send_all(response, "overflow", dropped)
                else:
                    await response.write(item.encode())
        except (ConnectionError, asyncio.CancelledError):  # the console went away, or the server stops
            pass
        finally:
            self.events.unsubscribe(subscriber)
        return response

    async def _still_allowed(self, request: web.Request) -> bool:
        """True while the event stream's session lives and its user still sees this station."""
        info = await self.auth.session_of(request, touch=False)  # an open console is not activity
        return info is not None and info.user.views(self.settings.station) and not info.user.must_change_password

    async def _send_all(self, response: web.StreamResponse, reason: str, dropped: int) -> None:
        """Write ``resync``, every incident held, oldest first, then every camera shown, straight to the socket
        (not via the queue)."""
        await response.write(sse("resync", {"reason": reason, "dropped": dropped}).encode())
        for n, incident in enumerate(self.incidents.live(), 1):
            await response.write(sse("incident", incident_json(incident)).encode())
            if n % 200 == 0:
                await asyncio.sleep(0)  # let the consumer and the other consoles run during a long list
        for camera in self.cameras.items():
            await response.write(sse("camera", camera).encode())

    def _incident(self, request: web.Request) -> Incident:
        incident = self.incidents.get(request.match_info["id"])
        if incident is None:
            raise web.HTTPNotFound(text="no such incident at this station")
        return incident

    async def _snapshot(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        if incident.snapshot.topic != self.topics.frames.name:
            raise web.HTTPNotFound(text="this incident has no snapshot in the frames topic")
        key = f"{incident.id}@{incident.snapshot.partition}:{incident.snapshot.offset}"  # the snapshot follows
        data = self._snapshots.get(key)
        if data is None:
            record = await fetch_record(self.settings.kafka, incident.snapshot)
            if record is None:
                raise web.HTTPGone(text="the frame is no longer kept (retention)")
            data = self.topics.frames.decode(record.value).data
            self._snapshots.put(key, data)
        try:
            await self._audit(request, AuditEntry.KIND_VIEW, incident, "snapshot")
        except KafkaError:
            raise web.HTTPServiceUnavailable(text="the view could not be written to the register: "
                                                  "the image is not shown; try again") from None
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _audit(self, request: web.Request, kind: int, incident: Incident, detail: str) -> None:
        """Write a view or action entry of the logged-in user on ``incident``; raises KafkaError."""
        await self.login.audit(kind, request, request[SESSION].user.name, camera_id=incident.camera_id,
                               incident_id=incident.id, record=incident.snapshot, detail=detail)

    async def _action(self, request: web.Request) -> web.Response:
        """POST ``{"action": "acknowledge|hold|resume|assign|escalate|comment|close", "comment": "text",
        "assignee": "user", "verdict": "confirmed|false_alarm|test", "reason": "shadow_or_light|..."}``: 202 once
        published.

        400 (nothing published) for a body that is not such an object, an unknown key (named, with the
        accepted ones), or a field the action needs missing (named): ``comment`` for a comment, ``assignee``
        for assign, ``verdict`` for close, ``reason`` for a false alarm; or an assignee who is not an enabled
        operator or supervisor of this station. 403: assign by a non-supervisor, any action on an escalated
        incident by a non-supervisor. 409: a closed incident, or a transition the correlator's table refuses
        (:func:`vigie.correlator.incidents.refusal`).
        """
        incident = self._incident(request)
        user = request[SESSION].user
        body, kind = action_body(await read_json(request, SHAPE))
        action = OperatorAction(
            id=uuid.uuid4().hex, incident_id=incident.id, camera_id=incident.camera_id, kind=kind,
            operator=user.name, station=self.settings.station, at_ns=time.time_ns(),
            comment=body.get("comment", ""), assignee=body.get("assignee", ""),
            verdict=VERDICTS.get(body.get("verdict", ""), 0), reason=REASONS.get(body.get("reason", ""), 0),
        )
        if kind == OperatorAction.KIND_ASSIGN:
            if not user.supervisor:
                raise web.HTTPForbidden(text="only a supervisor assigns an incident")
            await self._check_assignee(action.assignee)
        if incident.state == Incident.STATE_ESCALATED and not user.supervisor:
            raise web.HTTPForbidden(text="this incident is escalated: only a supervisor acts on it")
        why = refusal(incident, action)
        if why:  # the correlator would refuse it: nothing to record
            raise web.HTTPConflict(text=REFUSED.get(why, f"'{body['action']}' does not apply to an incident "
                                                         f"{incident_json(incident)['state']} ({why})"))
        try:  # recorded before it is done: the register never misses an action
            await self._audit(request, AuditEntry.KIND_ACTION, incident, describe(body))
        except KafkaError:
            raise web.HTTPServiceUnavailable(text="the action could not be written to the register: "
                                                  "nothing was done; try again") from None
        topic = self.topics.actions
        await self._producer.send_and_wait(topic.name, topic.encode(action), key=topic.key(incident.camera_id))
        self.metrics.records_out(topic.name).inc()
        log.info("operator action", extra={"action": body["action"], "incident": incident.id})
        return web.json_response({"id": action.id, "incident": incident.id, "action": body["action"]}, status=202)

    async def _check_assignee(self, name: str) -> None:
        """Raise HTTPBadRequest unless ``name`` is an enabled operator or supervisor account of this station."""
        account = await self.login.accounts.get(name)
        if (account is None or account.disabled or self.settings.station not in account.stations
                or not {"operator", "supervisor"} & set(account.roles)):
            raise web.HTTPBadRequest(text=f"assignee {name[:64]!r}: no enabled operator or supervisor account "
                                          f"of station {self.settings.station} has this name")

