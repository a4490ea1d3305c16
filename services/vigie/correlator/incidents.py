"""Incident lifecycle: anomalies merge into incidents; operator actions move them between states.

Pure functions over protobuf messages, with no I/O: the faust app (``app.py``) keeps
one :class:`~vigie.contracts.v1.CameraIncidents` per camera in a table and calls these.

States follow the alarm managers of video management systems (Milestone XProtect,
Genetec Security Center): NEW, ACKNOWLEDGED, ON_HOLD, ESCALATED, CLOSED. The transitions are
:data:`TRANSITIONS` (the station checks its actions against the same table, :func:`refusal`);
anything else is refused with a reason (:class:`Change.refused`):

============  ============  ============  =======  ============  ==========  ===========  ======
state/action  acknowledge   assign        hold     resume        escalate    comment      close
============  ============  ============  =======  ============  ==========  ===========  ======
NEW           ACKNOWLEDGED  ACKNOWLEDGED  refused  refused       ESCALATED   NEW          CLOSED
ACKNOWLEDGED  refused       ACKNOWLEDGED  ON_HOLD  refused       ESCALATED   ACKNOWLEDGED CLOSED
ON_HOLD       refused       ON_HOLD       refused  ACKNOWLEDGED  ESCALATED   ON_HOLD      CLOSED
ESCALATED     ESCALATED(*)  ESCALATED     refused  refused       (**)        ESCALATED    CLOSED
CLOSED        refused       refused       refused  refused       refused     refused      refused
============  ============  ============  =======  ============  ==========  ===========  ======

Acknowledge takes the incident (``owner`` = the operator); assign gives it to ``assignee``.
(*) acknowledging an escalated incident records who acknowledged it (``acknowledged_by``) and
keeps it escalated: an acknowledgement never de-escalates; a second acknowledgement of the same
escalation is refused. (**) only the correlator's automatic escalation to the next level
(:mod:`vigie.correlator.escalation`); an operator's is refused ("already_escalated").
Escalating adds the stations of the camera's next escalation step
(:meth:`~vigie.correlator.config.Routing.escalation_for`) and raises ``escalation_level``.
Closing needs a verdict (:class:`~vigie.contracts.v1.Verdict`), and a reason for a false alarm.

Every applied transition appends a :class:`~vigie.contracts.v1.HistoryItem`; comments also a
:class:`~vigie.contracts.v1.Note`. A closed incident stays in its camera's entry for the kind's
reactivation threshold (:meth:`~vigie.correlator.config.MergePolicy.reactivation_for`): an
anomaly of the same kind, zone and place then reopens it (NEW again, same id, ``reopened`` + 1).

Idempotency: every anomaly and action id applied is remembered in the camera's entry (a
bounded ledger of 64-bit digests, see :class:`~vigie.correlator.config.MergePolicy`), so a
record delivered twice (at-least-once delivery, a replay after a crash) changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from vigie.contracts.v1 import (Anomaly, CameraIncidents, HistoryItem, Incident, Note, OperatorAction, Region,
                                Verdict)
from vigie.correlator.config import EscalationStep, MergePolicy

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: The actor of what the correlator does itself (opening, escalation after a delay, reopening).
SYSTEM = "vigie"

_NEW, _ACKED, _HOLD_STATE, _ESCALATED, _CLOSED = (
    Incident.STATE_NEW, Incident.STATE_ACKNOWLEDGED, Incident.STATE_ON_HOLD, Incident.STATE_ESCALATED,
    Incident.STATE_CLOSED)
_ACK, _ESCALATE, _COMMENT, _CLOSE, _HOLD, _RESUME, _ASSIGN = (
    OperatorAction.KIND_ACKNOWLEDGE, OperatorAction.KIND_ESCALATE, OperatorAction.KIND_COMMENT,
    OperatorAction.KIND_CLOSE, OperatorAction.KIND_HOLD, OperatorAction.KIND_RESUME, OperatorAction.KIND_ASSIGN)
_OPEN_STATES = (_NEW, _ACKED, _HOLD_STATE, _ESCALATED)

#: (state, action kind) -> the state after it; a pair missing here is refused.
TRANSITIONS: dict[tuple[int, int], int] = {
    (_NEW, _ACK): _ACKED, (_NEW, _ASSIGN): _ACKED, (_NEW, _ESCALATE): _ESCALATED,
    (_ACKED, _HOLD): _HOLD_STATE, (_ACKED, _ASSIGN): _ACKED, (_ACKED, _ESCALATE): _ESCALATED,
    (_HOLD_STATE, _RESUME): _ACKED, (_HOLD_STATE, _ASSIGN): _HOLD_STATE, (_HOLD_STATE, _ESCALATE): _ESCALATED,
    (_ESCALATED, _ACK): _ESCALATED, (_ESCALATED, _ASSIGN): _ESCALATED,
    (_ESCALATED, _ESCALATE): _ESCALATED,  # the next level, automatic only (see _refusal)
    **{(state, _COMMENT): state for state in _OPEN_STATES},
    **{(state, _CLOSE): _CLOSED for state in _OPEN_STATES},
}

#: History word of each action kind.
HISTORY_WORDS = {_ACK: "acknowledged", _ASSIGN: "assigned", _HOLD: "on_hold", _RESUME: "resumed",
                 _ESCALATE: "escalated", _COMMENT: "commented", _CLOSE: "closed"}

#: Reasons an input changes nothing (the label of the correlator's refusal metric).
REFUSALS = ("duplicate", "unknown_incident", "unknown_kind", "closed", "already_acknowledged",
            "already_escalated", "empty_comment", "not_allowed", "verdict_missing", "reason_missing",
            "assignee_missing", "not_due")

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
        reopened: the input reopened a closed incident (the correlator writes it to the register).
    """

    incident: Incident | None
    publish: bool
    opened: bool = False
    refused: str = ""
    reopened: bool = False


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


