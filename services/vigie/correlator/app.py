"""The correlator: a faust-streaming app that turns anomalies into incidents and routes them.

Stages, in order (see :func:`create_app`):

1. consume ``anomalies`` (keyed by camera id); a record that does not parse goes to
   ``deadletter`` with its reason;
2. merge it into the camera's open incidents, kept in the ``incidents`` table
   (a faust table: state survives restarts through its changelog topic);
3. publish new and changed incidents to ``incidents`` and to ``alerts.<station>`` for
   every station the routing table gives the camera;
4. consume ``actions`` (acknowledge, assign, hold, resume, escalate, comment, close) and publish the
   result the same way;
5. every second, send the escalations due after a delay (:mod:`vigie.correlator.escalation`) of the
   cameras whose table partitions this worker owns to ``actions``, where stage 4 applies them.

An anomaly with ``withdraws`` set is the object-class stage's late verdict against an anomaly published
before it (:mod:`vigie.detector.verdicts`): the incident it opened is closed as a false alarm
(:func:`~vigie.correlator.incidents.withdraw_anomaly`).

What the correlator does itself (an escalation after a delay, a reopening, a withdrawal) is written to the
``audit`` topic with operator ``vigie``, after the incident is published.

The anomalies and actions topics are both keyed by camera id with the same partition
count, so one worker owns a camera's table entry and both streams of it. For each record
the agent publishes (and waits for the broker's acknowledgement), then writes the table
and waits for its changelog record (:mod:`vigie.correlator.table`), and only then takes the
next record of that partition, acknowledging this one, whose offset faust may then commit
(partitions are handled side by side, :mod:`vigie.correlator.lanes`): a crash replays inputs rather than losing
them. Replays change nothing: every anomaly and action id is kept in the camera's table
entry (:mod:`vigie.correlator.incidents`). /healthz reports faust's rebalance and recovery
state (:mod:`vigie.correlator.health`). README, "Delivery guarantees", states the guarantee.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable

import faust
from google.protobuf.message import DecodeError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from vigie.contracts.v1 import Anomaly, AuditEntry, CameraIncidents, DeadLetter, Incident, OperatorAction
from vigie.core.audit import entry, send_once
from vigie.core.errors import MalformedMessage
from vigie.core.kafka import MAX_RECORD_BYTES, BrokerProbe, key_partition, throttle_client_logs
from vigie.core.kafka_security import faust_credentials
from vigie.core.logs import logging_config
from vigie.core.metrics import ServiceMetrics
from vigie.core.topics import CAMERA_PARTITIONS, LONGEST_RETENTION_MS, Topic, Topics
from vigie.correlator.config import CorrelatorSettings
from vigie.correlator.offsets import OffsetGuard, is_guard_key
from vigie.correlator.health import STALLED_S, WorkerHealth
from vigie.correlator.escalation import due_escalations
from vigie.correlator.lanes import Lanes
from vigie.correlator.incidents import REFUSALS, SYSTEM, Change, apply_action, merge_anomaly, withdraw_anomaly
from vigie.correlator.startup import check_topics, wait_to_start
from vigie.correlator.table import DurableTable

log = logging.getLogger(__name__)

SERVICE = "correlator"
#: Seconds between two sends of the same automatic escalation while it waits to be applied.
RESEND_S = 30.0


def create_app(settings: CorrelatorSettings, registry: CollectorRegistry | None = None,
               clock_ns: Callable[[], int] = time.time_ns) -> faust.App:
    """Build the faust app for ``settings``; run it with ``faust.Worker(app).execute_from_commandline()``.

    ``clock_ns``: the correlator's clock, ns since the epoch (tests pass their own).
    """
    ns = settings.kafka.namespace
    catalogue = Topics(ns)
    metrics = ServiceMetrics(SERVICE, registry or CollectorRegistry())
    app = faust.App(
        f"{ns}vigie-correlator",
        broker=[f"kafka://{hp}" for hp in settings.kafka.bootstrap.split(",")],
        # SASL and TLS as every other client of Vigie (vigie.core.kafka_security); None: PLAINTEXT
        broker_credentials=faust_credentials(settings.kafka),
        store="memory://",
        datadir=settings.data_dir or f"{tempfile.gettempdir()}/{{conf.id}}-data",
        topic_partitions=CAMERA_PARTITIONS,
        topic_replication_factor=settings.kafka.replication_factor,
        web_host=settings.http_host,
        web_port=settings.http_port,
        web_bind=settings.http_host,
        # the incident table holds camera events: no /table pages; one worker owns its keys: no /router
        web_tables_enabled=False,
        web_router_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        table_cleanup_interval=60.0,
        autodiscover=False,
        Table=DurableTable,
        producer_max_request_size=MAX_RECORD_BYTES,
        consumer_max_fetch_size=MAX_RECORD_BYTES,
    )

    def raw_topic(topic: Topic) -> faust.TopicT:
        return app.topic(
            topic.name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=topic.spec.partitions,
        )

    anomalies, actions = raw_topic(catalogue.anomalies), raw_topic(catalogue.actions)
    incidents_out, deadletter = raw_topic(catalogue.incidents), raw_topic(catalogue.deadletter)
    audit = raw_topic(catalogue.audit)
    alerts = {s: raw_topic(catalogue.alerts(s)) for s in settings.routing.all_stations()}
    # Keys and values are bytes (camera id, serialized CameraIncidents). faust writes and reads
    # the changelog with the table's own key/value serializers, derived from key_type and
    # value_type (json when absent: recovery then fails on every record); bytes gives "raw".
    table = app.Table(
        "incidents", default=None, partitions=CAMERA_PARTITIONS, key_type=bytes, value_type=bytes,
        # The changelog holds incident state (no image); it too keeps nothing past 30 days.
        extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(LONGEST_RETENTION_MS)},
    )

    health = WorkerHealth(app)
    guard = OffsetGuard(settings.kafka, table, metrics.registry, (catalogue.anomalies.name, catalogue.actions.name))
    refused = Counter("vigie_correlator_refused", "Anomalies and actions that changed nothing, by input and reason",
                      ["input", "reason"], registry=metrics.registry)
    for reason in REFUSALS:
        refused.labels("action", reason)
    refused.labels("anomaly", "duplicate")

    async def dead_letter(event: faust.EventT, reason: str) -> None:
        msg = event.message
        letter = DeadLetter(
            source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key or b"",
            value=msg.value or b"", reason=reason, service=SERVICE, at_ns=time.time_ns(),
        )
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
        metrics.errors("dead_letter").inc()
        await (await deadletter.send(key=msg.key, value=catalogue.deadletter.encode(letter)))  # acknowledged
        metrics.records_out(catalogue.deadletter.name).inc()

    def load(key: bytes) -> CameraIncidents:
        """The camera's entry; an unreadable one is replaced by an empty entry, counted, and shown in /healthz."""
        book = CameraIncidents()
        raw = table.get(key)
        if raw:
            try:
                book.ParseFromString(raw)
            except DecodeError as exc:
                camera = key.decode(errors="replace")
                log.error("incident table entry of camera %s unreadable (%s): its incidents are dropped", camera, exc)
                metrics.errors("table_entry_unreadable").inc()
                health.unreadable[camera] = f"table entry unreadable ({exc}), its incidents dropped"
                book = CameraIncidents()
        return book

    def refuse(kind: str, change: Change, record_id: str, subject: str) -> None:
        refused.labels(kind, change.refused).inc()
        log.warning("%s %s refused: %s", kind, record_id, change.refused, extra={"incident": subject})

    async def publish(change: Change, key: bytes) -> None:
        """Publish the incident to ``incidents`` and its stations; returns once the broker acknowledged every copy.

        Called before the table is written: a crash in between replays the input, which is not
        yet in the ledger and publishes the same revision again (consumers key on id and revision),
        instead of a table saying "done" for an alert that never left.
        """
        incident: Incident = change.incident
        value = catalogue.incidents.encode(incident)
        pending = [await incidents_out.send(key=key, value=value)]
        metrics.records_out(catalogue.incidents.name).inc()
        for station in incident.stations:
            if station in alerts:
                pending.append(await alerts[station].send(key=key, value=value))
                metrics.records_out(alerts[station].get_topic_name()).inc()
        await asyncio.gather(*pending)
        if change.opened:
            metrics.end_to_end_seconds.observe(max(0.0, (time.time_ns() - incident.first_seen_ns) / 1e9))
            log.info("incident opened", extra={"incident": incident.id, "kind": incident.kind,
                                               "camera": incident.camera_id, "stations": list(incident.stations)})

    async def register(incident: Incident | None, detail: str, action: OperatorAction | None = None) -> None:
        """Write what the correlator did to ``incident`` (or refused of ``action``) to the register (operator
        "vigie"); waits for the broker.

        Before the table write: a crash in between writes the entry again on the replay (same text)."""
        camera_id = incident.camera_id if incident is not None else action.camera_id
        message = entry(AuditEntry.KIND_ACTION, service=SERVICE, user=SYSTEM, camera_id=camera_id,
                        incident_id=incident.id if incident is not None else action.incident_id,
                        record=incident.snapshot if incident is not None else None, detail=detail, at_ns=clock_ns())
        await (await audit.send(key=camera_id.encode(), value=catalogue.audit.encode(message)))
        metrics.records_out(catalogue.audit.name).inc()

    async def parse(event: faust.EventT, topic: Topic, *required: str):  # noqa: ANN202
        """The event's message, or None once it is dead-lettered (unparsable, or a required field empty)."""
        metrics.records_in(topic.name).inc()
        try:
            message = topic.decode(event.value)
            missing = [name for name in required if not getattr(message, name)]
            if missing:
                raise MalformedMessage(f"{topic.message_type.__name__} without {', '.join(missing)}")
        except MalformedMessage as exc:
            await dead_letter(event, str(exc))
            return None
        return message

    async def on_anomaly(event: faust.EventT) -> None:
        started = time.perf_counter()
        anomaly = await parse(event, catalogue.anomalies, "id", "camera_id", "kind")
        if anomaly is None:
            return
        key = event.key or catalogue.anomalies.key(anomaly.camera_id)
        book = load(key)
        if anomaly.withdraws:  # the object-class stage rejected an anomaly published before its verdict
            await on_withdrawal(anomaly, key, book)
            return
        stations = settings.routing.stations_for(anomaly.camera_id)
        priority = settings.priority.priority_for(anomaly.kind, anomaly.camera_id)
        change = merge_anomaly(book, anomaly, settings.merge, stations, clock_ns(), priority)
        if change.refused:  # delivered again: the table has it already
            refuse("anomaly", change, anomaly.id, "")
            return
        if change.publish:
            await publish(change, key)
        if change.reopened:
            await register(change.incident, f"reopened by anomaly {anomaly.id} (reopened "
                                            f"{change.incident.reopened} time(s))")
        table[key] = book.SerializeToString()
        metrics.stage_seconds("correlate", anomaly.camera_id).observe(time.perf_counter() - started)

    async def on_withdrawal(anomaly: Anomaly, key: bytes, book: CameraIncidents) -> None:
        change = withdraw_anomaly(book, anomaly, clock_ns(), settings.merge)
        if change.refused:
            refuse("anomaly", change, anomaly.id, anomaly.withdraws)
            return
        await publish(change, key)
        await register(change.incident, change.incident.history[-1].detail)
        table[key] = book.SerializeToString()

    async def on_action(event: faust.EventT) -> None:
        action = await parse(event, catalogue.actions, "incident_id", "camera_id")
        if action is None:
            return
        key = event.key or catalogue.actions.key(action.camera_id)
        book = load(key)
        steps = settings.routing.escalation_for(action.camera_id)
        change = apply_action(book, action, clock_ns(), settings.merge, steps)
        if change.refused:  # logged and counted, never published as a state change
            refuse("action", change, action.id, action.incident_id)
            if change.refused != "duplicate" and not action.automatic:  # the station recorded the request
                word = OperatorAction.Kind.Name(action.kind).removeprefix("KIND_").lower()
                await register(change.incident, f"refused {word} by {action.operator}: {change.refused}", action)
            return
        if change.publish:
            await publish(change, key)
        if action.automatic:
            await register(change.incident, change.incident.history[-1].detail)
        table[key] = book.SerializeToString()
        if change.publish:
            log.info("operator %s: %s, incident now %s", action.operator, OperatorAction.Kind.Name(action.kind),
                     Incident.State.Name(change.incident.state), extra={"incident": change.incident.id})

    async def consume(stream: faust.StreamT, handle) -> None:  # noqa: ANN001
        """Each record of ``stream`` in offset order within its partition, partitions side by side (:mod:`.lanes`):
        records the consumer skipped are read again and handled first (:mod:`.offsets`); the table writes are
        acknowledged before the record is (:mod:`.table`), and faust commits a partition's offsets only up to
        the first record not acknowledged."""
        lanes = Lanes()
        manual = stream.noack()

        async def work(event: faust.EventT) -> None:
            msg = event.message
            lane = f"{msg.topic}[{msg.partition}]"
            health.busy[lane] = (time.monotonic(), f"{lane}@{msg.offset}")
            for record in [*await guard.missing(event), event]:
                await handle(record)
                guard.done(record)
                await table.written(msg.partition)
            await manual.ack(event)
            del health.busy[lane]
            health.last_done = time.monotonic()

        try:
            async for event in manual.events():
                await lanes.add(event.message.partition, lambda event=event: work(event))
            await lanes.join()
        finally:
            lanes.cancel()

    @app.agent(anomalies)
    async def correlate(stream: faust.StreamT) -> None:
        await consume(stream, on_anomaly)

    @app.agent(actions)
    async def operate(stream: faust.StreamT) -> None:
        await consume(stream, on_action)

    @app.task
    async def quiet_client_logs() -> None:
        """The Kafka client's repeated connection errors, one line per kind every 30 s (once faust's
        worker has set up logging, which replaces the handlers)."""
        throttle_client_logs()

    sent: dict[str, float] = {}  # automatic escalation id -> monotonic time sent

    @app.timer(interval=1.0)
    async def escalate_by_delay() -> None:
        """Send the escalations due in the camera entries of the partitions this worker owns (it never writes the
        table: the action agent applies them, in order with the operators' actions, once each)."""
        if health.state()["state"] not in ("running", "degraded"):
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == catalogue.actions.name}
        now, clock = clock_ns(), time.monotonic()
        for old in [k for k, at in sent.items() if clock - at > RESEND_S]:
            del sent[old]
        for n, (key, raw) in enumerate(list(table.items()), 1):
            if n % 500 == 0:
                await asyncio.sleep(0)  # let the agents run during a long table (about 10 ms per 500 cameras)
            if not raw or is_guard_key(key) or key_partition(key, CAMERA_PARTITIONS) not in owned:
                continue
            book = CameraIncidents()
            try:
                book.ParseFromString(raw)
            except DecodeError:  # the agents report it (load) when the camera's next record comes
                continue
            camera = key.decode(errors="replace")
            for action in due_escalations(book, settings.routing.escalation_for(camera), now):
                if action.id not in sent:
                    sent[action.id] = clock
                    await actions.send(key=key, value=catalogue.actions.encode(action))
                    log.info("escalation due: %s", action.id, extra={"incident": action.incident_id})

    probe = BrokerProbe(settings.kafka)

    @app.timer(interval=5.0)
    async def watch() -> None:
        """Whether the broker answers (faust itself waits for it in silence: /healthz says so), and whether
        the worker takes the records waiting on its partitions (:data:`~.health.STALLED_S`)."""
        why = await probe.check() or ""
        if why and not health.broker_error:
            log.warning("the Kafka broker at %s does not answer: %s", settings.kafka.bootstrap, why)
        elif health.broker_error and not why:
            log.info("the Kafka broker answers again")
        health.broker_error = why
        if why or health.state()["state"] != "running" or time.monotonic() - health.last_done < STALLED_S:
            return
        inputs = {catalogue.anomalies.name, catalogue.actions.name}
        owned = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
        try:
            ends = await app.consumer.highwaters(*owned) if owned else {}
        except Exception as exc:  # noqa: BLE001 - a rebalance under way: next time
            log.debug("highwaters not read: %s", exc)
            return
        waiting = sum(max(0, end - (guard.expected(tp.topic, tp.partition) or end)) for tp, end in ends.items())
        if waiting:
            health.fatal = (f"stalled: {waiting} record(s) wait on its partitions and none was taken for "
                            f"{time.monotonic() - health.last_done:.0f} s; stopping to be restarted (they replay "
                            "from the committed offsets)")
            log.error("%s", health.fatal)
            os.kill(os.getpid(), signal.SIGTERM)

    @app.page("/metrics")
    async def metrics_page(self, request):  # noqa: ANN001 - faust view signature
        # aiohttp refuses a charset inside content_type=: the exposition type goes in the header.
        return self.bytes(generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self, request):  # noqa: ANN001
        state = health.state()
        return self.json({"service": SERVICE, **state, "stations": sorted(alerts)},
                         status=200 if state["state"] in ("running", "degraded") else 503)

    @app.page("/livez")
    async def livez(self, request):  # noqa: ANN001
        """Liveness: 200 while the worker lives, also while it starts, recovers or is degraded (a restart would
        not help then); 503 once it failed (its table cannot be restored) or drains."""
        state = health.state()["state"]
        return self.json({"service": SERVICE, "state": state}, status=503 if state in ("failed", "draining") else 200)

    app.vigie_metrics = metrics  # type: ignore[attr-defined]
    app.vigie_health = health  # type: ignore[attr-defined]
    app.vigie_table = table  # type: ignore[attr-defined]
    return app


