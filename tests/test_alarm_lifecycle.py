"""The alarm lifecycle end to end with the real broker: the correlator (a real worker process) and two stations
(the operators' and the supervisors'), in the consoles' API. An incident is taken, commented, held, resumed,
assigned, closed with a verdict (not without one), then refused (409) and reopened by an anomaly at the same
place; another, not acknowledged, is escalated after 2 s to the supervisors' station, and the correlator writes
what it did itself to the register."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.stack import health, service
from tests.station_console import read_topic, running_station, wait_for_incident
from tests.station_support import add_user_async, console_http, login, publish, write_headers
from vigie.contracts.v1 import Anomaly, AuditEntry, Incident, OperatorAction, RecordRef, Region, Verdict
from vigie.core.kafka import apply_topics
from vigie.core.topics import Topics
from vigie.station.app import StationService

pytestmark = pytest.mark.broker

ROUTING = """\
routes:
  - cameras: [cam-b]
    stations: [main]
    escalation:
      - {after_s: 2, to: [supervisors]}
  - cameras: ['cam-*']
    stations: [main]
stations: [supervisors]
"""


async def send_anomalies(kafka, anomalies: list[Anomaly]) -> None:  # noqa: ANN001
    """Send ``anomalies`` as the detector does (keyed by camera), acknowledged."""
    await publish(kafka, Topics(kafka.namespace).anomalies, anomalies)


def anomaly(name: str, camera: str, offset: int) -> Anomaly:
    a = Anomaly(id=name, camera_id=camera, kind="intrusion", score=0.8, capture_ns=time.time_ns(),
                regions=[Region(x=100, y=100, w=60, h=120)], frame=RecordRef(topic="frames", offset=offset),
                frame_width=640, frame_height=360)
    a.attributes["zone"] = 1.0
    return a


async def until(station: StationService, incident_id: str, check: Callable[[Incident], bool],
                timeout_s: float = 30.0) -> Incident:
    """The station's incident once ``check`` holds for its latest revision."""
    deadline = time.monotonic() + timeout_s
    while not check(incident := await wait_for_incident(station, incident_id, timeout_s)):
        assert time.monotonic() < deadline, f"{incident_id} never got there; last revision:\n{incident}"
        await asyncio.sleep(0.05)
    return incident


