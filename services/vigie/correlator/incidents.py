"""Incident lifecycle: anomalies merge into incidents; operator actions move them between states.

Pure functions over protobuf messages, with no I/O: the faust app (``app.py``) keeps
one :class:`~vigie.contracts.v1.CameraIncidents` per camera in a table and calls these.

States follow the alarm managers of video management systems (Milestone XProtect,
Genetec Security Center): NEW, ACKNOWLEDGED, ESCALATED, CLOSED. A closed incident
never reopens: a new anomaly at the same place opens a new incident.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, Region
from vigie.correlator.config import MergePolicy

NS = 1_000_000_000

_ACTION_STATE = {
    OperatorAction.KIND_ACKNOWLEDGE: Incident.STATE_ACKNOWLEDGED,
    OperatorAction.KIND_ESCALATE: Incident.STATE_ESCALATED,
    OperatorAction.KIND_CLOSE: Incident.STATE_CLOSED,
}


@dataclass(slots=True)
class Change:
    """What an input did to the table: the incident touched and whether to publish it."""

    incident: Incident
    publish: bool
    opened: bool = False


def iou(a: Region, b: Region) -> float:
    """Intersection over union of two regions, in [0, 1]."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def _matches(incident: Incident, anomaly: Anomaly, policy: MergePolicy) -> bool:
    if incident.kind != anomaly.kind or incident.state == Incident.STATE_CLOSED:
        return False
    if anomaly.capture_ns - incident.last_seen_ns > policy.window_s * NS:
        return False
    if anomaly.kind in policy.camera_wide_kinds:
        return True
    if anomaly.track_id and anomaly.track_id in incident.track_ids:
        return True
    return any(iou(a, b) >= policy.min_iou for a in anomaly.regions for b in incident.regions) or (
        not anomaly.regions and not incident.regions
    )


def open_incident(anomaly: Anomaly, stations: list[str], now_ns: int) -> Incident:
    """A NEW incident opened by ``anomaly``; its id derives from the anomaly's, so a replay gives the same id."""
    return Incident(
        id=f"inc-{anomaly.id}",
        kind=anomaly.kind,
        camera_id=anomaly.camera_id,
        state=Incident.STATE_NEW,
        first_seen_ns=anomaly.capture_ns,
        last_seen_ns=anomaly.capture_ns,
        count=1,
        severity=anomaly.score,
        regions=list(anomaly.regions),
        snapshot=anomaly.frame,
        frame_width=anomaly.frame_width,
        frame_height=anomaly.frame_height,
        revision=1,
        updated_ns=now_ns,
        stations=stations,
        snapshot_capture_ns=anomaly.capture_ns,
        opened_by=anomaly.id,
        track_ids=[anomaly.track_id] if anomaly.track_id else [],
        attributes=dict(anomaly.attributes),
    )


def merge_anomaly(
    book: CameraIncidents, anomaly: Anomaly, policy: MergePolicy, stations: list[str], now_ns: int
) -> Change:
    """Merge ``anomaly`` into ``book`` (modified in place) and say what to publish.

    An anomaly of the same kind whose regions overlap an open incident's (IoU at least
    ``policy.min_iou``), within ``policy.window_s`` of its last anomaly, joins it; other
    anomalies open a new incident. An update that only grows the count is published at
    most every ``policy.update_interval_s``.
    """
    _forget_old(book, anomaly.capture_ns, policy)
    for incident in book.incidents:
        if incident.opened_by == anomaly.id:  # the same anomaly delivered twice (at-least-once)
            return Change(incident, publish=False)
        if _matches(incident, anomaly, policy):
            incident.count += 1
            incident.last_seen_ns = max(incident.last_seen_ns, anomaly.capture_ns)
            incident.severity = max(incident.severity, anomaly.score)
            if anomaly.track_id and anomaly.track_id not in incident.track_ids:
                incident.track_ids.append(anomaly.track_id)
            if anomaly.capture_ns >= incident.last_seen_ns:  # the latest facts (anomalies may come late)
                incident.attributes.clear()
                incident.attributes.update(anomaly.attributes)
            due = now_ns - incident.updated_ns >= policy.update_interval_s * NS
            if due:
                incident.revision += 1
                incident.updated_ns = now_ns
            return Change(incident, publish=due)
    incident = open_incident(anomaly, stations, now_ns)
    book.incidents.append(incident)
    return Change(incident, publish=True, opened=True)


def apply_action(book: CameraIncidents, action: OperatorAction, now_ns: int) -> Change | None:
    """Apply an operator action to its incident in ``book``; None when the incident is unknown.

    Acknowledge, escalate and close set the state (close is final; a closed incident
    leaves the table); comment appends ``operator: text``. Every action is published.
    """
    for index, incident in enumerate(book.incidents):
        if incident.id != action.incident_id:
            continue
        if incident.state == Incident.STATE_CLOSED:
            return Change(incident, publish=False)
        if action.kind == OperatorAction.KIND_COMMENT:
            incident.comments.append(f"{action.operator}: {action.comment}")
        elif action.kind in _ACTION_STATE:
            incident.state = _ACTION_STATE[action.kind]
        else:
            return None
        incident.operator = action.operator
        incident.revision += 1
        incident.updated_ns = now_ns
        if incident.state == Incident.STATE_CLOSED:
            del book.incidents[index]
        return Change(incident, publish=True)
    return None


def _forget_old(book: CameraIncidents, now_capture_ns: int, policy: MergePolicy) -> None:
    keep = [i for i in book.incidents if now_capture_ns - i.last_seen_ns <= policy.forget_after_s * NS]
    if len(keep) != len(book.incidents):
        del book.incidents[:]
        book.incidents.extend(keep)
