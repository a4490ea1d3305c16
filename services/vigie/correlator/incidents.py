"""Incident lifecycle: anomalies merge into incidents; operator actions move them between states.

Pure functions over protobuf messages, with no I/O: the faust app (``app.py``) keeps
one :class:`~vigie.contracts.v1.CameraIncidents` per camera in a table and calls these.

States follow the alarm managers of video management systems (Milestone XProtect,
Genetec Security Center): NEW, ACKNOWLEDGED, ESCALATED, CLOSED. The transitions are
:data:`TRANSITIONS`; anything else is refused with a reason (:class:`Change.refused`):

==============  ==============  ==========  ============  =======
state / action  acknowledge     escalate    comment       close
==============  ==============  ==========  ============  =======
NEW             ACKNOWLEDGED    ESCALATED   NEW           CLOSED
ACKNOWLEDGED    refused         ESCALATED   ACKNOWLEDGED  CLOSED
ESCALATED       ESCALATED (*)   refused     ESCALATED     CLOSED
CLOSED          refused         refused     refused       refused
==============  ==============  ==========  ============  =======

(*) acknowledging an escalated incident records who acknowledged it (``acknowledged_by``) and
keeps it escalated: an operator's acknowledgement never de-escalates; a second acknowledgement
of the same escalation is refused. A closed incident never reopens: a new anomaly at the same
place opens a new incident.

Idempotency: every anomaly and action id applied is remembered in the camera's entry (a
bounded ledger of 64-bit digests, see :class:`~vigie.correlator.config.MergePolicy`), so a
record delivered twice (at-least-once delivery, a replay after a crash) changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vigie.contracts.v1 import Anomaly, CameraIncidents, Incident, OperatorAction, Region
from vigie.correlator.config import MergePolicy

NS = 1_000_000_000

_NEW, _ACKED, _ESCALATED, _CLOSED = (Incident.STATE_NEW, Incident.STATE_ACKNOWLEDGED, Incident.STATE_ESCALATED,
                                     Incident.STATE_CLOSED)
_ACK, _ESCALATE, _COMMENT, _CLOSE = (OperatorAction.KIND_ACKNOWLEDGE, OperatorAction.KIND_ESCALATE,
                                     OperatorAction.KIND_COMMENT, OperatorAction.KIND_CLOSE)

#: (state, action kind) -> the state after it; a pair missing here is refused.
TRANSITIONS: dict[tuple[int, int], int] = {
    (_NEW, _ACK): _ACKED, (_NEW, _ESCALATE): _ESCALATED, (_NEW, _CLOSE): _CLOSED,
    (_ACKED, _ESCALATE): _ESCALATED, (_ACKED, _CLOSE): _CLOSED,
    (_ESCALATED, _ACK): _ESCALATED, (_ESCALATED, _CLOSE): _CLOSED,
    **{(state, _COMMENT): state for state in (_NEW, _ACKED, _ESCALATED)},
}

#: Reasons an input changes nothing (the label of the correlator's refusal metric).
REFUSALS = ("duplicate", "unknown_incident", "unknown_kind", "closed", "already_acknowledged",
            "already_escalated", "empty_comment")

#: Closed incident ids remembered per camera (an action on one is refused as "closed").
CLOSED_REMEMBERED = 64


@dataclass(slots=True)
class Change:
    """What an input did to the table.

    Attributes:
        incident: the incident touched; None when the input was refused before one was found.
        publish: whether to publish the incident now.
        opened: the input opened the incident.
        refused: empty when applied, else one of :data:`REFUSALS`.
    """

    incident: Incident | None
    publish: bool
    opened: bool = False
    refused: str = ""


def digest(record_id: str) -> int:
    """64-bit BLAKE2b digest of an anomaly or action id, as kept in the idempotency ledger."""
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "little")


def _remember(ledger, value, keep: int) -> None:  # noqa: ANN001 - a protobuf repeated field
    ledger.append(value)
    if len(ledger) > keep:
        del ledger[: len(ledger) - keep]


def iou(a: Region, b: Region) -> float:
    """Intersection over union of two regions, in [0, 1]."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def track_run(track_id: str) -> str | None:
    """The detector run of a run-qualified track id ``<run>-<n>`` (``n`` digits), or None for any other id.

    Assumption (the detector's contract): a track id of the form ``<run>-<n>`` is never given
    twice, because ``<run>`` is unique to one detector process run and ``n`` never repeats in a
    run. Ids without it (a detector that numbers tracks from 1 in every process) may be reused
    by another object after a restart, so the correlator never merges on them alone.
    """
    run, sep, n = track_id.rpartition("-")
    return run if sep and run and n.isdigit() else None


def _same_track(anomaly: Anomaly, incident: Incident) -> bool:
    """The anomaly continues one of the incident's tracks: equal run-qualified ids (same run, same track)."""
    if track_run(anomaly.track_id) is None:
        return False
    return anomaly.track_id in incident.track_ids


