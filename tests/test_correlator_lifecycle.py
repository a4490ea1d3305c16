"""The alarm lifecycle of the correlator, pure functions with an injected clock: every transition and refusal,
verdicts, history, priorities, zones, the snapshot that follows the incident, reopening within the reactivation
threshold, escalation after a delay, and the routing file's refusal of an escalation to an unknown station."""

from __future__ import annotations

import pytest

from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, RecordRef, Region, Verdict
from vigie.core.config import ConfigError, load_yaml_model
from vigie.correlator.config import EscalationStep, MergePolicy, PriorityPolicy, Routing
from vigie.correlator.escalation import due_escalations
from vigie.correlator.incidents import REFUSALS, TRANSITIONS, apply_action, merge_anomaly

S = 1_000_000_000
POLICY = MergePolicy(window_s=60, min_iou=0.1, update_interval_s=10)
NEW, ACKED, HOLD_STATE, ESCALATED, CLOSED = (Incident.STATE_NEW, Incident.STATE_ACKNOWLEDGED,
                                             Incident.STATE_ON_HOLD, Incident.STATE_ESCALATED, Incident.STATE_CLOSED)
K = OperatorAction
ACK, ASSIGN, HOLD, RESUME, ESCALATE, COMMENT, CLOSE = (K.KIND_ACKNOWLEDGE, K.KIND_ASSIGN, K.KIND_HOLD, K.KIND_RESUME,
                                                      K.KIND_ESCALATE, K.KIND_COMMENT, K.KIND_CLOSE)
STEPS = [EscalationStep(after_s=30, to=["supervisors"]), EscalationStep(after_s=60, to=["night"])]


def anomaly(n: int, t_s: float, *, x: int = 100, kind: str = "abandoned_object", zone: float | None = None,
            camera: str = "cam") -> Anomaly:
    a = Anomaly(id=f"a{n}", camera_id=camera, kind=kind, score=0.5, capture_ns=int(t_s * S),
                regions=[Region(x=x, y=100, w=50, h=50)], frame=RecordRef(topic="frames", partition=1, offset=n),
                frame_width=640, frame_height=360)
    if zone is not None:
        a.attributes["zone"] = zone
    return a


def action(kind: int, incident_id: str = "inc-a1", n: str = "x", **fields) -> OperatorAction:  # noqa: ANN003
    """An action with what its kind needs (a comment, an assignee, a verdict) unless ``fields`` say otherwise."""
    needs = {COMMENT: {"comment": "noted"}, ASSIGN: {"assignee": "agent9"},
             CLOSE: {"verdict": Verdict.KIND_CONFIRMED}}.get(kind, {})
    return OperatorAction(id=n, incident_id=incident_id, camera_id="cam", kind=kind, operator="agent7",
                          **{**needs, **fields})


def book_in(state: int) -> CameraIncidents:
    """A camera entry with incident ``inc-a1`` opened at t=0 and brought to ``state`` by allowed actions at t=1 s."""
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, ["main"], 0)
    path = {NEW: [], ACKED: [ACK], HOLD_STATE: [ACK, HOLD], ESCALATED: [ESCALATE], CLOSED: [CLOSE]}[state]
    for n, kind in enumerate(path):
        assert not apply_action(book, action(kind, n=f"setup{n}"), S, POLICY).refused
    return book


# state -> action -> the state after it, or the refusal: written out here, independently of TRANSITIONS.
EXPECTED = {
    NEW: {ACK: ACKED, ASSIGN: ACKED, HOLD: "not_allowed", RESUME: "not_allowed", ESCALATE: ESCALATED,
          COMMENT: NEW, CLOSE: CLOSED},
    ACKED: {ACK: "already_acknowledged", ASSIGN: ACKED, HOLD: HOLD_STATE, RESUME: "not_allowed",
            ESCALATE: ESCALATED, COMMENT: ACKED, CLOSE: CLOSED},
    HOLD_STATE: {ACK: "already_acknowledged", ASSIGN: HOLD_STATE, HOLD: "not_allowed", RESUME: ACKED,
                 ESCALATE: ESCALATED, COMMENT: HOLD_STATE, CLOSE: CLOSED},
    ESCALATED: {ACK: ESCALATED, ASSIGN: ESCALATED, HOLD: "not_allowed", RESUME: "not_allowed",
                ESCALATE: "already_escalated", COMMENT: ESCALATED, CLOSE: CLOSED},
    CLOSED: dict.fromkeys((ACK, ASSIGN, HOLD, RESUME, ESCALATE, COMMENT, CLOSE), "closed"),
}
WORDS = {ACK: "acknowledged", ASSIGN: "assigned", HOLD: "on_hold", RESUME: "resumed", ESCALATE: "escalated",
         COMMENT: "commented", CLOSE: "closed"}


