"""Service lifecycle: wait for the broker, start, run until one stop signal, drain, stop; health over HTTP.

Every service is a :class:`Service`. :func:`serve` first lets it read and check its
configuration (:meth:`Service.prepare`, so a bad file is reported before anything else),
then installs SIGTERM/SIGINT handlers with ``loop.add_signal_handler`` that set one stop
event and starts an HTTP server. Then it waits for the Kafka broker and starts the service,
retrying with capped exponential back-off for as long as the broker does not answer (one
log line every few seconds at most, no traceback; ``/healthz`` says what it waits for), runs
it, checks every ``check_interval_s`` that the broker still answers, and on the signal lets
it drain before stopping its components in reverse order.

HTTP:

* ``/healthz`` (readiness): 503 while ``starting``, ``draining``, ``stopped`` or ``failed``;
  200 while ``running``, and 200 while ``degraded``: the service works but part of its work
  fails (the broker does not answer, some cameras or partitions fail); the body's
  ``degraded`` object says which. A degraded service stays in its load balancer: what
  still works keeps working, and restarting it would not bring back a broker or a camera.
* ``/livez`` (liveness): 200 as long as the process answers and has not failed; a service
  waiting for its broker or degraded is alive, so Kubernetes does not restart it.
* ``/metrics``: Prometheus text format.

The register hears of every service's life: :func:`serve` queues a ``service_started`` audit
entry once the service runs and a ``service_stopped`` one (with the exit code) when it stops;
services queue their own (cameras started, stopped, configured) with :meth:`Service.audit_event`.
They are sent in the background by :class:`~vigie.core.audit.AuditQueue`, which waits out a
broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import signal
import ssl
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import AuditLog, AuditQueue, entry
from vigie.core.errors import ConfigError
from vigie.core.kafka import (BrokerProbe, describe_broker_error, make_producer, retriable, retry_delays,
                              throttle_client_logs)
from vigie.core.metrics import ServiceMetrics
from vigie.core.secrets import redact
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

log = logging.getLogger(__name__)
#: At most one "waiting for the broker" line per this many seconds.
WAIT_LOG_EVERY_S = 5.0


class State(enum.Enum):
    """Lifecycle state reported by ``/healthz`` (``degraded`` is ``running`` with part of the work failing)."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


#: States in which ``/healthz`` answers 200 (ready).
READY_STATES = (State.RUNNING, State.DEGRADED)