def _matches(incident: Incident, anomaly: Anomaly, policy: MergePolicy) -> bool:
    if incident.kind != anomaly.kind or incident.state == Incident.STATE_CLOSED:
        return False
    if anomaly.capture_ns - incident.last_seen_ns > policy.window_s * NS:
        return False
    if anomaly.kind in policy.camera_wide_kinds or _same_track(anomaly, incident):
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

    An anomaly whose id is in the camera's ledger (the last ``policy.remember_ids``) changes
    nothing (``refused="duplicate"``). An anomaly of the same kind whose regions overlap an
    open incident's (IoU at least ``policy.min_iou``), or that continues one of its
    run-qualified tracks (:func:`track_run`), within ``policy.window_s`` of its last anomaly,
    joins it; other anomalies open a new incident. An update that only grows the count is
    published at most every ``policy.update_interval_s``.
    """
    key = digest(anomaly.id)
    if key in book.recent_anomalies or any(i.opened_by == anomaly.id for i in book.incidents):
        return Change(None, publish=False, refused="duplicate")
    _remember(book.recent_anomalies, key, policy.remember_ids)
    _forget_old(book, anomaly.capture_ns, policy)
    for incident in book.incidents:
        if _matches(incident, anomaly, policy):
            incident.count += 1
            if anomaly.capture_ns >= incident.last_seen_ns:  # the latest facts (anomalies may come late)
                incident.attributes.clear()
                incident.attributes.update(anomaly.attributes)
            incident.last_seen_ns = max(incident.last_seen_ns, anomaly.capture_ns)
            incident.severity = max(incident.severity, anomaly.score)
            if anomaly.track_id and anomaly.track_id not in incident.track_ids:
                incident.track_ids.append(anomaly.track_id)
            due = now_ns - incident.updated_ns >= policy.update_interval_s * NS
            if due:
                incident.revision += 1
                incident.updated_ns = now_ns
            return Change(incident, publish=due)
    incident = open_incident(anomaly, stations, now_ns)
    book.incidents.append(incident)
    return Change(incident, publish=True, opened=True)


def apply_action(book: CameraIncidents, action: OperatorAction, now_ns: int, remember: int = 256) -> Change:
    """Apply an operator action to its incident in ``book`` (modified in place) following :data:`TRANSITIONS`.

    Acknowledge, escalate and close move the state; comment appends ``operator: text``;
    a closed incident leaves the table. An applied action is published and its id enters
    the camera's ledger (the last ``remember`` ids). Anything else changes nothing and
    returns the reason in ``refused``: ``duplicate`` (its id was applied already),
    ``unknown_incident``, ``closed``, ``unknown_kind``, ``already_acknowledged``,
    ``already_escalated``, ``empty_comment``.
    """
    key = digest(action.id) if action.id else None
    if key is not None and key in book.recent_actions:
        return Change(None, publish=False, refused="duplicate")
    found = [(n, i) for n, i in enumerate(book.incidents) if i.id == action.incident_id]
    if not found:
        closed = action.incident_id in book.closed_incidents
        return Change(None, publish=False, refused="closed" if closed else "unknown_incident")
    index, incident = found[0]
    refused = _refusal(incident, action)
    if refused:
        return Change(incident, publish=False, refused=refused)
    if key is not None:
        _remember(book.recent_actions, key, remember)
    incident.state = TRANSITIONS[(incident.state, action.kind)]
    if action.kind == _COMMENT:
        incident.comments.append(f"{action.operator}: {action.comment}")
    elif action.kind == _ACK:
        incident.acknowledged_by, incident.acknowledged_ns = action.operator, now_ns
    elif action.kind == _ESCALATE:
        incident.escalated_ns = now_ns
    incident.operator = action.operator
    incident.revision += 1
    incident.updated_ns = now_ns
    if incident.state == _CLOSED:
        del book.incidents[index]
        _remember(book.closed_incidents, incident.id, CLOSED_REMEMBERED)
    return Change(incident, publish=True)


def _refusal(incident: Incident, action: OperatorAction) -> str:
    """Why ``action`` may not apply to ``incident`` now, or an empty string."""
    if action.kind not in (_ACK, _ESCALATE, _COMMENT, _CLOSE):
        return "unknown_kind"
    if incident.state == _CLOSED:
        return "closed"
    if action.kind == _COMMENT and not action.comment.strip():
        return "empty_comment"
    if (incident.state, action.kind) == (_ESCALATED, _ACK) and incident.acknowledged_ns >= incident.escalated_ns:
        return "already_acknowledged"  # this escalation was acknowledged already
    if (incident.state, action.kind) not in TRANSITIONS:
        return {_ACK: "already_acknowledged", _ESCALATE: "already_escalated"}.get(action.kind, "closed")
    return ""


def _forget_old(book: CameraIncidents, now_capture_ns: int, policy: MergePolicy) -> None:
    keep = [i for i in book.incidents if now_capture_ns - i.last_seen_ns <= policy.forget_after_s * NS]
    if len(keep) != len(book.incidents):
        del book.incidents[:]
        book.incidents.extend(keep)
