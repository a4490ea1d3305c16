"""The station's history: closed incidents that left its memory, read back from the alerts topic page by
page (``/api/incidents?state=closed&before=<cursor>&limit=50``), by the API and in the console.

One station process reads a topic where 130 incidents were opened then closed (two revisions each,
closed over the last three hours, so most left memory) and 20 are open.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import ExitStack

import pytest

from tests.browser import chromium_page
from tests.stack import free_port, health
from tests.station_support import browser_login, get_json, incident, logged_in_station, publish
from vigie.contracts.v1 import Incident
from vigie.core.errors import BrokerUnavailable
from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.station.history import closed_page

CLOSED_N, OPEN_N = 130, 20


@pytest.fixture(scope="module")
def station(broker, tmp_path_factory):
    """A station over a topic of 130 closed and 20 open incidents; yields (port, closed ids newest first, session
    cookie of an operator of station main)."""
    kafka = KafkaSettings(bootstrap=broker, namespace=f"t{uuid.uuid4().hex[:10]}.")
    topics = Topics(kafka.namespace)
    asyncio.run(apply_topics(kafka, topics.all(["main"])))
    closing_age = {n: 60.0 * (n + 1) + random.Random(n).random() for n in range(CLOSED_N)}
    records = []
    for n in range(CLOSED_N):
        records.append(incident(n, age_s=closing_age[n] + 30))
        records.append(incident(n, state=Incident.STATE_CLOSED, revision=2, age_s=closing_age[n]))
    records += [incident(n) for n in range(CLOSED_N, CLOSED_N + OPEN_N)]
    records.sort(key=lambda i: i.updated_ns)  # the correlator publishes each revision when it makes it
    asyncio.run(publish(kafka, topics.alerts("main"), records))
    newest_first = [f"inc-{n:05d}" for n in sorted(closing_age, key=closing_age.get)]
    with ExitStack() as stack:
        _, port, cookie = stack.enter_context(logged_in_station(kafka, log_dir=tmp_path_factory.mktemp("history")))
        deadline = time.monotonic() + 30
        while health(port)["store"]["open"] < OPEN_N:
            assert time.monotonic() < deadline, health(port)
            time.sleep(0.2)
        yield port, newest_first, cookie


@pytest.mark.broker
def test_history_pages_every_closed_incident_once_newest_first(station) -> None:
    """Defect: closed and old incidents stayed in memory; the history must be paged instead.

    Pages of 50 read the 130 closed incidents back from the alerts topic, newest closing first, each
    once, across the topic's three partitions; the last page's ``next`` is null.
    """
    port, newest_first, cookie = station
    assert health(port)["store"]["closed"] < CLOSED_N  # most left memory (kept 30 min by default)
    seen, cursor, sizes = [], None, []
    while True:
        status, body = get_json(port, "/api/incidents?state=closed&limit=50" + (f"&before={cursor}" if cursor else ""),
                                cookie)
        assert status == 200, body
        assert all(i["state"] == "closed" and i["revision"] == 2 for i in body["incidents"])
        seen += [i["id"] for i in body["incidents"]]
        sizes.append(len(body["incidents"]))
        cursor = body["next"]
        if cursor is None:
            break
    assert sizes == [50, 50, 30]
    assert seen == newest_first


@pytest.mark.broker
@pytest.mark.parametrize("query, says", [
    ("state=closed&before=0:1", "partitions"), ("state=closed&before=nonsense", "cursor"),
    ("state=closed&limit=0", "limit"), ("state=closed&limit=201", "limit"), ("state=gone", "state"),
    ("before=0:1,1:1,2:1", "state=closed"),
])
def test_history_rejects_bad_queries(station, query: str, says: str) -> None:
    """Defect: the paged history is new; a bad cursor, limit or state is a 400 that says what is expected."""
    status, body = get_json(station[0], f"/api/incidents?{query}", station[2])
    assert status == 400 and says in body


@pytest.mark.broker
@pytest.mark.browser
def test_console_shows_open_incidents_live_and_loads_older_closed_ones(station) -> None:
    """Defect: the console showed every incident held in memory; it now shows the open ones live and, when the
    state filter asks for closed ones, the history too, page by page with "Load older closed"."""
    port, newest_first, _ = station
    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        browser_login(page, f"http://127.0.0.1:{port}", "op-main")
        page.uncheck("#fold")
        page.locator(f"#alarms[data-rows='{OPEN_N}']").wait_for(state="attached", timeout=15000)
        assert page.locator("#rows tr.row[data-testid='incident']").count() == OPEN_N
        assert page.locator("#rows tr.row.closed").count() == 0
        page.select_option("#filter-state", "closed")  # reads the first page of the history
        page.locator("#alarms[data-rows='100']").wait_for(state="attached", timeout=15000)
        page.click("#load-older")
        page.locator(f"#alarms[data-rows='{CLOSED_N}']").wait_for(state="attached", timeout=15000)
        page.locator("#history-end").wait_for(state="visible")
        assert page.locator("#load-older").is_hidden()
        shown = page.locator("#rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.incidentId)")
        assert len(shown) >= 20 and shown == newest_first[:len(shown)]  # newest closing first
        assert page.locator("#rows tr[data-testid='history-incident']").count() > 0  # no longer held
        page.locator("#rows tr.row").last.click()
        page.locator("#detail[data-state='closed']").wait_for()
        assert page.locator("#detail button.close").is_disabled()
        assert not errors, errors


def test_history_without_a_broker_raises_broker_unavailable() -> None:
    """Defect: the paged history reads the alerts topic; with no broker it must say so (the API answers 503)
    rather than fail with a client library's error."""
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", namespace="nobroker.", request_timeout_s=2)
    with pytest.raises(BrokerUnavailable):
        asyncio.run(closed_page(kafka, Topics(kafka.namespace).alerts("main"), None, 50))


@pytest.mark.broker
async def test_an_incident_reopened_and_closed_again_shows_once_at_its_last_closing(kafka) -> None:
    """A closed incident is not final: reopened by an anomaly at the same place, then closed again, it has two
    closed revisions in the topic; the page shows it once, the newest."""
    topic = Topics(kafka.namespace).alerts("main")
    revisions = [incident(1, age_s=50), incident(1, state=Incident.STATE_CLOSED, revision=2, age_s=40),
                 incident(1, revision=3, age_s=30), incident(1, state=Incident.STATE_CLOSED, revision=4, age_s=20),
                 incident(2, state=Incident.STATE_CLOSED, revision=2, age_s=10)]
    await publish(kafka, topic, revisions)
    page = await closed_page(kafka, topic, None, 50)
    assert [(i.id, i.revision) for i in page.incidents] == [("inc-00002", 2), ("inc-00001", 4)]