@pytest.mark.parametrize(("state", "kind"), [(s, k) for s, row in EXPECTED.items() for k in row])
def test_every_transition_and_refusal(state: int, kind: int) -> None:
    book = book_in(state)
    before = CameraIncidents.FromString(book.SerializeToString())
    change = apply_action(book, action(kind), 2 * S, POLICY, STEPS)
    expected = EXPECTED[state][kind]
    if isinstance(expected, str):
        assert change.refused == expected and expected in REFUSALS
        assert not change.publish and book == before, "a refused action changes nothing and is not published"
        return
    assert not change.refused and change.publish and (state, kind) in TRANSITIONS
    incident = change.incident
    assert incident.state == expected and incident.operator == "agent7"
    assert incident.revision == before.incidents[0].revision + 1 and incident.updated_ns == 2 * S
    last = incident.history[-1]
    assert (last.at_ns, last.actor, last.what) == (2 * S, "agent7", WORDS[kind])
    assert incident.history[0].what == "opened" and incident.history[0].actor == "vigie"


def test_take_assign_hold_resume_comment_and_the_history() -> None:
    book = book_in(NEW)
    incident = apply_action(book, action(ACK, n="1"), 2 * S, POLICY).incident
    assert incident.owner == "agent7" and incident.acknowledged_by == "agent7"  # "take"
    assert apply_action(book, action(ASSIGN, n="2", assignee="agent9"), 3 * S, POLICY).incident.owner == "agent9"
    assert apply_action(book, action(HOLD, n="3"), 4 * S, POLICY).incident.state == HOLD_STATE
    assert apply_action(book, action(COMMENT, n="4", comment="patrol sent"), 5 * S, POLICY).incident.state == HOLD_STATE
    incident = apply_action(book, action(RESUME, n="5"), 6 * S, POLICY).incident
    assert incident.state == ACKED and incident.owner == "agent9"
    assert [(n.author, n.at_ns, n.text) for n in incident.notes] == [("agent7", 5 * S, "patrol sent")]
    assert list(incident.comments) == ["agent7: patrol sent"]  # the legacy strings too
    assert [(h.what, h.detail) for h in incident.history] == [
        ("opened", "abandoned_object on cam"), ("acknowledged", ""), ("assigned", "to agent9"), ("on_hold", ""),
        ("commented", "patrol sent"), ("resumed", "")]
    assert apply_action(book, action(ASSIGN, n="6", assignee=" "), 7 * S, POLICY).refused == "assignee_missing"
    assert apply_action(book, action(COMMENT, n="7", comment=" "), 7 * S, POLICY).refused == "empty_comment"
    assert apply_action(book, action(RESUME, n="5"), 7 * S, POLICY).refused == "duplicate"


def test_close_needs_a_verdict_and_a_false_alarm_its_reason() -> None:
    book = book_in(ACKED)
    assert apply_action(book, action(CLOSE, verdict=Verdict.KIND_UNSPECIFIED), 2 * S, POLICY).refused == "verdict_missing"
    assert apply_action(book, action(CLOSE, verdict=Verdict.KIND_FALSE_ALARM), 2 * S, POLICY).refused == "reason_missing"
    assert book.incidents[0].state == ACKED
    closing = action(CLOSE, n="c", verdict=Verdict.KIND_FALSE_ALARM, reason=Verdict.REASON_REFLECTION)
    incident = apply_action(book, closing, 3 * S, POLICY).incident
    assert incident.state == CLOSED and incident.closed_ns == 3 * S
    assert incident.verdict == Verdict(kind=Verdict.KIND_FALSE_ALARM, reason=Verdict.REASON_REFLECTION,
                                       author="agent7", at_ns=3 * S)
    assert incident.history[-1].detail == "false_alarm (reflection)"
    assert apply_action(book, action(COMMENT, n="late"), 4 * S, POLICY).refused == "closed"
    gone = apply_action(book, action(COMMENT, n="later"), 400 * S, POLICY)  # past the reactivation threshold
    assert gone.refused == "closed" and not book.incidents  # it left the entry; its id is remembered


