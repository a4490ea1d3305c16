"""Merging rules of the correlator (pure functions; the transitions are in test_correlator_lifecycle.py, the faust
app is tested end to end)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, Region
from vigie.core.config import ConfigError, load_yaml_model
from vigie.correlator.config import MergePolicy, Route, Routing
from vigie.correlator.incidents import apply_action, merge_anomaly, track_run

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


def _act(book: CameraIncidents, incident_id: str, kind: int, action_id: str, comment: str) -> object:
    return apply_action(book, OperatorAction(id=action_id, incident_id=incident_id, camera_id="cam", kind=kind,
                                             operator="agent7", comment=comment), 2 * S)


def test_replayed_action_applies_once_even_after_a_restart() -> None:
    """Defect: actions were applied again when delivered again (a comment appended twice, a revision bumped)."""
    book = CameraIncidents()
    incident_id = merge_anomaly(book, anomaly(1, 0), POLICY, [], 0).incident.id
    assert not _act(book, incident_id, OperatorAction.KIND_COMMENT, "c1", "bag checked").refused
    restored = CameraIncidents.FromString(book.SerializeToString())
    assert _act(restored, incident_id, OperatorAction.KIND_COMMENT, "c1", "bag checked").refused == "duplicate"
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


def test_validate_names_the_line_of_a_bad_policy(tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("merge:\n  reactivation_default_s: 300\npriority:\n  kinds: {fire: 9}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", "--policy", str(policy)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and f"{policy}:4: priority.kinds: " in result.stderr, result.stderr
    policy.write_text("priority:\n  kinds: {abandoned_object: 2, firee: 1}\n  default: 4\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", "--policy", str(policy)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # a partial list changes those kinds only: fire stays 1, not the default 4; a misspelt kind is pointed out
    assert "abandoned_object 2" in result.stdout and "fire 1" in result.stdout and "other kinds 4" in result.stdout
    assert "warning: kind 'firee' is no analytic's kind" in result.stdout, result.stdout


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


def test_a_withdrawal_closes_the_new_incident_its_anomaly_opened_once() -> None:
    from vigie.contracts.v1 import Verdict
    from vigie.correlator.incidents import withdraw_anomaly

    def withdrawal(n: int) -> Anomaly:
        return Anomaly(id=f"a{n}-withdrawn", camera_id="cam", kind="abandoned_object", withdraws=f"a{n}",
                       withdrawal="a person over it", withdrawal_reason=Verdict.REASON_PERSON_STILL)

    book = CameraIncidents()
    merge_anomaly(book, anomaly(0, 0), POLICY, ["main"], 0)
    merge_anomaly(book, anomaly(1, 0.2), POLICY, ["main"], int(0.2 * S))  # joins inc-a0: not withdrawable alone
    merge_anomaly(book, anomaly(2, 0.2, x=400), POLICY, ["main"], int(0.2 * S))
    assert withdraw_anomaly(book, withdrawal(1), S, POLICY).refused == "unknown_incident"
    change = withdraw_anomaly(book, withdrawal(0), S, POLICY)
    assert change.publish and change.incident.id == "inc-a0" and change.incident.state == Incident.STATE_CLOSED
    assert (change.incident.verdict.kind, change.incident.verdict.reason, change.incident.verdict.author) == (
        Verdict.KIND_FALSE_ALARM, Verdict.REASON_PERSON_STILL, "vigie")
    assert withdraw_anomaly(book, withdrawal(0), 2 * S, POLICY).refused == "duplicate"
    ack = OperatorAction(id="k", incident_id="inc-a2", camera_id="cam", kind=OperatorAction.KIND_ACKNOWLEDGE,
                         operator="op")
    apply_action(book, ack, S, POLICY)
    taken = withdraw_anomaly(book, withdrawal(2), 2 * S, POLICY)  # someone took it: it stays, with the words
    assert taken.incident.state == Incident.STATE_ACKNOWLEDGED and "withdrawn: a person over it" in taken.incident.comments[-1]
