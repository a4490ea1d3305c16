"""The station's action API: a malformed action is refused (400) before anything is published, a good one is
published in the logged-in user's name. Real broker, real database, a logged-in console."""

from __future__ import annotations

import json

import pytest

from tests.station_console import read_topic, running_station, wait_for_incident
from tests.station_support import add_user_async, console_http, incident, login, publish, write_headers
from vigie.contracts.v1 import OperatorAction
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker

BAD = [
    ({"action": "comment", "text": "hi"}, ["unknown key 'text'", "action", "comment"]),
    ({"action": "comment"}, ["comment"]),
    ({"action": "comment", "comment": "  "}, ["comment"]),
    ({"action": "teleport"}, ["acknowledge"]),
    (["comment"], ["acknowledge"]),
    ("{not json", ["acknowledge"]),
]


async def test_malformed_actions_are_refused_and_good_ones_published(kafka, tmp_path) -> None:
    """Each malformed body is a 400 that says what is expected, and publishes nothing; acknowledge and a
    comment are published (202), once each, with the logged-in user as operator."""
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "agent7", "operator", "main")
    await publish(kafka, Topics(kafka.namespace).alerts("main"), [incident(1)])
    async with running_station(kafka, db_url) as (station, base), console_http() as http:
        await wait_for_incident(station, "inc-00001")
        me = await login(http, base, "agent7")
        headers = {**write_headers(base, me), "Content-Type": "application/json"}
        url = f"{base}/api/incidents/inc-00001/actions"
        for body, says in BAD:
            data = body if isinstance(body, str) else json.dumps(body)
            async with http.post(url, data=data, headers=headers) as response:
                text = await response.text()
                assert response.status == 400 and all(s in text for s in says), (body, text)
        assert await read_topic(kafka, Topics(kafka.namespace).actions, settle_s=1.0) == []
        for body in ({"action": "acknowledge"}, {"action": "comment", "comment": "bag checked"}):
            async with http.post(url, json=body, headers=write_headers(base, me)) as response:
                assert response.status == 202, await response.text()
    actions = await read_topic(kafka, Topics(kafka.namespace).actions)
    assert [(a.kind, a.operator, a.comment) for a in actions] == [
        (OperatorAction.KIND_ACKNOWLEDGE, "agent7", ""), (OperatorAction.KIND_COMMENT, "agent7", "bag checked")]