def test_acknowledging_an_escalated_incident_records_who_and_keeps_it_escalated() -> None:
    book = book_in(ESCALATED)
    incident = apply_action(book, action(ACK, n="ack"), 3 * S, POLICY).incident
    assert incident.state == ESCALATED and incident.acknowledged_by == "agent7" and incident.acknowledged_ns == 3 * S
    assert apply_action(book, action(ACK, n="ack2"), 4 * S, POLICY).refused == "already_acknowledged"


def test_priority_per_kind_then_per_camera() -> None:
    policy = PriorityPolicy(cameras=[{"cameras": ["school-*"], "kinds": ["intrusion"], "priority": 1},
                                     {"cameras": ["depot-*"], "priority": 5}])
    assert [PriorityPolicy().priority_for(k, "c") for k in ("fire", "smoke", "person_down", "intrusion", "tamper",
            "crowd_movement", "abandoned_object", "density", "wrong_way", "colour_query", "meteor")] == [
        1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 3]
    assert policy.priority_for("intrusion", "school-3") == 1 and policy.priority_for("density", "school-3") == 3
    assert policy.priority_for("fire", "depot-1") == 5
    book = CameraIncidents()
    assert merge_anomaly(book, anomaly(1, 0), POLICY, [], 0, priority=2).incident.priority == 2


def test_incidents_merge_only_within_their_zone_and_the_snapshot_follows() -> None:
    book = CameraIncidents()
    first = merge_anomaly(book, anomaly(1, 0, zone=0.0), POLICY, [], 0).incident
    assert first.zone == "0" and first.snapshot.offset == 1
    assert merge_anomaly(book, anomaly(2, 1, zone=1.0), POLICY, [], S).opened  # same place, other zone
    assert merge_anomaly(book, anomaly(3, 2), POLICY, [], 2 * S).opened  # no zone: the whole view
    later = anomaly(4, 20, x=110, zone=0.0)
    change = merge_anomaly(book, later, POLICY, [], 20 * S)
    assert not change.opened and change.publish and change.incident.id == first.id == "inc-a1"
    assert (first.snapshot.offset, first.snapshot_capture_ns, first.regions[0].x) == (4, 20 * S, 110)
    assert first.snapshot.partition == 1 and (first.frame_width, first.frame_height) == (640, 360)
    merge_anomaly(book, anomaly(5, 10, x=120, zone=0.0), POLICY, [], 21 * S)  # late: older frame does not win
    assert first.snapshot.offset == 4 and first.count == 3


def _closed_book(kind: str = "abandoned_object", policy: MergePolicy = POLICY) -> CameraIncidents:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0, kind=kind, zone=2.0), policy, ["main"], 0)
    assert not apply_action(book, action(ACK, n="a"), S, policy).refused
    closing = action(CLOSE, n="c", verdict=Verdict.KIND_FALSE_ALARM, reason=Verdict.REASON_SHADOW_OR_LIGHT)
    assert not apply_action(book, closing, 10 * S, policy).refused
    return book


def test_an_anomaly_at_the_same_place_within_the_threshold_reopens_the_closed_incident() -> None:
    book = _closed_book()
    assert "inc-a1" in book.closed_incidents
    change = merge_anomaly(book, anomaly(2, 200, zone=2.0), POLICY, ["main"], 200 * S)  # 190 s after closing
    incident = change.incident
    assert change.reopened and change.publish and not change.opened and incident.id == "inc-a1"
    assert (incident.state, incident.reopened, incident.reopened_ns, incident.closed_ns) == (NEW, 1, 200 * S, 0)
    assert not incident.HasField("verdict") and incident.owner == "" and incident.count == 2
    assert incident.revision == 4 and incident.updated_ns == 200 * S  # opened, acknowledged, closed, reopened
    assert (incident.history[-1].actor, incident.history[-1].what) == ("vigie", "reopened")
    assert "inc-a1" not in book.closed_incidents and len(book.incidents) == 1
    assert not apply_action(book, action(ACK, n="again"), 201 * S, POLICY).refused  # it is open again