def zone_of(anomaly: Anomaly) -> str:
    """The anomaly's zone (its ``zone`` attribute as an integer string, e.g. "0"), or "" for the whole view."""
    value = anomaly.attributes.get("zone")
    return "" if value is None else str(int(value))


def _same_track(anomaly: Anomaly, incident: Incident) -> bool:
    """The anomaly continues one of the incident's tracks: equal run-qualified ids (same run, same track)."""
    if track_run(anomaly.track_id) is None:
        return False
    return anomaly.track_id in incident.track_ids


def _same_place(incident: Incident, anomaly: Anomaly, policy: MergePolicy) -> bool:
    """Same kind and zone, and the same track, overlapping regions or a camera-wide kind."""
    if incident.kind != anomaly.kind or incident.zone != zone_of(anomaly):
        return False
    if anomaly.kind in policy.camera_wide_kinds or _same_track(anomaly, incident):
        return True
    return any(iou(a, b) >= policy.min_iou for a in anomaly.regions for b in incident.regions) or (
        not anomaly.regions and not incident.regions
    )


def _matches(incident: Incident, anomaly: Anomaly, policy: MergePolicy) -> bool:
    if incident.state == _CLOSED or anomaly.capture_ns - incident.last_seen_ns > policy.window_s * NS:
        return False
    return _same_place(incident, anomaly, policy)


def _history(incident: Incident, at_ns: int, actor: str, what: str, detail: str = "") -> None:
    incident.history.append(HistoryItem(at_ns=at_ns, actor=actor, what=what, detail=detail))


def open_incident(anomaly: Anomaly, stations: list[str], now_ns: int, priority: int = 3) -> Incident:
    """A NEW incident opened by ``anomaly``; its id derives from the anomaly's, so a replay gives the same id.

    ``priority``: 1 (highest) to 5, from :meth:`~vigie.correlator.config.PriorityPolicy.priority_for`.
    """
    incident = Incident(
        id=f"inc-{anomaly.id}", kind=anomaly.kind, camera_id=anomaly.camera_id, state=_NEW,
        first_seen_ns=anomaly.capture_ns, last_seen_ns=anomaly.capture_ns, count=1, severity=anomaly.score,
        revision=1, updated_ns=now_ns, stations=stations, opened_by=anomaly.id,
        track_ids=[anomaly.track_id] if anomaly.track_id else [], priority=priority, zone=zone_of(anomaly),
    )
    _take_facts(incident, anomaly)
    _history(incident, now_ns, SYSTEM, "opened", f"{anomaly.kind} on {anomaly.camera_id}")
    return incident


