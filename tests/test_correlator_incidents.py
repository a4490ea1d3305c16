"""Incident lifecycle rules of the correlator (pure functions; the faust app is tested end to end)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, Region
from vigie.core.config import ConfigError, load_yaml_model
from vigie.correlator.config import MergePolicy, Route, Routing
from vigie.correlator.incidents import TRANSITIONS, apply_action, merge_anomaly, track_run

S = 1_000_000_000
POLICY = MergePolicy(window_s=60, min_iou=0.1, update_interval_s=10)


def anomaly(n: int, t_s: float, x: int = 100, kind: str = "abandoned_object", track: str = "") -> Anomaly:
    return Anomaly(id=f"a{n}", camera_id="cam", kind=kind, score=0.5 + n / 100, capture_ns=int(t_s * S),
                   regions=[Region(x=x, y=100, w=50, h=50)], track_id=track)


def test_one_event_gives_one_incident_not_a_storm() -> None:
    book = CameraIncidents()
    changes = [merge_anomaly(book, anomaly(n, n * 0.2), POLICY, ["main"], int(n * 0.2 * S)) for n in range(100)]
    assert len(book.incidents) == 1
    assert sum(c.opened for c in changes) == 1
    incident = book.incidents[0]
    assert incident.count == 100 and incident.state == Incident.STATE_NEW
    assert incident.id == "inc-a0" and incident.stations == ["main"]
    # 20 s of anomalies with a 10 s update interval: the opening plus two updates, not 100 messages.
    assert sum(c.publish for c in changes) == 2
    assert abs(incident.severity - 1.49) < 1e-6


def test_other_place_other_kind_or_late_anomaly_opens_new_incidents() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, [], 0)
    assert merge_anomaly(book, anomaly(2, 1, x=400), POLICY, [], S).opened  # no overlap
    assert merge_anomaly(book, anomaly(3, 2, kind="crowd_movement"), POLICY, [], 2 * S).opened
    assert merge_anomaly(book, anomaly(4, 200), POLICY, [], 200 * S).opened  # outside the window
    assert not merge_anomaly(book, anomaly(5, 3, x=600, kind="crowd_movement"), POLICY, [], 3 * S).opened


def test_same_run_qualified_track_merges_even_when_the_region_moves() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0, track="run7f3a-1"), POLICY, [], 0)
    assert not merge_anomaly(book, anomaly(2, 1, x=500, track="run7f3a-1"), POLICY, [], S).opened


def test_track_of_another_detector_run_or_without_a_run_never_merges_alone() -> None:
    """Defect: track ids restarted at 1 in every detector process and the correlator merged on the track id
    alone, so after a restart a new object elsewhere in the view joined an old incident and raised nothing."""
    assert track_run("cam-a/abandoned/0c1d-12") == "cam-a/abandoned/0c1d" and track_run("t1") is None
    assert track_run("cam/abandoned/3") is None and track_run("-3") is None and track_run("run-x") is None
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0, track="runA-1"), POLICY, [], 0)
    assert merge_anomaly(book, anomaly(2, 1, x=500, track="runB-1"), POLICY, [], S).opened  # another run
    legacy = CameraIncidents()
    merge_anomaly(legacy, anomaly(1, 0, track="1"), POLICY, [], 0)
    assert merge_anomaly(legacy, anomaly(2, 1, x=500, track="1"), POLICY, [], S).opened  # no run: no track merge
    assert not merge_anomaly(legacy, anomaly(3, 2, x=110, track="2"), POLICY, [], 2 * S).opened  # IoU still merges


def test_replayed_anomaly_is_idempotent() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, [], 0)
    change = merge_anomaly(book, anomaly(1, 0), POLICY, [], S)
    assert not change.publish and change.refused == "duplicate" and book.incidents[0].count == 1


def test_every_replayed_anomaly_counts_once_even_after_a_restart() -> None:
    """Defect: only the anomaly that opened an incident was recognised on a replay; a replayed later
    anomaly was counted again. The ledger lives in the table value, so it survives a restart (a reparse)."""
    book = CameraIncidents()
    for n in range(5):
        merge_anomaly(book, anomaly(n, n), POLICY, [], n * S)
    restored = CameraIncidents.FromString(book.SerializeToString())  # what a worker reads back from the changelog
    for n in range(5):
        assert merge_anomaly(restored, anomaly(n, n), POLICY, [], 9 * S).refused == "duplicate"
    assert restored.incidents[0].count == 5
    small = POLICY.model_copy(update={"remember_ids": 16})
    for n in range(5, 40):
        merge_anomaly(restored, anomaly(n, 5), small, [], 9 * S)
    assert len(restored.recent_anomalies) == 16  # bounded


NEW, ACKED, ESCALATED, CLOSED = (Incident.STATE_NEW, Incident.STATE_ACKNOWLEDGED, Incident.STATE_ESCALATED,
                                 Incident.STATE_CLOSED)
ACK, ESCALATE, COMMENT, CLOSE = (OperatorAction.KIND_ACKNOWLEDGE, OperatorAction.KIND_ESCALATE,
                                 OperatorAction.KIND_COMMENT, OperatorAction.KIND_CLOSE)


def _book_in(state: int) -> tuple[CameraIncidents, str]:
    """A camera entry with one incident brought to ``state`` by allowed actions."""
    book = CameraIncidents()
    incident_id = merge_anomaly(book, anomaly(1, 0), POLICY, [], 0).incident.id
    path = {NEW: [], ACKED: [ACK], ESCALATED: [ESCALATE], CLOSED: [CLOSE]}[state]
    for n, kind in enumerate(path):
        change = apply_action(book, OperatorAction(id=f"setup{n}", incident_id=incident_id, camera_id="cam",
                                                   kind=kind, operator="setup"), S)
        assert not change.refused
    return book, incident_id


def _act(book: CameraIncidents, incident_id: str, kind: int, action_id: str = "x", at_s: float = 2,
         comment: str = "noted") -> object:
    return apply_action(book, OperatorAction(id=action_id, incident_id=incident_id, camera_id="cam", kind=kind,
                                             operator="agent7", comment=comment), int(at_s * S))


@pytest.mark.parametrize(("state", "kind", "after", "refused"), [
    (NEW, ACK, ACKED, ""), (NEW, ESCALATE, ESCALATED, ""), (NEW, COMMENT, NEW, ""), (NEW, CLOSE, CLOSED, ""),
    (ACKED, ACK, ACKED, "already_acknowledged"), (ACKED, ESCALATE, ESCALATED, ""), (ACKED, COMMENT, ACKED, ""),
    (ACKED, CLOSE, CLOSED, ""),
    (ESCALATED, ACK, ESCALATED, ""), (ESCALATED, ESCALATE, ESCALATED, "already_escalated"),
    (ESCALATED, COMMENT, ESCALATED, ""), (ESCALATED, CLOSE, CLOSED, ""),
    (CLOSED, ACK, CLOSED, "closed"), (CLOSED, ESCALATE, CLOSED, "closed"), (CLOSED, COMMENT, CLOSED, "closed"),
    (CLOSED, CLOSE, CLOSED, "closed"),
    (NEW, OperatorAction.KIND_UNSPECIFIED, NEW, "unknown_kind"),
])
def test_lifecycle_transition(state: int, kind: int, after: int, refused: str) -> None:
    """Defect: any action set any state (acknowledging an escalated incident de-escalated it, a closed one
    could be acted on). Each (state, action) pair either moves as the table says or is refused with a reason."""
    book, incident_id = _book_in(state)
    before = CameraIncidents.FromString(book.SerializeToString())
    change = _act(book, incident_id, kind)
    assert change.refused == refused
    assert ((state, kind) in TRANSITIONS) == (not refused)
    if refused:
        assert not change.publish and book == before, "a refused action changes nothing and is not published"
    else:
        assert change.publish and change.incident.state == after and change.incident.operator == "agent7"
        assert (book.incidents[0].state == after) if after != CLOSED else (not book.incidents)


def test_acknowledging_an_escalated_incident_records_who_and_keeps_it_escalated() -> None:
    book, incident_id = _book_in(ACKED)
    _act(book, incident_id, ESCALATE, "esc", at_s=2)
    change = _act(book, incident_id, ACK, "ack-supervisor", at_s=3)
    assert change.incident.state == ESCALATED and change.incident.acknowledged_by == "agent7"
    assert _act(book, incident_id, ACK, "ack-again", at_s=4).refused == "already_acknowledged"
    assert _act(book, incident_id, COMMENT, "c1", at_s=5, comment=" ").refused == "empty_comment"


def test_acknowledge_escalate_comment_close() -> None:
    book = CameraIncidents()
    incident = merge_anomaly(book, anomaly(1, 0), POLICY, [], 0).incident
    steps = iter(range(1, 100))

    def act(kind: int, comment: str = "") -> object:
        n = next(steps)
        return apply_action(book, OperatorAction(id=f"act{n}", incident_id=incident.id, camera_id="cam", kind=kind,
                                                 operator="agent7", comment=comment), n * S)

    assert act(OperatorAction.KIND_ACKNOWLEDGE).incident.state == Incident.STATE_ACKNOWLEDGED
    assert act(OperatorAction.KIND_COMMENT, "bag checked").incident.comments == ["agent7: bag checked"]
    change = act(OperatorAction.KIND_ESCALATE)
    assert change.incident.state == Incident.STATE_ESCALATED and change.incident.revision == 4
    assert act(OperatorAction.KIND_CLOSE).incident.state == Incident.STATE_CLOSED
    assert not book.incidents  # closed incidents leave the table
    assert act(OperatorAction.KIND_COMMENT, "late").refused == "closed"  # and nothing acts on them
    assert merge_anomaly(book, anomaly(2, 1), POLICY, [], S).opened  # and never reopen
    unknown = apply_action(book, OperatorAction(id="z", incident_id="nope", camera_id="cam", kind=1), S)
    assert unknown.refused == "unknown_incident" and unknown.incident is None


def test_replayed_action_applies_once_even_after_a_restart() -> None:
    """Defect: actions were applied again when delivered again (a comment appended twice, a revision bumped)."""
    book, incident_id = _book_in(NEW)
    assert not _act(book, incident_id, COMMENT, "c1", comment="bag checked").refused
    restored = CameraIncidents.FromString(book.SerializeToString())
    assert _act(restored, incident_id, COMMENT, "c1", comment="bag checked").refused == "duplicate"
    assert list(restored.incidents[0].comments) == ["agent7: bag checked"] and restored.incidents[0].revision == 2


def test_routing_by_camera_pattern() -> None:
    routing = Routing(routes=[Route(cameras=["metro-*"], stations=["transit", "main"]),
                              Route(cameras=["*"], stations=["main"])])
    assert routing.stations_for("metro-12") == ["main", "transit"]
    assert routing.stations_for("square-1") == ["main"]
    assert routing.all_stations() == ["main", "transit"]


def test_incident_carries_the_facts_of_its_latest_anomaly() -> None:
    book = CameraIncidents()

    def facts(n: int, t_s: float, unattended_s: float) -> Anomaly:
        a = anomaly(n, t_s, track="t1")
        a.attributes.update({"static_s": 8.0 + t_s, "unattended_s": unattended_s})
        return a

    merge_anomaly(book, facts(1, 0, 0.0), POLICY, [], 0)
    assert dict(book.incidents[0].attributes) == {"static_s": 8.0, "unattended_s": 0.0}
    merge_anomaly(book, facts(2, 5, 5.0), POLICY, [], 5 * S)
    merge_anomaly(book, facts(3, 3, 3.0), POLICY, [], 6 * S)  # delivered late: older facts do not win
    assert dict(book.incidents[0].attributes) == {"static_s": 13.0, "unattended_s": 5.0}
    assert book.incidents[0].count == 3


def test_routing_needs_at_least_one_route(tmp_path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("routes: []\n")
    with pytest.raises(ConfigError) as err:
        load_yaml_model(path, Routing)
    (problem,) = err.value.problems
    assert (problem.line, problem.location) == (1, "routes") and "at least 1" in problem.message
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", "--routing", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and f"{path}:1: routes: " in result.stderr


def test_validate_warns_of_cameras_that_reach_no_station(tmp_path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - {id: metro-1, source: synthetic://scene}\n"
                       "  - {id: square-1, source: synthetic://scene}\n"))
    routing = tmp_path / "routing.yaml"
    routing.write_text("routes:\n  - {cameras: ['metro-*'], stations: [transit]}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras), "--routing", str(routing)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line.strip() for line in result.stdout.splitlines() if "warning" in line]
    assert warnings == ["warning: camera square-1 matches no route: its incidents reach no station"]
