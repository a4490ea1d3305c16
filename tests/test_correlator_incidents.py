"""Incident lifecycle rules of the correlator (pure functions; the faust app is tested end to end)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, Region
from vigie.core.config import ConfigError, load_yaml_model
from vigie.correlator.config import MergePolicy, Route, Routing
from vigie.correlator.incidents import apply_action, merge_anomaly

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


def test_same_track_merges_even_when_the_region_moves() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0, track="t1"), POLICY, [], 0)
    assert not merge_anomaly(book, anomaly(2, 1, x=500, track="t1"), POLICY, [], S).opened


def test_replayed_anomaly_is_idempotent() -> None:
    book = CameraIncidents()
    merge_anomaly(book, anomaly(1, 0), POLICY, [], 0)
    change = merge_anomaly(book, anomaly(1, 0), POLICY, [], S)
    assert not change.publish and book.incidents[0].count == 1


def test_acknowledge_escalate_comment_close() -> None:
    book = CameraIncidents()
    incident = merge_anomaly(book, anomaly(1, 0), POLICY, [], 0).incident

    def act(kind: int, comment: str = "") -> object:
        return apply_action(book, OperatorAction(incident_id=incident.id, camera_id="cam", kind=kind,
                                                 operator="agent7", comment=comment), S)

    assert act(OperatorAction.KIND_ACKNOWLEDGE).incident.state == Incident.STATE_ACKNOWLEDGED
    assert act(OperatorAction.KIND_COMMENT, "bag checked").incident.comments == ["agent7: bag checked"]
    change = act(OperatorAction.KIND_ESCALATE)
    assert change.incident.state == Incident.STATE_ESCALATED and change.incident.revision == 4
    assert act(OperatorAction.KIND_CLOSE).incident.state == Incident.STATE_CLOSED
    assert not book.incidents  # closed incidents leave the table
    assert merge_anomaly(book, anomaly(2, 1), POLICY, [], S).opened  # and never reopen
    assert apply_action(book, OperatorAction(incident_id="nope", camera_id="cam", kind=1), S) is None


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
    cameras.write_text("cameras:\n  - {id: metro-1, source: synthetic://scene}\n"
                       "  - {id: square-1, source: synthetic://scene}\n")
    routing = tmp_path / "routing.yaml"
    routing.write_text("routes:\n  - {cameras: ['metro-*'], stations: [transit]}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras), "--routing", str(routing)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line.strip() for line in result.stdout.splitlines() if "warning" in line]
    assert warnings == ["warning: camera square-1 matches no route: its incidents reach no station"]