def _take_facts(incident: Incident, anomaly: Anomaly) -> None:
    """The latest anomaly's facts and frame: the snapshot follows the incident (not its opening frame)."""
    incident.attributes.clear()
    incident.attributes.update(anomaly.attributes)
    del incident.regions[:]
    incident.regions.extend(anomaly.regions)
    if anomaly.HasField("frame"):
        incident.snapshot.CopyFrom(anomaly.frame)
        incident.snapshot_capture_ns = anomaly.capture_ns
        incident.frame_width, incident.frame_height = anomaly.frame_width, anomaly.frame_height


def _grow(incident: Incident, anomaly: Anomaly) -> None:
    incident.count += 1
    if anomaly.capture_ns >= incident.last_seen_ns:  # the latest facts (anomalies may come late)
        _take_facts(incident, anomaly)
    incident.last_seen_ns = max(incident.last_seen_ns, anomaly.capture_ns)
    incident.severity = max(incident.severity, anomaly.score)
    if anomaly.track_id and anomaly.track_id not in incident.track_ids:
        incident.track_ids.append(anomaly.track_id)


def merge_anomaly(book: CameraIncidents, anomaly: Anomaly, policy: MergePolicy, stations: list[str], now_ns: int,
                  priority: int = 3) -> Change:
    """Merge ``anomaly`` into ``book`` (modified in place) and say what to publish.

    An anomaly whose id is in the camera's ledger (the last ``policy.remember_ids``) changes
    nothing (``refused="duplicate"``). An anomaly of the same kind and zone whose regions overlap an
    open incident's (IoU at least ``policy.min_iou``), or that continues one of its
    run-qualified tracks (:func:`track_run`), within ``policy.window_s`` of its last anomaly,
    joins it; an update that only grows the count is published at most every
    ``policy.update_interval_s``. Else one at the same place as an incident closed less than the
    kind's reactivation threshold ago (``now_ns`` minus ``closed_ns``) reopens it (published);
    other anomalies open a new incident of ``priority``.
    """
    key = digest(anomaly.id)
    if key in book.recent_anomalies or any(i.opened_by == anomaly.id for i in book.incidents):
        return Change(None, publish=False, refused="duplicate")
    _remember(book.recent_anomalies, key, policy.remember_ids)
    _forget_old(book, now_ns, policy)
    for incident in book.incidents:
        if _matches(incident, anomaly, policy):
            _grow(incident, anomaly)
            due = now_ns - incident.updated_ns >= policy.update_interval_s * NS
            if due:
                incident.revision += 1
                incident.updated_ns = now_ns
            return Change(incident, publish=due)
    for incident in reversed(book.incidents):
        if incident.state == _CLOSED and _same_place(incident, anomaly, policy):
            _reopen(book, incident, anomaly, stations, now_ns)
            return Change(incident, publish=True, reopened=True)
    book.incidents.append(open_incident(anomaly, stations, now_ns, priority))
    return Change(book.incidents[-1], publish=True, opened=True)


def _reopen(book: CameraIncidents, incident: Incident, anomaly: Anomaly, stations: list[str], now_ns: int) -> None:
    """A closed incident opened again by ``anomaly``: new, nobody's, its escalation chain started again from the
    route's ``stations`` (an earlier escalation and its acknowledgement belonged to the closed episode)."""
    incident.state = _NEW
    incident.reopened += 1
    incident.reopened_ns = anomaly.capture_ns
    incident.ClearField("verdict")
    incident.closed_ns = 0
    incident.owner = ""
    incident.escalation_level, incident.escalated_ns = 0, 0
    incident.acknowledged_by, incident.acknowledged_ns = "", 0
    del incident.stations[:]
    incident.stations.extend(stations)
    _grow(incident, anomaly)
    _history(incident, now_ns, SYSTEM, "reopened", f"anomaly {anomaly.id}")
    incident.revision += 1
    incident.updated_ns = now_ns
    if incident.id in book.closed_incidents:
        book.closed_incidents.remove(incident.id)


def auto_level(action: OperatorAction) -> int:
    """The level an automatic escalation raises its incident to (its id ends with ``-<level>``), else 0."""
    _, _, level = action.id.rpartition("-")
    return int(level) if action.automatic and level.isdigit() else 0


