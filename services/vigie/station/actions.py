"""The body of a console action (``POST /api/incidents/{id}/actions``): its words and their checks.

Whether the action applies to the incident's state is the correlator's transition table
(:func:`vigie.correlator.incidents.refusal`), which the station calls before publishing.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from vigie.contracts.v1 import OperatorAction, Verdict

#: Action words of the API and their kinds.
ACTIONS = {
    "acknowledge": OperatorAction.KIND_ACKNOWLEDGE,
    "hold": OperatorAction.KIND_HOLD,
    "resume": OperatorAction.KIND_RESUME,
    "assign": OperatorAction.KIND_ASSIGN,
    "escalate": OperatorAction.KIND_ESCALATE,
    "comment": OperatorAction.KIND_COMMENT,
    "close": OperatorAction.KIND_CLOSE,
}
#: The words of the close verdicts and false-alarm reasons, and their enum values.
VERDICTS = {Verdict.Kind.Name(v).removeprefix("KIND_").lower(): v for v in Verdict.Kind.values() if v}
REASONS = {Verdict.Reason.Name(v).removeprefix("REASON_").lower(): v for v in Verdict.Reason.values() if v}
#: The field each action needs.
NEEDS = {OperatorAction.KIND_COMMENT: "comment", OperatorAction.KIND_ASSIGN: "assignee",
         OperatorAction.KIND_CLOSE: "verdict"}
#: The fields each action may carry besides ``action`` (a comment also with a hold, an escalation or a closing).
ALLOWED = {
    OperatorAction.KIND_ACKNOWLEDGE: set(), OperatorAction.KIND_RESUME: set(),
    OperatorAction.KIND_HOLD: {"comment"}, OperatorAction.KIND_ESCALATE: {"comment"},
    OperatorAction.KIND_COMMENT: {"comment"}, OperatorAction.KIND_ASSIGN: {"assignee"},
    OperatorAction.KIND_CLOSE: {"comment", "verdict", "reason"},
}
#: Longest comment and user name accepted (longer ones are refused, never cut).
MAX_COMMENT, MAX_NAME = 2000, 64
#: What some of the correlator's refusals mean to a console user (409).
REFUSED = {
    "closed": "this incident is closed: no action applies to it any more",
    "already_acknowledged": "this incident is already acknowledged",
    "already_escalated": "this incident is already escalated",
}
EXPECTED = {
    "action": " | ".join(ACTIONS), "comment": "text (needed by 'comment')",
    "assignee": "user name (needed by 'assign')", "verdict": f"{' | '.join(VERDICTS)} (needed by 'close')",
    "reason": f"{' | '.join(REASONS)} (needed by a false_alarm verdict)",
}
#: The 400 answer's description of a good body.
SHAPE = f"expected JSON {json.dumps(EXPECTED)}"


def action_body(body: Any) -> tuple[dict[str, str], int]:
    """``body`` (parsed JSON) checked, and its action kind.

    Raises HTTPBadRequest naming what is wrong: not an object of text fields with a known ``action``, an
    unknown key, a field the action does not take (:data:`ALLOWED`; a ``reason`` without the false-alarm
    verdict), a comment over :data:`MAX_COMMENT` or an assignee over :data:`MAX_NAME` characters, a field
    the action needs missing or blank (``comment``, ``assignee``, ``verdict``, and ``reason`` for a false
    alarm), an unknown verdict or reason word.
    """
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=f"the body is not a JSON object: {SHAPE}")
    for key in EXPECTED:
        if not isinstance(body.get(key, ""), str):
            raise web.HTTPBadRequest(text=f"'{key}' is not text: {SHAPE}")
    if body.get("action") not in ACTIONS:
        said = f"{body['action'][:40]!r}" if body.get("action") else "missing"
        raise web.HTTPBadRequest(text=f"'action' {said}: expected {' | '.join(ACTIONS)}")
    kind = ACTIONS[body["action"]]
    unknown = sorted(str(key) for key in body if key not in EXPECTED)
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown key {unknown[0]!r} in the action; accepted keys: "
                                      f"{', '.join(EXPECTED)} ({SHAPE})")
    stray = sorted(key for key in body if key != "action" and key not in ALLOWED[kind])
    if stray:
        raise web.HTTPBadRequest(text=f"'{stray[0]}' does not apply to a '{body['action']}' action "
                                      f"(it takes {', '.join(sorted(ALLOWED[kind])) or 'no other field'})")
    if body.get("reason") and body.get("verdict") != "false_alarm":
        raise web.HTTPBadRequest(text="'reason' goes with the 'false_alarm' verdict only")
    for field, longest in (("comment", MAX_COMMENT), ("assignee", MAX_NAME)):
        if len(body.get(field, "")) > longest:
            raise web.HTTPBadRequest(text=f"'{field}' is longer than {longest} characters")
    needed = [NEEDS.get(kind), "reason" if kind == OperatorAction.KIND_CLOSE and body.get("verdict") == "false_alarm"
              else None]
    for field in needed:
        if field and not body.get(field, "").strip():
            raise web.HTTPBadRequest(text=f"a '{body['action']}' action needs a non-empty '{field}': {EXPECTED[field]}")
    for field, words in (("verdict", VERDICTS), ("reason", REASONS)):
        if body.get(field) and body[field] not in words:
            raise web.HTTPBadRequest(text=f"{field} {body[field][:40]!r}: expected {' | '.join(words)}")
    return body, kind


def describe(body: dict[str, str]) -> str:
    """The register's detail of an action: its word, with its assignee, verdict and reason when given."""
    extra = [f"{key} {body[key]}" for key in ("assignee", "verdict", "reason") if body.get(key)]
    return body["action"] + (f" ({', '.join(extra)})" if extra else "")
