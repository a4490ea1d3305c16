"""The alarm lifecycle through the console's buttons, in headless Chromium, with the real correlator and broker:
an operator takes an incident, comments, holds and resumes it, closes it with a verdict; another incident nobody
takes is escalated after its route's 2 s delay (the row says so, and the operator's buttons no longer apply);
an anomaly at the closed incident's place reopens it in the same row, counted."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.stack import service
from tests.station_console import read_topic
from tests.station_support import console_page, station_namespace
from tests.test_alarm_lifecycle import anomaly, send_anomalies
from tests.test_console_alarms import BEEPS
from vigie.contracts.v1 import OperatorAction, Verdict

pytestmark = [pytest.mark.broker, pytest.mark.browser]

ROUTING = """\
routes:
  - cameras: [cam-late]
    stations: [main]
    escalation:
      - {after_s: 2, to: [main]}
  - cameras: ['cam-*']
    stations: [main]
"""


def _send(kafka, anomalies) -> None:  # noqa: ANN001
    """:func:`send_anomalies` from the test's synchronous code, beside Playwright's event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send_anomalies(kafka, anomalies)).result()


def _state(page, incident_id: str, word: str) -> None:  # noqa: ANN001
    """Wait until the row of ``incident_id`` shows the state ``word`` (the table's second column)."""
    page.locator(f"#rows tr[data-incident-id='{incident_id}'] td:nth-child(2)", has_text=word).wait_for(
        timeout=30000)


def test_take_comment_hold_resume_close_escalate_and_reopen_through_the_console(broker, tmp_path) -> None:
    kafka, topics, db = station_namespace(broker, tmp_path, {"op-main": "operator"})
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    with service(kafka, "correlator", "--routing", str(routing), log_dir=tmp_path), \
            service(kafka, "station", "--database", db, "--evidence-store", str(tmp_path / "evidence"),
                    log_dir=tmp_path) as (_, port), \
            console_page(f"http://127.0.0.1:{port}", "op-main",
                         lambda page: page.add_init_script(BEEPS)) as (page, errors):
        page.locator("#link[data-synced='true']").wait_for(timeout=15000)
        _send(kafka, [anomaly("a1", "cam-door", 1), anomaly("b1", "cam-late", 2)])
        _state(page, "inc-a1", "NEW")
        page.locator("#rows tr[data-incident-id='inc-a1']").click()
        detail = page.locator("#detail[data-incident-id='inc-a1']")
        detail.wait_for()

        detail.locator("button.ack").click()
        _state(page, "inc-a1", "TAKEN")
        assert "op-main" in page.locator("#rows tr[data-incident-id='inc-a1']").inner_text()  # the owner
        detail.locator("#comment-text").fill("patrol 7 sent")
        detail.locator(".comment-form button").click()
        detail.locator("ol.notes", has_text="patrol 7 sent").wait_for(timeout=30000)
        detail.locator("button.hold").click()
        _state(page, "inc-a1", "ON HOLD")
        detail.locator("button.resume").click()
        _state(page, "inc-a1", "TAKEN")

        # Nobody takes cam-late's incident: 2 s later the correlator escalates it (the console beeps twice and says
        # so, whatever its priority); an operator may no longer act.
        beeps = page.evaluate("window.__beeps")
        _state(page, "inc-b1", "ESCALATED")
        page.wait_for_function(f"() => window.__beeps >= {beeps + 2}", timeout=10000)
        assert "Escalated (level 1" in page.locator("#alarm-banner").inner_text()
        page.locator("#rows tr[data-incident-id='inc-b1']").click()
        late = page.locator("#detail[data-incident-id='inc-b1']")
        late.wait_for()
        late.locator("ol.history", has_text="vigie").wait_for(timeout=10000)
        assert late.locator("button.ack").is_disabled() and late.locator("button.close").is_disabled()

        page.locator("#rows tr[data-incident-id='inc-a1']").click()
        detail.wait_for()
        detail.locator("button.close").click()
        assert page.locator("#close-send").is_disabled()  # no verdict yet
        page.check("#close-form input[value=confirmed]")
        page.click("#close-send")
        page.locator("#rows tr[data-incident-id='inc-a1']").wait_for(state="detached", timeout=30000)  # closed

        _send(kafka, [anomaly("a2", "cam-door", 3)])  # the same place: it reopens
        _state(page, "inc-a1", "NEW")
        page.locator("#rows tr[data-incident-id='inc-a1']").click()
        detail.locator("dl.facts", has_text="Reopened").wait_for(timeout=10000)
        assert page.locator("#rows tr[data-incident-id^='inc-a']").count() == 1  # the same row, not a new one
        history = detail.locator("ol.history").inner_text()
        for what in ("opened", "acknowledged", "commented", "on_hold", "resumed", "closed", "reopened"):
            assert what.replace("_", " ") in history or what in history, (what, history)
        assert not errors, errors
    actions = asyncio.run(read_topic(kafka, topics.actions))
    mine = [(a.kind, a.operator) for a in actions if a.incident_id == "inc-a1"]
    assert mine == [(OperatorAction.KIND_ACKNOWLEDGE, "op-main"), (OperatorAction.KIND_COMMENT, "op-main"),
                    (OperatorAction.KIND_HOLD, "op-main"), (OperatorAction.KIND_RESUME, "op-main"),
                    (OperatorAction.KIND_CLOSE, "op-main")]
    closing = next(a for a in actions if a.kind == OperatorAction.KIND_CLOSE)
    assert closing.verdict == Verdict.KIND_CONFIRMED
    automatic = {(a.kind, a.operator, a.automatic, a.id) for a in actions if a.incident_id == "inc-b1"}
    assert automatic == {(OperatorAction.KIND_ESCALATE, "vigie", True, "auto-escalate-inc-b1-1")}  # sent once or
    # twice (the timer may tick before the first is applied), one id: applied once
