"""False-alarm rates in a running station (``vigie station``): closed incidents with verdicts published to its
alerts topic on the real broker, read back as figures by a supervisor (API, metrics, the /rates page);
operators are refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

import pytest

from tests.browser import chromium_page
from tests.rates_script import WEEK, counts, script
from tests.stack import health
from tests.station_support import (add_user, browser_login, get_json, logged_in_station, login_cookie, metric,
                                   publish)
from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def station(broker, tmp_path_factory):
    """A station over the scripted verdicts; yields (port, supervisor's cookie, operator's cookie, Kafka settings)."""
    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    asyncio.run(publish(kafka, topics.alerts("main"), script(time.time_ns())))
    log_dir = tmp_path_factory.mktemp("rates")
    with ExitStack() as stack:
        _, port, cookie = stack.enter_context(logged_in_station(kafka, log_dir=log_dir, user="sup-main",
                                                                roles="supervisor"))
        add_user(f"sqlite:///{log_dir}/accounts.db", "op-main", "operator", "main")
        deadline = time.monotonic() + 30
        while health(port)["verdicts"] < 30:  # 29 closed in the week, one 8 days ago
            assert time.monotonic() < deadline, health(port)
            time.sleep(0.2)
        yield port, cookie, login_cookie(port, "op-main"), kafka


def test_supervisors_read_exact_rates_and_metrics_operators_are_refused(station) -> None:
    """/api/rates gives the scripted figures over 7 days (the default) and 24 h; the gauges and the counter
    agree; an operator gets 403 on the API and the page, no session 401; a window under 1 h is a 400."""
    port, supervisor, operator, _ = station
    status, body = get_json(port, "/api/rates", supervisor)
    assert status == 200 and body["station"] == "main" and body["window_s"] == 7 * 86400
    pairs = {(p["camera"], p["kind"]): p for p in body["pairs"]}
    for key, (figures, rate, interval, flagged) in WEEK.items():
        assert (counts(pairs[key]), pairs[key]["flagged"]) == (figures, flagged), key
        assert pairs[key]["rate"] == pytest.approx(rate) and pairs[key]["interval"] == pytest.approx(interval, abs=1e-4)
    assert pairs["cam-1", "abandoned"]["dominant"] == ["reflection 7/9"]
    assert counts(body["overall"]) == (29, 6, 20, 2, 1)
    status, day = get_json(port, "/api/rates?window_s=86400", supervisor)
    assert status == 200 and [(p["camera"], p["kind"], counts(p), p["flagged"]) for p in day["pairs"]] == [
        ("cam-1", "intrusion", (7, 0, 6, 0, 1), False), ("cam-1", "abandoned", (10, 1, 7, 2, 0), False),
        ("cam-2", "abandoned", (10, 5, 5, 0, 0), False)]
    assert get_json(port, "/api/rates?window_s=60", supervisor)[0] == 400
    for path in ("/api/rates", "/rates"):
        assert get_json(port, path, operator)[0] == 403, path
        assert get_json(port, path)[0] == 401, path
    pair = 'camera="cam-1",kind="abandoned"'
    assert metric(port, "vigie_station_false_alarm_rate", pair) == pytest.approx(0.9)
    assert metric(port, "vigie_station_false_alarm_flagged", pair) == 1
    assert metric(port, "vigie_station_false_alarm_flagged", 'camera="cam-2",kind="abandoned"') == 0
    assert metric(port, "vigie_station_verdicts_total", pair + ',reason="reflection",verdict="false_alarm"') == 7


@pytest.mark.browser
def test_rates_page_shows_the_flagged_pair(station) -> None:
    """The page (under the console's Content-Security-Policy) marks cam-1/abandoned flagged with its dominant
    reason; over 24 h it has too few verdicts and is no longer flagged."""
    port, _, _, _ = station
    base = f"http://127.0.0.1:{port}"
    with chromium_page(bypass_csp=False) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        browser_login(page, base, "sup-main")
        page.goto(f"{base}/rates")
        flagged = page.locator("#pairs [data-testid='pair'][data-flagged='true']")
        flagged.wait_for()
        assert flagged.count() == 1
        assert (flagged.get_attribute("data-camera"), flagged.get_attribute("data-kind")) == ("cam-1", "abandoned")
        assert "reflection 7/9" in flagged.inner_text() and "FLAGGED" in flagged.inner_text()
        assert "90.0 %" in flagged.locator(".rate").inner_text()
        assert page.locator("#zones [data-testid='zone']").count() == 4
        page.select_option("#window", "86400")
        flagged.wait_for(state="detached")
        assert page.locator("#pairs [data-testid='pair']").count() == 3
        page.click("#pairs th[data-key='camera']")
        cameras = page.locator("#pairs [data-testid='pair']").evaluate_all("rows => rows.map(r => r.dataset.camera)")
        assert cameras == sorted(cameras, reverse=True)
        assert not errors, errors


def test_cli_prints_the_same_figures(station) -> None:
    """``vigie rates --json`` reads the topic to the same figures as the console; over 30 days the table also
    flags cam-2/abandoned (with the 8-day-old false alarm: 6 of 11); a window under 1 h is bad usage."""
    kafka = station[3]
    command = [sys.executable, "-m", "vigie", "--namespace", kafka.namespace, "rates", "--bootstrap", kafka.bootstrap,
               "--station", "main"]
    out = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120, check=True).stdout
    pairs = {(p["camera"], p["kind"]): (counts(p), p["flagged"]) for p in json.loads(out)["pairs"]}
    assert pairs == {key: (figures, flagged) for key, (figures, _, _, flagged) in WEEK.items()}
    out = subprocess.run([*command, "--window", "30d"], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    flagged = [line.split() for line in out.splitlines() if "FLAGGED" in line]  # over 30 days cam-2 has 6 of 11
    assert [cells[1] for cells in flagged] == ["cam-1", "cam-2"] and "7/9" in flagged[0] and "3/6" in flagged[1], out
    bad = subprocess.run([*command, "--window", "10m"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "1h to 30d" in bad.stderr