def refusal(incident: Incident, action: OperatorAction) -> str:
    """Why ``action`` may not apply to ``incident`` now (one of :data:`REFUSALS`), or "" when it may.

    The station calls it too (409 before anything is published), so both sides follow one table.
    """
    kind, state = action.kind, incident.state
    if kind not in HISTORY_WORDS:
        return "unknown_kind"
    if state == _CLOSED:
        return "closed"
    if kind == _COMMENT and not action.comment.strip():
        return "empty_comment"
    if kind == _ASSIGN and not action.assignee.strip():
        return "assignee_missing"
    if kind == _CLOSE and action.verdict == Verdict.KIND_UNSPECIFIED:
        return "verdict_missing"
    if kind == _CLOSE and action.verdict == Verdict.KIND_FALSE_ALARM and action.reason == Verdict.REASON_UNSPECIFIED:
        return "reason_missing"
    if kind == _ESCALATE and action.automatic:
        unacknowledged = state == _NEW or (state == _ESCALATED and incident.acknowledged_ns < incident.escalated_ns)
        return "" if unacknowledged and auto_level(action) == incident.escalation_level + 1 else "not_due"
    if (state, kind) == (_ESCALATED, _ESCALATE):
        return "already_escalated"
    if (state, kind) == (_ESCALATED, _ACK) and incident.acknowledged_ns >= incident.escalated_ns:
        return "already_acknowledged"  # this escalation was acknowledged already
    if (state, kind) not in TRANSITIONS:
        return {_ACK: "already_acknowledged"}.get(kind, "not_allowed")
    return ""


def apply_action(book: CameraIncidents, action: OperatorAction, now_ns: int, policy: MergePolicy | None = None,
                 escalation: Sequence[EscalationStep] = ()) -> Change:
    """Apply an operator action to its incident in ``book`` (modified in place) following :data:`TRANSITIONS`.

    ``escalation``: the camera's escalation steps (an escalation adds step ``escalation_level``'s
    stations). An applied action is published, appended to the incident's history, and its id
    enters the camera's ledger (the last ``policy.remember_actions``); a closed incident stays
    in the entry for its kind's reactivation threshold. Anything else changes nothing and
    returns the reason in ``refused`` (:data:`REFUSALS`): ``duplicate`` (its id was applied
    already), ``unknown_incident``, or :func:`refusal`'s.
    """
    policy = policy or MergePolicy()
    key = digest(action.id) if action.id else None
    if key is not None and key in book.recent_actions:
        return Change(None, publish=False, refused="duplicate")
    _forget_closed(book, now_ns, policy)
    found = [i for i in book.incidents if i.id == action.incident_id]
    if not found:
        closed = action.incident_id in book.closed_incidents
        return Change(None, publish=False, refused="closed" if closed else "unknown_incident")
    incident = found[0]
    refused = refusal(incident, action)
    if refused:
        return Change(incident, publish=False, refused=refused)
    if key is not None:
        _remember(book.recent_actions, key, policy.remember_actions)
    incident.state = TRANSITIONS[(incident.state, action.kind)]
    detail = _apply_effect(incident, action, now_ns, escalation)
    _history(incident, now_ns, action.operator, HISTORY_WORDS[action.kind], detail)
    incident.operator = action.operator
    incident.revision += 1
    incident.updated_ns = now_ns
    if incident.state == _CLOSED:
        _remember(book.closed_incidents, incident.id, CLOSED_REMEMBERED)
        _forget_closed(book, now_ns, policy)
    return Change(incident, publish=True)


def withdraw_anomaly(book: CameraIncidents, withdrawal: Anomaly, now_ns: int, policy: MergePolicy | None = None) -> Change:
    """Apply a withdrawal (an anomaly with ``withdraws``, :mod:`vigie.detector.verdicts`) to ``book``, in place.

    The incident opened by the withdrawn anomaly, still new (nobody took it), is closed as a false alarm with
    the withdrawal's reason, by ``vigie``, its words as the closing comment; one that someone took meanwhile
    stays open and gets them as a comment. It is an automatic action of id ``withdrawal.id`` through
    :func:`apply_action` (same history, ledger and refusals: a withdrawal delivered again is a ``duplicate``).
    A withdrawn anomaly that opened no incident of the entry (it joined or reopened another one, which stands)
    is refused as ``unknown_incident``.
    """
    opened = [i for i in book.incidents if i.opened_by == withdrawal.withdraws]
    if not opened:
        return Change(None, publish=False, refused="unknown_incident")
    incident = opened[0]
    close = incident.state == _NEW
    action = OperatorAction(
        id=withdrawal.id, incident_id=incident.id, camera_id=withdrawal.camera_id, kind=_CLOSE if close else _COMMENT,
        operator=SYSTEM, at_ns=now_ns, comment=f"withdrawn: {withdrawal.withdrawal}", automatic=True,
        verdict=Verdict.KIND_FALSE_ALARM if close else Verdict.KIND_UNSPECIFIED,
        reason=withdrawal.withdrawal_reason if close else Verdict.REASON_UNSPECIFIED)
    return apply_action(book, action, now_ns, policy)