def _check_topics(settings: CorrelatorSettings) -> None:
    """:func:`vigie.correlator.startup.check_topics`, for callers outside an event loop. Raises ConfigError."""
    asyncio.run(check_topics(settings))


def run(settings: CorrelatorSettings, loglevel: str = "info") -> int:
    """Run the correlator worker until SIGTERM/SIGINT (faust drains and commits); returns the exit code.

    A broker that does not answer yet, and topics without a leader yet, are waited for while
    ``/healthz`` says so (:func:`vigie.correlator.startup.wait_to_start`).

    Raises:
        ConfigError: its topics do not exist (see :func:`vigie.correlator.startup.check_topics`).
    """
    throttle_client_logs()
    if not asyncio.run(wait_to_start(settings)):
        return 0
    app = create_app(settings)
    asyncio.run(send_once(settings.kafka, entry(AuditEntry.KIND_SERVICE_STARTED, service=SERVICE,
                                                detail=f"{SERVICE} starting")))
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False,
                          logging_config=logging_config(SERVICE, loglevel.upper()))
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    if app.vigie_health.fatal:  # it stopped itself: a supervisor is to restart it
        code = code or 1
    asyncio.run(send_once(settings.kafka, entry(AuditEntry.KIND_SERVICE_STOPPED, service=SERVICE,
                                                detail=f"{SERVICE} stopped (exit {code})")))
    log.info("%s: stopped (exit %d)", SERVICE, code)
    return code
