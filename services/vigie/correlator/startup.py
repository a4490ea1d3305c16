"""Before the faust worker starts: wait for the broker and the topics, answering health checks meanwhile.

faust's worker serves ``/healthz`` only once it runs; until then a correlator started before its
broker (or before ``vigie topics apply``) would answer nothing, and a liveness probe would restart
it for waiting. :func:`wait_to_start` serves a small page on the worker's address meanwhile:
``/healthz`` 503 ``starting`` with what it waits for, ``/livez`` 200; it retries with capped
exponential back-off (one log line every few seconds at most, no traceback) and returns once the
broker answers and every topic has a leader. SIGTERM or SIGINT while waiting stops it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from vigie.core.errors import ConfigError
from vigie.core.kafka import BrokerProbe, retry_delays, wait_for_topics
from vigie.core.topics import Topics
from vigie.correlator.config import CorrelatorSettings

log = logging.getLogger(__name__)


async def check_topics(settings: CorrelatorSettings) -> None:
    """Wait until the topics the worker reads and writes have leaders.

    Faust's partition assignor ignores a topic missing from the cluster metadata when the
    consumer group forms, and the worker would then idle until the next rebalance.

    Raises:
        ConfigError: a topic still missing after ``kafka.request_timeout_s`` seconds.
        BrokerUnavailable: no broker answers.
    """
    topics = Topics(settings.kafka.namespace)
    stations = settings.routing.all_stations()
    needed = [topics.anomalies, topics.actions, topics.incidents, topics.deadletter,
              *(topics.alerts(s) for s in stations)]
    missing = await wait_for_topics(settings.kafka, needed, settings.kafka.request_timeout_s)
    if missing:
        raise ConfigError(f"topics {', '.join(missing)} do not exist (or have no leader): run "
                          f"`vigie topics apply --stations {','.join(stations)}` first")


async def _wait_for_broker(settings: CorrelatorSettings, waiting: dict[str, str]) -> None:
    probe, delays, said, attempt = BrokerProbe(settings.kafka), retry_delays(settings.kafka), 0.0, 0
    try:
        while (why := await probe.check()) is not None:
            attempt += 1
            waiting["waiting_for"] = f"the Kafka broker at {settings.kafka.bootstrap} (attempt {attempt}): {why}"
            if time.monotonic() - said > 5.0:
                log.warning("waiting for the Kafka broker at %s: %s", settings.kafka.bootstrap, why)
                said = time.monotonic()
            await asyncio.sleep(next(delays))
    finally:
        await probe.close()


async def wait_to_start(settings: CorrelatorSettings) -> bool:
    """Wait for the broker and the topics while answering ``/healthz`` and ``/livez`` (see the module
    docstring). Returns True when the worker may start, False when a stop signal came first.

    Raises:
        ConfigError: a topic is missing (:func:`check_topics`).
    """
    waiting = {"waiting_for": f"the Kafka broker at {settings.kafka.bootstrap}"}

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"service": "correlator", "state": "starting", **waiting}, status=503)

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"service": "correlator", "state": "starting"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    loop = asyncio.get_running_loop()
    work = asyncio.current_task()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        work.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await _wait_for_broker(settings, waiting)
        waiting["waiting_for"] = "its topics to have leaders"
        await check_topics(settings)
        return True
    except asyncio.CancelledError:
        if not stopped:
            raise
        log.info("correlator: stopped while waiting to start (exit 0)")
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
