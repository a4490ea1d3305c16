"""/healthz and /livez of every service built on vigie.core.lifecycle, without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from vigie.core.lifecycle import Service, State, http_app
from vigie.core.settings import KafkaSettings


class _Cameras(Service):
    name = "cameras"

    def __init__(self) -> None:
        super().__init__(KafkaSettings())
        self.failing: dict[str, str] = {}

    def degraded(self) -> dict[str, Any]:
        return {"cameras": dict(self.failing)} if self.failing else {}


def _probe(service: Service) -> dict[str, tuple[int, dict]]:
    async def go() -> dict[str, tuple[int, dict]]:
        async with TestClient(TestServer(http_app(service))) as client:
            out = {}
            for path in ("/healthz", "/livez"):
                response = await client.get(path)
                out[path] = response.status, await response.json()
            return out

    return asyncio.run(go())


def test_healthz_is_503_until_ready_200_running_or_degraded_and_livez_200_unless_failed() -> None:
    """Defect: /healthz answered 200 while a service was still starting (a readiness probe passed), and a
    service with part of its work failing said ``running``. Now: 503 ``starting`` saying what it waits for;
    200 ``running``; 200 ``degraded`` naming what fails (cameras, the broker); 503 draining or failed.
    /livez stays 200 while the service waits or is degraded, so liveness does not restart it."""
    service = _Cameras()
    service.waiting_for = "the Kafka broker at 127.0.0.1:9 (attempt 3): KafkaConnectionError: Unable to bootstrap"
    seen = _probe(service)
    assert seen["/healthz"][0] == 503 and seen["/healthz"][1]["state"] == "starting"
    assert seen["/healthz"][1]["waiting_for"] == service.waiting_for
    assert seen["/livez"] == (200, {"service": "cameras", "state": "starting", "alive": True})

    service.state, service.waiting_for = State.RUNNING, ""
    status, body = _probe(service)["/healthz"]
    assert (status, body["state"]) == (200, "running") and "degraded" not in body and "waiting_for" not in body

    service.failing = {"cam-2": "failed: camera cam-2: file not found", "cam-3": "reconnecting: timed out"}
    status, body = _probe(service)["/healthz"]
    assert (status, body["state"]) == (200, "degraded") and body["degraded"]["cameras"] == service.failing

    service.failing = {}
    service.broker_error, service.broker_error_since_ns = "KafkaError: Unable to get cluster metadata", 1
    seen = _probe(service)
    assert seen["/healthz"][0] == 200 and seen["/healthz"][1]["degraded"]["broker"]["error"] == service.broker_error
    assert seen["/livez"][0] == 200

    service.state = State.DRAINING
    assert _probe(service)["/healthz"][0] == 503
    service.state = State.FAILED
    seen = _probe(service)
    assert seen["/healthz"][0] == 503 and seen["/livez"][0] == 503
