"""Service lifecycle: start, run until one stop signal, drain, stop; health and metrics over HTTP.

Every service is a :class:`Service`. :func:`serve` first lets it read and check its
configuration (:meth:`Service.prepare`, so a bad file is reported before anything else),
then installs SIGTERM/SIGINT handlers with ``loop.add_signal_handler`` that set one stop
event, starts an HTTP server with ``/healthz`` (a :class:`State` and the service's own
details) and ``/metrics`` (Prometheus text format), runs the service, and on the signal
lets it drain before stopping its components in reverse order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from vigie.core.errors import ConfigError
from vigie.core.metrics import ServiceMetrics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

log = logging.getLogger(__name__)


class State(enum.Enum):
    """Lifecycle state reported by ``/healthz``."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


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
        self.state = State.STARTING
        self.topics = Topics(kafka.namespace)
        self.metrics = ServiceMetrics(self.name, self.registry)

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

    def routes(self, app: web.Application) -> None:
        """Add service-specific HTTP routes to ``app`` (the station serves its console here)."""

    async def __aenter__(self) -> "Service":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def http_app(service: Service) -> web.Application:
    """The HTTP application of ``service``: ``/healthz``, ``/metrics`` and its own routes."""

    async def healthz(_: web.Request) -> web.Response:
        ok = service.state in (State.RUNNING, State.STARTING)
        body = {"service": service.name, "state": service.state.value, **service.health()}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(service.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    service.routes(app)
    return app


async def serve(service: Service, host: str, port: int, *, drain_timeout_s: float = 30.0) -> int:
    """Run ``service`` until SIGTERM or SIGINT; returns the process exit code (0 on a clean stop).

    The configuration is read first (:meth:`Service.prepare`); a ``ConfigError`` there is
    raised before anything listens. Then the HTTP server comes up (so ``/healthz`` says
    ``starting``) and goes down last.
    """
    try:
        await service.prepare()
    except ConfigError as exc:  # the caller prints it and exits 2
        log.error("%s: configuration error: %s", service.name, exc)
        service.state = State.FAILED
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(http_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("%s: http on %s:%d", service.name, host, port)
    code = 0
    config_error: ConfigError | None = None
    try:
        await service.start()
        service.state = State.RUNNING
        log.info("%s: running", service.name)
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
    except ConfigError as exc:  # the caller prints it and exits 2; no traceback for a bad setting
        log.error("%s: configuration error: %s", service.name, exc)
        service.state = State.FAILED
        config_error = exc
    except Exception:
        log.exception("%s: failed", service.name)
        service.state = State.FAILED
        code = 1
    finally:
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
