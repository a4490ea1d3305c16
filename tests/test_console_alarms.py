"""The console as an alarm manager, in headless Chromium against a real station and broker: the table ordered by
priority then last seen, storms folded, filters and search, closed rows hidden, keyboard navigation; the detail
pane (snapshot with regions and the camera's zones, comment box, the close dialog that needs a verdict, Live);
a new priority 1 alarm beeps and flashes, Mute is remembered; the camera health strip, live."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from tests.stack import service
from tests.station_console import publish_frame, read_topic
from tests.station_support import alarm, console_page, publish_now, station_namespace
from vigie.contracts.v1 import CameraStatus, Incident, OperatorAction, Region, Verdict
from vigie.core.authorisations import authorise_cameras
from vigie.core.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.browser]
NS = 1_000_000_000
STORM = 19  # intrusions of one junction camera, zone 1
CAMERAS = """cameras:
  - id: cam-fire
    source: synthetic://scene
    analytics:
      fire:
        zones:
          - {name: platform, polygon: [[0, 0], [320, 0], [320, 200], [0, 200]]}
          - {name: stairs, polygon: [[400, 100], [600, 100], [600, 300], [400, 300]]}
  - id: cam-park
    source: synthetic://scene
"""


@pytest.fixture(scope="module")
def console(broker, tmp_path_factory):
    """A station (cameras file given) with a storm of 19 intrusions on cam-junction (P3, zone 1), an older
    fire (P1) with a snapshot, an abandoned object (P2), a closed P1 and a P4 wrong way taken by op-day;
    yields (base URL, kafka settings, fire incident id)."""
    tmp = tmp_path_factory.mktemp("alarms")
    kafka, topics, db = station_namespace(broker, tmp, {"op-main": "operator", "sup-main": "supervisor"})
    cameras = tmp / "cameras.yaml"
    cameras.write_text(authorise_cameras(CAMERAS))
    picture = simplejpeg.encode_jpeg(np.full((360, 640, 3), 70, np.uint8), 85, colorspace="RGB")
    snapshot = asyncio.run(publish_frame(kafka, "cam-fire", picture))
    storm = [alarm(n, "cam-junction", zone="1", age_s=10 + n) for n in range(1, STORM + 1)]
    fire = alarm(20, "cam-fire", "fire", priority=1, zone="1", age_s=1727.4, note="smoke seen from the north side")
    fire.snapshot.CopyFrom(snapshot)
    del fire.regions[:]
    fire.regions.append(Region(x=420, y=120, w=100, h=90))
    fire.attributes["duration_s"] = 1727.4
    others = [alarm(21, "cam-gate", "abandoned_object", priority=2, age_s=100),
              alarm(22, "cam-junction", priority=1, state=Incident.STATE_CLOSED, age_s=5),
              alarm(23, "cam-park", "wrong_way", priority=4, zone="0", owner="op-day",
                    state=Incident.STATE_ACKNOWLEDGED, age_s=50)]
    publish_now(kafka, topics.alerts("main"), [*storm, fire, *others])
    with service(kafka, "station", "--database", db, "--cameras", str(cameras), "--evidence-store",
                 str(tmp / "evidence"), log_dir=tmp) as (_, port):
        yield f"http://127.0.0.1:{port}", kafka, fire.id


def _rows(page) -> list[list[str]]:  # noqa: ANN001
    """The cells of the table rows in the DOM, top to bottom."""
    return page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def _wait_rows(page, count: int) -> None:  # noqa: ANN001
    page.locator(f"#alarms[data-rows='{count}']").wait_for(state="attached", timeout=15000)


def test_table_orders_by_priority_folds_storms_filters_and_hides_closed(console) -> None:
    base, _, fire_id = console
    with console_page(base, "op-main") as (page, errors):
        _wait_rows(page, STORM + 3)  # open ones: the closed P1 is not counted nor shown
        rows = _rows(page)
        assert [r[0] for r in rows[:2]] == ["P1", "P2"] and rows[0][2] == "Fire" and rows[0][3] == "cam-fire"
        assert rows[1][2] == "Abandoned object"
        group = rows[2]  # the storm: one row, after the higher priorities, not 19 rows above the fire
        assert group[0] == "P3" and group[3] == "cam-junction" and group[4] == "1" and group[7] == f"{STORM} alarms"
        assert rows[3][2] == "Wrong way" and rows[3][8] == "op-day" and rows[3][1] == "TAKEN"
        assert len(rows) == 4
        assert re.fullmatch(r"\d\d/\d\d \d\d:\d\d:\d\d", rows[0][6]), rows[0][6]  # local date and time
        assert not page.locator("#rows tr.row.closed").count()
        # Keyboard: down to the group, Enter unfolds it; Enter on the first row opens its detail.
        page.focus("#alarms")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.locator("#rows tr.member").nth(STORM - 1).wait_for()
        assert page.locator("#rows tr[data-testid='group']").get_attribute("aria-expanded") == "true"
        page.keyboard.press("Home")
        page.keyboard.press("Enter")
        page.locator(f"#detail[data-incident-id='{fire_id}']").wait_for()
        assert page.locator("#detail .kind").inner_text() == "Fire"
        facts = page.locator("#detail dl.facts").inner_text()
        assert "28 min 47 s" in facts and "1727" not in facts  # durations in words
        # Unfolded: every incident its own row, most recent of the storm first.
        page.uncheck("#fold")
        page.wait_for_function(f"document.querySelectorAll('#rows tr.row').length === {STORM + 3}")
        assert _rows(page)[2][3] == "cam-junction" and page.locator("#rows tr.group").count() == 0
        # Filters: state, priority, kind, camera, search (comments too).
        page.select_option("#filter-state", "all")
        _wait_rows(page, STORM + 4)
        assert page.locator("#rows tr.row.closed").count() == 1
        assert _rows(page)[0][1] == "CLOSED"  # P1, last seen most recently
        page.select_option("#filter-state", "closed")
        _wait_rows(page, 1)
        page.select_option("#filter-state", "open")
        page.select_option("#filter-priority", "2")
        _wait_rows(page, 2)
        page.select_option("#filter-priority", "")
        page.select_option("#filter-kind", "wrong_way")
        _wait_rows(page, 1)
        page.select_option("#filter-kind", "")
        page.select_option("#filter-camera", "cam-junction")
        _wait_rows(page, STORM)
        page.select_option("#filter-camera", "")
        page.fill("#search", "north side")
        _wait_rows(page, 1)
        assert _rows(page)[0][2] == "Fire"
        assert not errors, errors


def test_detail_draws_zones_comments_assigns_and_closing_needs_a_verdict(console) -> None:
    base, kafka, fire_id = console
    with console_page(base, "sup-main") as (page, errors):
        page.locator(f"#rows tr[data-incident-id='{fire_id}']").click()
        detail = page.locator(f"#detail[data-incident-id='{fire_id}']")
        detail.wait_for()
        page.wait_for_function("() => { const i = document.querySelector('#detail img');"
                               " return i.complete && i.naturalWidth === 640; }", timeout=15000)
        assert detail.locator("svg rect.region").count() == 1
        detail.locator("svg polygon.zone").nth(1).wait_for(state="attached")
        assert detail.locator("svg polygon.this-zone title").text_content() == "zone 1: stairs"
        assert "zone 1 (stairs)" in detail.locator("dd.zone").inner_text()
        assert "smoke seen from the north side" in detail.locator("ol.notes").inner_text()
        assert "op-night" in detail.locator("ol.notes").inner_text()
        assert "opened" in detail.locator("ol.history").inner_text()
        assert detail.locator("form.assign").is_visible()  # a supervisor assigns
        detail.locator("#comment-text").fill("patrol 12 on its way")
        detail.locator(".comment-form button").click()
        page.wait_for_function("() => document.querySelector('#comment-text').value === ''", timeout=10000)
        # Close: nothing can be sent without a verdict, nor a false alarm without its reason.
        detail.locator("button.close").click()
        send = page.locator("#close-send")
        assert page.locator("#close-dialog").is_visible() and send.is_disabled()
        page.check("#close-form input[value=false_alarm]")
        assert send.is_disabled() and page.locator("#reason-field").is_visible()
        page.select_option("#close-form select[name=reason]", "reflection")
        assert send.is_enabled()
        page.check("#close-form input[value=confirmed]")
        assert send.is_enabled() and page.locator("#reason-field").is_hidden()
        page.click("#close-form button[value=cancel]")
        assert page.locator("#close-dialog").is_hidden()
        detail.locator("form.assign input").fill("op-main")
        detail.locator("form.assign button").click()
        page.wait_for_function("() => document.querySelector('form.assign input').value === ''", timeout=10000)
        detail.locator("button.close").click()
        page.check("#close-form input[value=false_alarm]")
        page.select_option("#close-form select[name=reason]", "reflection")
        page.click("#close-send")
        assert page.locator("#close-dialog").is_hidden()
        detail.locator(".action-status", has_text="close sent").wait_for(timeout=10000)
        with page.expect_popup() as popup:
            detail.locator("button.live").click()
        assert re.search(rf"/live\?camera=cam-fire&incident={fire_id}$", popup.value.url), popup.value.url
        assert not errors, errors
    actions = asyncio.run(read_topic(kafka, Topics(kafka.namespace).actions))
    assert [(a.kind, a.incident_id, a.comment, a.assignee, a.verdict, a.reason, a.operator) for a in actions] == [
        (OperatorAction.KIND_COMMENT, fire_id, "patrol 12 on its way", "", 0, 0, "sup-main"),
        (OperatorAction.KIND_ASSIGN, fire_id, "", "op-main", 0, 0, "sup-main"),
        (OperatorAction.KIND_CLOSE, fire_id, "", "", Verdict.KIND_FALSE_ALARM, Verdict.REASON_REFLECTION, "sup-main")]


BEEPS = """window.__beeps = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return start.apply(this, args); };"""


def test_new_priority_one_alarm_beeps_and_flashes_and_mute_is_remembered(console) -> None:
    base, kafka, _ = console
    alerts = Topics(kafka.namespace).alerts("main")
    with console_page(base, "op-main", lambda page: page.add_init_script(BEEPS)) as (page, errors):
        page.locator("#link[data-synced='true']").wait_for(timeout=15000)  # what comes now is new
        page.locator("#rows tr.row").first.click()  # a gesture: browsers start sound after one
        publish_now(kafka, alerts, [alarm(30, "cam-tunnel", "fire", priority=1)])
        row = page.locator("#rows tr[data-incident-id='inc-00030']")
        row.wait_for(timeout=15000)
        assert "flash" in row.get_attribute("class") and row.locator("td.c-prio").inner_text() == "P1"
        assert page.locator("#alarm-banner").is_visible() and "cam-tunnel" in page.locator("#alarm-banner").inner_text()
        assert page.evaluate("window.__beeps") == 2  # two beeps for a priority 1
        page.click("#mute")
        assert page.get_attribute("#mute", "aria-pressed") == "true"
        page.reload()
        page.locator("#whoami").wait_for()
        assert page.get_attribute("#mute", "aria-pressed") == "true" and "muted" in page.inner_text("#mute")
        page.locator("#link[data-synced='true']").wait_for(timeout=15000)
        publish_now(kafka, alerts, [alarm(31, "cam-tunnel", "smoke", priority=2)])
        page.locator("#rows tr[data-incident-id='inc-00031'].flash").wait_for(timeout=15000)
        assert page.evaluate("window.__beeps") == 0  # muted: it flashes, silently
        assert not errors, errors


def test_camera_strip_shows_each_camera_state_in_words_and_live(console) -> None:
    """The strip from the station's camera status: the cameras of its cameras file, worst first, each state in
    words, with a symbol, a colour and since when; a change comes without reloading the page."""
    base, kafka, _ = console
    now = time.time_ns()
    status = Topics(kafka.namespace).camera_status
    publish_now(kafka, status, [
        CameraStatus(camera_id="cam-fire", state="streaming", since_ns=now - 60 * NS, updated_ns=now, heartbeat_s=600),
        CameraStatus(camera_id="cam-park", state="unauthorised", error="rtsp://viewer:***@10.0.0.7/park: 401",
                     since_ns=now - 30 * NS, updated_ns=now, heartbeat_s=600)])
    with console_page(base, "op-main") as (page, errors):
        page.locator("#cameras li[data-camera='cam-fire'].ok").wait_for(timeout=15000)
        chips = page.locator("#cameras li").evaluate_all(
            "cs => cs.map(c => [c.className, c.innerText, getComputedStyle(c, '::before').content,"
            " getComputedStyle(c, '::after').content])")
        assert [c[:3] for c in chips] == [["chip bad blind", "cam-park: unauthorised", '"✕ "'],
                                          ["chip ok seeing", "cam-fire: streaming", '"● "']]  # not by colour alone
        assert re.fullmatch(r'" since \d\d/\d\d \d\d:\d\d:\d\d"', chips[1][3]), chips[1][3]
        assert "401" in page.get_attribute("#cameras li[data-camera=cam-park]", "title")
        assert page.inner_text("#cameras-summary") == "2 shown, 1 blind"
        publish_now(kafka, status, [CameraStatus(camera_id="cam-fire", state="reconnecting", error="timeout",
                                                 since_ns=time.time_ns(), updated_ns=time.time_ns(), heartbeat_s=600)])
        page.locator("#cameras li[data-camera='cam-fire'].warn").wait_for(timeout=15000)
        assert page.inner_text("#cameras li[data-camera='cam-fire']") == "cam-fire: reconnecting"
        assert not errors, errors