class Service:
    """Base of every Vigie service.

    It owns the service's metrics registry, its :class:`ServiceMetrics` and the topic
    catalogue of its namespace. Subclasses implement :meth:`start` (connect, in order), :meth:`run` (the main loop,
    returning when ``stop`` is set, after draining) and :meth:`stop` (close, in reverse
    order). ``start`` and ``stop`` must be safe to call twice.
    """

    name = "service"

    def __init__(self, kafka: KafkaSettings, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.kafka = kafka
        self.state = State.STARTING
        self.topics = Topics(kafka.namespace)
        self.metrics = ServiceMetrics(self.name, self.registry)
        #: While starting: what the service waits for (empty once started).
        self.waiting_for = ""
        #: While running: why the broker does not answer (empty while it does), and since when (ns UTC).
        self.broker_error = ""
        self.broker_error_since_ns = 0
        #: Audit entries about the service's own work, sent by :func:`serve` (see :meth:`audit_event`).
        self.audit_queue = AuditQueue()

    def audit_event(self, kind: int, **fields: Any) -> None:
        """Queue an audit entry about the service's own work (``AuditEntry.KIND_*``; fields of
        :func:`vigie.core.audit.entry`). Never blocks nor raises; the entry is sent in the background."""
        self.audit_queue.put(entry(kind, service=self.name, **fields))

    async def prepare(self) -> None:
        """Read and check the service's configuration files, before the HTTP server starts.

        Raises ``ConfigError`` for a bad file. Must be safe to call twice (``start``
        may call it for callers that do not use :func:`serve`).
        """

    async def start(self) -> None:
        """Connect to what the service needs."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain in-flight work and return."""
        await stop.wait()

    async def stop(self) -> None:
        """Flush and close everything opened by :meth:`start`, in reverse order."""

    def health(self) -> dict[str, Any]:
        """Service-specific details for ``/healthz``."""
        return {}

    def degraded(self) -> dict[str, Any]:
        """The parts of the service's work that fail now, e.g. ``{"cameras": {"cam-2": "failed: ..."}}``.

        Empty when everything works. While running, a non-empty answer (or a broker that does
        not answer) turns the reported state into ``degraded``.
        """
        return {}

    def report(self) -> tuple[State, dict[str, Any]]:
        """The state ``/healthz`` reports and its body (state, what it waits for, what is degraded, details)."""
        body: dict[str, Any] = {"service": self.name}
        state = self.state
        if state is State.STARTING and self.waiting_for:
            body["waiting_for"] = self.waiting_for
        if state is State.RUNNING:
            problems = dict(self.degraded())
            if self.broker_error:
                problems["broker"] = {"error": self.broker_error, "since_ns": self.broker_error_since_ns}
            if problems:
                state = State.DEGRADED
                body["degraded"] = problems
        return state, {**body, "state": state.value, **self.health()}

    def routes(self, app: web.Application) -> None:
        """Add service-specific HTTP routes to ``app`` (the station serves its console here)."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS of the HTTP server, None for plain HTTP (the default). Raises ConfigError for bad files."""
        return None

    async def __aenter__(self) -> "Service":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def http_app(service: Service) -> web.Application:
    """The HTTP application of ``service``: ``/healthz``, ``/livez``, ``/metrics`` and its own routes."""

    async def healthz(_: web.Request) -> web.Response:
        state, body = service.report()
        # redacted again as a whole, as log lines are: a camera password must not leave through an error text
        return web.Response(text=redact(json.dumps(body, default=str)), content_type="application/json",
                            status=200 if state in READY_STATES else 503)

    async def livez(_: web.Request) -> web.Response:
        alive = service.state is not State.FAILED
        return web.json_response({"service": service.name, "state": service.state.value, "alive": alive},
                                 status=200 if alive else 503)

    async def metrics(_: web.Request) -> web.Response:
        text = redact(generate_latest(service.registry).decode())
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics)
    service.routes(app)
    return app


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _stop_quietly(service: Service) -> None:
    """Undo a start that failed half-way, so that the next :meth:`Service.start` begins afresh."""
    try:
        await service.stop()
    except Exception as exc:  # noqa: BLE001 - the start already failed; its reason is what matters
        log.debug("%s: stopping after a failed start: %r", service.name, exc)


async def start_when_broker_answers(service: Service, probe: BrokerProbe, stop: asyncio.Event) -> bool:
    """Start ``service`` once its broker answers, retrying with capped exponential back-off.

    Each attempt checks the broker with ``probe`` and, when it answers, calls
    :meth:`Service.start`; a start that fails because the broker went away again (a
    :func:`~vigie.core.kafka.retriable` error) is undone with :meth:`Service.stop` and
    retried. Meanwhile ``service.waiting_for`` says what is awaited and one log line at
    most every ``WAIT_LOG_EVERY_S`` seconds says so too.

    Returns True once started, False when ``stop`` was set first.

    Raises:
        ConfigError: the service's configuration does not fit the cluster (e.g. missing topics).
        Exception: any other error of :meth:`Service.start`, which a retry would not fix.
    """
    kafka = service.kafka
    delays = retry_delays(kafka)
    attempt, last_log = 0, float("-inf")
    while not stop.is_set():
        attempt += 1
        reason = await probe.check()
        if reason is None:
            try:
                await service.start()
            except Exception as exc:
                if not retriable(exc):
                    raise
                reason = describe_broker_error(exc)
                await _stop_quietly(service)
            else:
                if attempt > 1:
                    log.info("%s: Kafka broker at %s answers, started after %d attempts",
                             service.name, kafka.bootstrap, attempt)
                service.waiting_for = ""
                return True
        delay = next(delays)
        service.waiting_for = f"the Kafka broker at {kafka.bootstrap} (attempt {attempt}): {reason}"
        if time.monotonic() - last_log >= WAIT_LOG_EVERY_S:
            last_log = time.monotonic()
            log.warning("%s: waiting for the Kafka broker at %s (attempt %d, next in %.1f s): %s",
                        service.name, kafka.bootstrap, attempt, delay, reason)
        await _sleep_unless(stop, delay)
    return False


