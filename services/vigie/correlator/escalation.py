"""Escalation after a delay: which incidents nobody acknowledged in time, as actions for the correlator's agent.

The correlator's timer (``app.py``) calls :func:`due_escalations` on each camera entry of the
table partitions its worker owns, and sends the actions it returns to the ``actions`` topic,
keyed by camera: the action agent applies them one by one with the operators' actions
(:func:`vigie.correlator.incidents.apply_action`), so the table has one writer. An action's id
is deterministic (``auto-escalate-<incident>-<level>``, ``...-r<reopenings>-<level>`` after a reopening): sent twice (the next tick, another
worker after a rebalance), it applies once; sent late, after an operator acknowledged the
incident, it is refused (``not_due``).

An incident at level ``k`` (``escalation_level``) is due when it is not acknowledged (NEW, or
ESCALATED with ``acknowledged_ns < escalated_ns``), the camera's route has a step ``k``, and
more than that step's ``after_s`` passed since the incident opened or reopened (level 0) or was
last escalated. ON_HOLD and ACKNOWLEDGED incidents are never escalated by delay.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigie.contracts.v1 import CameraIncidents, Incident, OperatorAction
from vigie.correlator.config import EscalationStep
from vigie.correlator.incidents import NS, SYSTEM


def escalation_id(incident_id: str, level: int, reopened: int = 0) -> str:
    """The id of the automatic escalation of ``incident_id`` to ``level`` (1 is the first) in its episode
    ``reopened`` (a reopening starts the chain again at level 0: its escalations need ids of their own)."""
    episode = f"r{reopened}-" if reopened else ""
    return f"auto-escalate-{incident_id}-{episode}{level}"


def waiting_since(incident: Incident) -> int:
    """When the current wait for an acknowledgement began (correlator clock, ns): the last escalation, or the
    last opening or reopening (from the history; ``first_seen_ns`` for an incident without history)."""
    started = [h.at_ns for h in incident.history if h.what in ("opened", "reopened")]
    return max(incident.escalated_ns, *(started or [incident.first_seen_ns]))


def unacknowledged(incident: Incident) -> bool:
    """NEW, or ESCALATED with no acknowledgement since the last escalation."""
    return incident.state == Incident.STATE_NEW or (
        incident.state == Incident.STATE_ESCALATED and incident.acknowledged_ns < incident.escalated_ns)


def due_escalations(book: CameraIncidents, steps: Sequence[EscalationStep], now_ns: int) -> list[OperatorAction]:
    """The automatic escalations due in ``book`` at ``now_ns`` (ns, the correlator's clock), one per incident.

    ``steps``: the camera's escalation steps (:meth:`~vigie.correlator.config.Routing.escalation_for`).
    Changes nothing: the caller sends the actions to the ``actions`` topic.
    """
    due = []
    for incident in book.incidents:
        level = incident.escalation_level
        if level >= len(steps) or not unacknowledged(incident):
            continue
        if now_ns - waiting_since(incident) > steps[level].after_s * NS:
            due.append(OperatorAction(
                id=escalation_id(incident.id, level + 1, incident.reopened), incident_id=incident.id, camera_id=incident.camera_id,
                kind=OperatorAction.KIND_ESCALATE, operator=SYSTEM, at_ns=now_ns, automatic=True))
    return due