@pytest.mark.parametrize(("kind", "policy", "t_s", "zone", "reopens"), [
    ("abandoned_object", POLICY, 311, 2.0, False),  # 301 s after closing: past the default 300 s
    ("abandoned_object", POLICY, 200, 1.0, False),  # another zone
    ("fire", POLICY.model_copy(update={"reactivation_s": {"fire": 0}}), 11, 2.0, False),  # disabled for fire
    ("fire", POLICY.model_copy(update={"reactivation_s": {"fire": 600}}), 500, 2.0, True),  # longer for fire
])
def test_reactivation_threshold_per_kind(kind: str, policy: MergePolicy, t_s: float, zone: float,
                                         reopens: bool) -> None:
    book = _closed_book(kind, policy)
    change = merge_anomaly(book, anomaly(2, t_s, kind=kind, zone=zone), policy, ["main"], int(t_s * S))
    assert change.reopened == reopens and change.opened == (not reopens)


def _escalation_book(at_s: float) -> CameraIncidents:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, ["main"], int(at_s * S))
    return book


def test_escalation_after_a_delay_is_deterministic_idempotent_and_stepwise() -> None:
    book = _escalation_book(100)
    assert due_escalations(book, STEPS, 129 * S) == []
    (first,) = due_escalations(book, STEPS, 131 * S)
    assert (first.id, first.kind, first.operator, first.automatic) == ("auto-escalate-inc-a1-1", ESCALATE, "vigie", True)
    assert due_escalations(book, STEPS, 132 * S)[0].id == first.id  # the next tick: the same action
    incident = apply_action(book, first, 132 * S, POLICY, STEPS).incident
    assert (incident.state, incident.escalation_level, incident.escalated_ns) == (ESCALATED, 1, 132 * S)
    assert list(incident.stations) == ["main", "supervisors"]
    assert (incident.history[-1].actor, incident.history[-1].detail) == (
        "vigie", "level 1, automatic after 30 s, to supervisors")
    assert apply_action(book, first, 133 * S, POLICY, STEPS).refused == "duplicate"
    assert due_escalations(book, STEPS, 190 * S) == []  # 58 s since the escalation: step 2 needs 60
    (second,) = due_escalations(book, STEPS, 193 * S)
    assert second.id == "auto-escalate-inc-a1-2"
    apply_action(book, second, 193 * S, POLICY, STEPS)
    assert list(book.incidents[0].stations) == ["main", "supervisors", "night"]
    assert due_escalations(book, STEPS, 10_000 * S) == []  # no step left


def test_acknowledged_or_held_incidents_are_not_escalated_and_a_late_escalation_is_refused() -> None:
    book = _escalation_book(0)
    (late,) = due_escalations(book, STEPS, 31 * S)
    apply_action(book, action(ACK, n="ack"), 31 * S, POLICY, STEPS)
    assert due_escalations(book, STEPS, 1000 * S) == []
    assert apply_action(book, late, 32 * S, POLICY, STEPS).refused == "not_due"
    apply_action(book, action(HOLD, n="hold"), 33 * S, POLICY, STEPS)
    assert due_escalations(book, STEPS, 1000 * S) == []
    # escalated by hand (the route's first step), then acknowledged by a supervisor: no further escalation
    book = _escalation_book(0)
    incident = apply_action(book, action(ESCALATE, n="e"), 5 * S, POLICY, STEPS).incident
    assert incident.escalation_level == 1 and "supervisors" in incident.stations
    assert incident.history[-1].detail == "level 1, by agent7, to supervisors"
    assert due_escalations(book, STEPS, 66 * S)[0].id == "auto-escalate-inc-a1-2"
    apply_action(book, action(ACK, n="sup-ack"), 60 * S, POLICY, STEPS)
    assert due_escalations(book, STEPS, 1000 * S) == []
    # without steps a manual escalation still marks the incident escalated
    book = _escalation_book(0)
    assert apply_action(book, action(ESCALATE, n="e"), S, POLICY, []).incident.state == ESCALATED


