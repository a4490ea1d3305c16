"""The station's action API: a malformed action is refused (400) before anything is published, a good one is
published in the logged-in user's name. Real broker, real database, a logged-in console."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.station_console import publish_frame, read_topic, running_station, wait_for_incident
from tests.station_support import add_user_async, console_http, incident, login, publish, write_headers
from vigie.contracts.v1 import Incident, OperatorAction, Verdict
from vigie.core.topics import Topics
from vigie.station.app import incident_json

pytestmark = pytest.mark.broker

BAD = [
    ({"action": "comment", "text": "hi"}, ["unknown key 'text'", "action", "comment"]),
    ({"action": "comment"}, ["comment"]),
    ({"action": "comment", "comment": "  "}, ["comment"]),
    ({"action": "teleport"}, ["acknowledge"]),
    (["comment"], ["acknowledge"]),
    ("{not json", ["acknowledge"]),
    ({"action": "close"}, ["'verdict'", "confirmed | false_alarm | test"]),
    ({"action": "close", "verdict": "maybe"}, ["verdict 'maybe'", "false_alarm"]),
    ({"action": "close", "verdict": "false_alarm"}, ["'reason'", "reflection"]),
    ({"action": "close", "verdict": "false_alarm", "reason": "ghost"}, ["reason 'ghost'", "vegetation"]),
    ({"action": "assign"}, ["'assignee'"]),
    ({"action": "hold", "assignee": 3}, ["assignee"]),
    ({}, ["'action' missing", "acknowledge"]),
    ({"action": "acknowledge", "verdict": "confirmed"}, ["'verdict' does not apply to a 'acknowledge'"]),
    ({"action": "assign", "assignee": "agent7", "comment": "x"}, ["'comment' does not apply", "assignee"]),
    ({"action": "close", "verdict": "confirmed", "reason": "reflection"}, ["'reason' goes with", "false_alarm"]),
    ({"action": "comment", "comment": "x" * 2001}, ["'comment' is longer than 2000"]),
    ({"action": "assign", "assignee": "a" * 65}, ["'assignee' is longer than 64"]),
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


async def test_the_snapshot_follows_the_incident_and_verdicts_read_as_words(kafka, tmp_path) -> None:
    """Defect: the snapshot cache was keyed on the incident id alone, so the console showed the opening frame for
    as long as the incident lived. A revision carrying a later frame shows that frame."""
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "agent7", "operator", "main")
    alerts = Topics(kafka.namespace).alerts("main")
    first = incident(1)
    first.snapshot.CopyFrom(await publish_frame(kafka, first.camera_id, b"\xff\xd8first\xff\xd9"))
    await publish(kafka, alerts, [first])
    async with running_station(kafka, db_url) as (station, base), console_http() as http:
        await wait_for_incident(station, first.id)
        await login(http, base, "agent7")
        url = f"{base}/api/incidents/{first.id}/snapshot.jpg"
        async with http.get(url) as response:
            assert await response.read() == b"\xff\xd8first\xff\xd9"
        later = incident(1, revision=2)
        later.snapshot.CopyFrom(await publish_frame(kafka, first.camera_id, b"\xff\xd8later\xff\xd9"))
        await publish(kafka, alerts, [later])
        while station.incidents.get(first.id).revision < 2:
            await asyncio.sleep(0.05)
        async with http.get(url) as response:
            assert await response.read() == b"\xff\xd8later\xff\xd9"
    held = incident(2, state=Incident.STATE_ON_HOLD)
    assert incident_json(held)["state"] == "on_hold" and incident_json(held)["verdict"] is None
    closed = held
    closed.state = Incident.STATE_CLOSED
    closed.verdict.CopyFrom(Verdict(kind=Verdict.KIND_FALSE_ALARM, reason=Verdict.REASON_REFLECTION, author="op",
                                    at_ns=5))
    assert incident_json(closed)["verdict"] == {"kind": "false_alarm", "reason": "reflection", "author": "op",
                                                "atNs": "5"}