async def test_take_hold_resume_close_reopen_and_escalate_after_a_delay(kafka, tmp_path: Path) -> None:
    topics = Topics(kafka.namespace)
    await apply_topics(kafka, topics.all(["main", "supervisors"]))
    db_url = f"sqlite:///{tmp_path}/vigie.db"
    await add_user_async(db_url, "op", "operator", "main")
    await add_user_async(db_url, "sup", "supervisor", "main,supervisors")
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    with service(kafka, "correlator", "--routing", str(routing), log_dir=tmp_path) as (_, port):
        async with running_station(kafka, db_url) as (main, base), \
                running_station(kafka, db_url, "supervisors") as (supervisors, sup_base), \
                console_http() as op_http, console_http() as sup_http:
            op = await login(op_http, base, "op")
            sup = await login(sup_http, sup_base, "sup")

            async def act(http, url_base: str, me: dict, incident_id: str, **body: str) -> tuple[int, str]:  # noqa: ANN001
                async with http.post(f"{url_base}/api/incidents/{incident_id}/actions", json=body,
                                     headers=write_headers(url_base, me)) as response:
                    return response.status, await response.text()

            await send_anomalies(kafka, [anomaly("a1", "cam-a", 1), anomaly("b1", "cam-b", 2)])
            a = await wait_for_incident(main, "inc-a1", 60)
            assert (a.priority, a.zone, a.history[0].what) == (2, "1", "opened")

            assert (await act(op_http, base, op, "inc-a1", action="acknowledge"))[0] == 202
            await until(main, "inc-a1", lambda i: i.state == Incident.STATE_ACKNOWLEDGED and i.owner == "op")
            # a second operator's Take that crossed the first (both consoles saw it new): the correlator refuses it
            # and says so in the register, where the station recorded the request
            await publish(kafka, Topics(kafka.namespace).actions, [OperatorAction(id="late-take", incident_id="inc-a1", camera_id="cam-a",
                                                      kind=OperatorAction.KIND_ACKNOWLEDGE, operator="op2")])
            assert (await act(op_http, base, op, "inc-a1", action="comment", comment="patrol sent"))[0] == 202
            assert (await act(op_http, base, op, "inc-a1", action="hold"))[0] == 202
            await until(main, "inc-a1", lambda i: i.state == Incident.STATE_ON_HOLD)
            assert (await act(op_http, base, op, "inc-a1", action="hold"))[0] == 409  # the correlator's table
            assert (await act(op_http, base, op, "inc-a1", action="assign", assignee="sup"))[0] == 403
            assert (await act(op_http, base, op, "inc-a1", action="resume"))[0] == 202
            await until(main, "inc-a1", lambda i: i.state == Incident.STATE_ACKNOWLEDGED)
            status, text = await act(sup_http, base, sup, "inc-a1", action="assign", assignee="nobody")
            assert status == 400 and "nobody" in text
            assert (await act(sup_http, base, sup, "inc-a1", action="assign", assignee="op"))[0] == 202

            # cam-b's incident, not acknowledged, reaches the supervisors' station after 2 s
            b = await until(supervisors, "inc-b1", lambda i: i.state == Incident.STATE_ESCALATED, 30)
            assert b.escalation_level == 1 and list(b.stations) == ["main", "supervisors"]
            assert (b.history[-1].actor, b.history[-1].what) == ("vigie", "escalated")
            assert b.escalated_ns - b.history[0].at_ns >= 2_000_000_000
            assert (await act(op_http, base, op, "inc-b1", action="comment", comment="mine?"))[0] == 403
            assert (await act(sup_http, sup_base, sup, "inc-b1", action="acknowledge"))[0] == 202
            b = await until(supervisors, "inc-b1", lambda i: i.acknowledged_by == "sup")
            assert b.state == Incident.STATE_ESCALATED

            status, text = await act(op_http, base, op, "inc-a1", action="close")
            assert status == 400 and "'verdict'" in text
            status, text = await act(op_http, base, op, "inc-a1", action="close", verdict="false_alarm")
            assert status == 400 and "'reason'" in text
            assert (await act(op_http, base, op, "inc-a1", action="close", verdict="false_alarm",
                              reason="reflection"))[0] == 202
            a = await until(main, "inc-a1", lambda i: i.state == Incident.STATE_CLOSED)
            assert (a.verdict.kind, a.verdict.reason, a.verdict.author) == (
                Verdict.KIND_FALSE_ALARM, Verdict.REASON_REFLECTION, "op")
            assert a.owner == "op" and [n.text for n in a.notes] == ["patrol sent"]
            assert [h.what for h in a.history] == ["opened", "acknowledged", "commented", "on_hold", "resumed",
                                                   "assigned", "closed"]
            status, text = await act(op_http, base, op, "inc-a1", action="comment", comment="late")
            assert status == 409 and "closed" in text

            await send_anomalies(kafka, [anomaly("a2", "cam-a", 3)])  # same place: the incident reopens
            a = await until(main, "inc-a1", lambda i: i.state == Incident.STATE_NEW)
            assert (a.reopened, a.count, a.closed_ns, a.owner) == (1, 2, 0, "")
            assert not a.HasField("verdict") and a.snapshot.offset == 3  # the latest frame
            assert [i.id for i in main.incidents.live()].count("inc-a1") == 1  # no new card
        assert health(port)["state"] == "running", health(port)  # its timer reads the table, not the guard's keys
    mine = [e for e in await read_topic(kafka, topics.audit) if e.service == "correlator"
            and e.kind == AuditEntry.KIND_ACTION]
    assert sorted((e.operator, e.incident_id, e.detail.split(" ")[0]) for e in mine) == [
        ("vigie", "inc-a1", "refused"), ("vigie", "inc-a1", "reopened"), ("vigie", "inc-b1", "level")]
    assert [e.detail for e in mine if e.detail.startswith("refused")] == [
        "refused acknowledge by op2: already_acknowledged"]

