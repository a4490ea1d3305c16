"""The station's HTTP API, without a broker: operator actions are checked before anything is published."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from vigie.contracts.v1 import Incident
from vigie.core.lifecycle import http_app
from vigie.station.app import StationService, StationSettings


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value))


def _post(body: object, *, raw: str | None = None) -> tuple[int, str, list]:
    async def go() -> tuple[int, str, list]:
        station = StationService(StationSettings())
        station.incidents.put(Incident(id="i1", camera_id="cam", kind="abandoned_object", revision=1,
                                       updated_ns=time.time_ns()))
        station._producer = producer = _Producer()
        async with TestClient(TestServer(http_app(station))) as client:
            kwargs = {"data": raw} if raw is not None else {"json": body}
            response = await client.post("/api/incidents/i1/actions", **kwargs)
            return response.status, await response.text(), producer.sent

    return asyncio.run(go())


def test_unknown_key_is_rejected_naming_it_and_the_accepted_ones() -> None:
    status, text, sent = _post({"action": "comment", "text": "hi"})
    assert status == 400 and not sent
    assert "unknown key 'text'" in text and "action" in text and "comment" in text


@pytest.mark.parametrize("body", [{"action": "comment"}, {"action": "comment", "comment": "  "}])
def test_comment_action_needs_a_comment(body: dict) -> None:
    status, text, sent = _post(body)
    assert status == 400 and not sent and "comment" in text


@pytest.mark.parametrize("body, raw", [({"action": "teleport"}, None), (["comment"], None), (None, "{not json")])
def test_malformed_bodies_are_rejected(body: object, raw: str | None) -> None:
    status, text, sent = _post(body, raw=raw)
    assert status == 400 and not sent and "acknowledge" in text


def test_good_actions_are_published() -> None:
    for body in ({"action": "acknowledge"}, {"action": "comment", "comment": "bag checked"}):
        status, text, sent = _post(body)
        assert status == 202 and len(sent) == 1, text