async def watch_broker(service: Service, probe: BrokerProbe, stop: asyncio.Event) -> None:
    """Check every ``check_interval_s`` that the broker answers; keep ``service.broker_error`` up to date.

    Logs one line when the broker stops answering and one when it is back, with the outage's length.
    """
    down_since = 0.0
    while not stop.is_set():
        await _sleep_unless(stop, service.kafka.check_interval_s)
        if stop.is_set():
            return
        reason = await probe.check()
        if reason and not down_since:
            down_since = time.monotonic()
            service.broker_error_since_ns = time.time_ns()
            log.warning("%s: the Kafka broker at %s does not answer: %s", service.name, service.kafka.bootstrap,
                        reason)
        elif not reason and down_since:
            log.info("%s: the Kafka broker at %s answers again (unreachable for about %.0f s)", service.name,
                     service.kafka.bootstrap, time.monotonic() - down_since)
            down_since = 0.0
            service.broker_error_since_ns = 0
        service.broker_error = reason or ""


class _AuditSender:
    """The producer and task that send a running service's :attr:`Service.audit_queue`."""

    def __init__(self, service: Service, producer: Any, stop: asyncio.Event) -> None:
        self.service = service
        self.producer = producer
        self.log = AuditLog(producer, service.topics.audit)
        self.task = asyncio.create_task(service.audit_queue.run(self.log, stop), name=f"{service.name}.audit")

    @classmethod
    async def start(cls, service: Service, stop: asyncio.Event) -> "_AuditSender | None":
        """Start sending, after queueing ``service_started``; None (logged) when no producer can start."""
        service.audit_event(AuditEntry.KIND_SERVICE_STARTED, detail=f"{service.name} running")
        producer = make_producer(service.kafka)
        try:
            await producer.start()
        except Exception as exc:  # noqa: BLE001 - the service runs on; its entries stay queued
            log.warning("%s: audit producer not started: %s", service.name, describe_broker_error(exc))
            await producer.stop()
            return None
        return cls(service, producer, stop)

    async def close(self, code: int) -> None:
        """Queue ``service_stopped``, send what is queued (5 s at most) and stop the producer."""
        self.service.audit_event(AuditEntry.KIND_SERVICE_STOPPED, detail=f"{self.service.name} stopped (exit {code})")
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.service.audit_queue.drain(self.log, timeout_s=5.0)
        await self.producer.stop()


async def serve(service: Service, host: str, port: int, *, drain_timeout_s: float = 30.0) -> int:
    """Run ``service`` until SIGTERM or SIGINT; returns the process exit code (0 on a clean stop).

    The configuration is read first (:meth:`Service.prepare`); a ``ConfigError`` there is
    raised before anything listens. Then the HTTP server comes up (so ``/healthz`` says
    ``starting``, 503), the service starts once its broker answers (retried for as long as
    it takes: :func:`start_when_broker_answers`), and the HTTP server goes down last. A signal
    while waiting for the broker stops the service cleanly (exit 0).
    """
    try:
        await service.prepare()
        tls = service.ssl_context()
    except ConfigError as exc:  # the caller prints it and exits 2
        log.error("%s: configuration error: %s", service.name, exc)
        service.state = State.FAILED
        raise
    throttle_client_logs()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(http_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    log.info("%s: %s on %s:%d", service.name, "https" if tls else "http", host, port)
    probe = BrokerProbe(service.kafka)
    watch: asyncio.Task | None = None
    audit: _AuditSender | None = None
    code = 0
    config_error: ConfigError | None = None
    try:
        if await start_when_broker_answers(service, probe, stop):
            service.state = State.RUNNING
            log.info("%s: running", service.name)
            audit = await _AuditSender.start(service, stop)
            watch = asyncio.create_task(watch_broker(service, probe, stop), name=f"{service.name}.broker")
            work = asyncio.create_task(service.run(stop), name=f"{service.name}.run")
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            service.state = State.DRAINING
            stop.set()
            try:
                await asyncio.wait_for(work, drain_timeout_s)
            except asyncio.TimeoutError:
                log.error("%s: drain took over %.0f s, stopping anyway", service.name, drain_timeout_s)
                code = 1
            stopper.cancel()
        else:
            log.info("%s: stopped while waiting for the Kafka broker", service.name)
    except ConfigError as exc:  # the caller prints it and exits 2; no traceback for a bad setting
        log.error("%s: configuration error: %s", service.name, exc)
        service.state = State.FAILED
        config_error = exc
    except Exception:
        log.exception("%s: failed", service.name)
        service.state = State.FAILED
        code = 1
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        await probe.close()
        if audit is not None:
            await audit.close(code if config_error is None else 2)
        await service.stop()
        if service.state is not State.FAILED:
            service.state = State.STOPPED
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if config_error is not None:
        raise config_error
    log.info("%s: stopped (exit %d)", service.name, code)
    return code