def _apply_effect(incident: Incident, action: OperatorAction, now_ns: int,
                  escalation: Sequence[EscalationStep]) -> str:
    """What ``action`` changes besides the state; returns the history item's detail."""
    kind, who = action.kind, action.operator
    if kind == _COMMENT:
        incident.comments.append(f"{who}: {action.comment}")
        incident.notes.append(Note(author=who, at_ns=now_ns, text=action.comment))
        return action.comment[:200]
    if kind == _ACK:
        incident.acknowledged_by, incident.acknowledged_ns, incident.owner = who, now_ns, who
        return ""
    if kind == _ASSIGN:
        incident.owner = action.assignee
        return f"to {action.assignee}"
    if kind == _CLOSE:
        incident.verdict.CopyFrom(Verdict(kind=action.verdict, reason=action.reason, author=who, at_ns=now_ns))
        incident.closed_ns = now_ns
        if action.comment.strip():  # the closing dialog's comment is a note like any other
            incident.comments.append(f"{who}: {action.comment}")
            incident.notes.append(Note(author=who, at_ns=now_ns, text=action.comment))
        reason = f" ({Verdict.Reason.Name(action.reason).removeprefix('REASON_').lower()})" if action.reason else ""
        said = f": {action.comment[:200]}" if action.comment.strip() else ""
        return Verdict.Kind.Name(action.verdict).removeprefix("KIND_").lower() + reason + said
    if kind == _ESCALATE:
        return _escalate(incident, action, now_ns, escalation)
    return ""


def _escalate(incident: Incident, action: OperatorAction, now_ns: int, escalation: Sequence[EscalationStep]) -> str:
    step = escalation[incident.escalation_level] if incident.escalation_level < len(escalation) else None
    incident.escalation_level += 1
    incident.escalated_ns = now_ns
    added = [s for s in (step.to if step else []) if s not in incident.stations]
    incident.stations.extend(added)
    how = f"automatic after {step.after_s:g} s" if action.automatic and step else f"by {action.operator}"
    return f"level {incident.escalation_level}, {how}" + (f", to {', '.join(step.to)}" if step else "")


def _keep(book: CameraIncidents, keep) -> None:  # noqa: ANN001 - a predicate on an incident
    kept = [i for i in book.incidents if keep(i)]
    if len(kept) != len(book.incidents):
        del book.incidents[:]
        book.incidents.extend(kept)


def _forget_closed(book: CameraIncidents, now_ns: int, policy: MergePolicy) -> None:
    """Closed incidents leave the entry once past their kind's reactivation threshold."""
    _keep(book, lambda i: i.state != _CLOSED or now_ns - i.closed_ns < policy.reactivation_for(i.kind) * NS)


def _forget_old(book: CameraIncidents, now_ns: int, policy: MergePolicy) -> None:
    """Closed incidents past their reactivation threshold leave the entry; open ones only over ``policy.max_open``
    (the one unchanged for longest first, logged: a camera nobody works)."""
    _forget_closed(book, now_ns, policy)
    open_ones = [i for i in book.incidents if i.state != _CLOSED]
    if len(open_ones) >= policy.max_open:
        dropped = {i.id for i in sorted(open_ones, key=lambda i: i.updated_ns)[: len(open_ones) - policy.max_open + 1]}
        log.error("camera %s has %d open incidents: %s leave the correlator's table (raise merge.max_open, or "
                  "close them)", book.incidents[0].camera_id, len(open_ones), ", ".join(sorted(dropped)))
        _keep(book, lambda i: i.id not in dropped)