def test_an_escalation_to_an_unknown_station_is_refused_naming_route_and_station(tmp_path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n  - cameras: ['metro-*']\n    stations: [transit]\n"
                    "    escalation:\n      - {after_s: 60, to: [supervisors]}\n")
    with pytest.raises(ConfigError, match=r"metro-\*.*'supervisors'.*neither in a route"):
        load_yaml_model(path, Routing)
    path.write_text(path.read_text() + "stations: [supervisors]\n")
    routing = load_yaml_model(path, Routing)
    assert routing.all_stations() == ["supervisors", "transit"]  # its alert topic is created and published to
    assert routing.escalation_for("metro-1")[0].to == ["supervisors"] and routing.escalation_for("bus-1") == []


def test_the_timer_finds_a_cameras_partition_as_the_producers_put_it() -> None:
    """The escalation timer reads only the entries of the partitions its worker owns: a camera's partition is the
    one the Kafka clients' default partitioner gives its key (the detectors' and stations' producers)."""
    from aiokafka.partitioner import DefaultPartitioner

    from vigie.core.kafka import key_partition
    from vigie.core.topics import CAMERA_PARTITIONS

    assert CAMERA_PARTITIONS == 6
    for camera in (b"cam-a", b"metro-12", b"chaos-cam-07"):
        assert key_partition(camera, CAMERA_PARTITIONS) == DefaultPartitioner()(camera, list(range(6)), list(range(6)))


def test_a_reopening_starts_the_escalation_chain_again_with_ids_of_its_own() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, ["main"], 0)
    (first,) = due_escalations(book, STEPS, 31 * S)
    apply_action(book, first, 31 * S, POLICY, STEPS)
    assert not apply_action(book, action(ACK, n="ack"), 32 * S, POLICY, STEPS).refused  # a supervisor's
    assert not apply_action(book, action(CLOSE, n="close"), 33 * S, POLICY, STEPS).refused
    change = merge_anomaly(book, anomaly(2, 40), POLICY, ["main"], 40 * S)
    incident = change.incident
    assert change.reopened and incident.state == NEW and incident.escalation_level == 0
    assert (incident.acknowledged_by, incident.acknowledged_ns, list(incident.stations)) == ("", 0, ["main"])
    (again,) = due_escalations(book, STEPS, 71 * S)  # the wait restarts at the reopening
    assert again.id == "auto-escalate-inc-a1-r1-1" and again.id != first.id
    assert not apply_action(book, again, 71 * S, POLICY, STEPS).refused
    assert (incident.state, incident.escalation_level, list(incident.stations)) == (ESCALATED, 1, ["main", "supervisors"])


def test_the_closing_comment_is_a_note_and_in_the_history() -> None:
    book = book_in(ACKED)
    apply_action(book, action(CLOSE, n="close", comment="patrol on site: real intrusion"), 5 * S, POLICY)
    (incident,) = book.incidents
    assert [(n.author, n.text) for n in incident.notes] == [("agent7", "patrol on site: real intrusion")]
    assert incident.history[-1].detail == "confirmed: patrol on site: real intrusion"


def test_open_incidents_stay_until_closed_and_only_a_camera_nobody_works_sheds_its_oldest() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, ["main"], 0)
    merge_anomaly(book, anomaly(2, 86400, x=400), POLICY, ["main"], 86400 * S)  # a day later, elsewhere
    assert [i.id for i in book.incidents] == ["inc-a1", "inc-a2"]
    assert not apply_action(book, action(CLOSE, n="late-close"), 86401 * S, POLICY).refused  # still closable
    capped = MergePolicy(window_s=60, min_iou=0.1, max_open=10)
    book = CameraIncidents()
    for n in range(12):
        merge_anomaly(book, anomaly(n, n * 100, x=10 * n, kind=f"k{n}"), capped, ["main"], n * 100 * S)
    assert len(book.incidents) == 10 and book.incidents[0].id == "inc-a2"  # the two oldest left
