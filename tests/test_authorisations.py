"""Camera authorisations: a camera films only under a prefectoral order in force, an analytic runs only for
a purpose the order lists, and the frames topic never keeps images longer than the shortest order allows."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from vigie.contracts.v1 import AuditEntry
from vigie.core.authorisations import Authorisation, Purpose, authorise_cameras, kind_problem, longest_keep_problem
from vigie.core.audit import kind_name
from vigie.core.cameras import load_cameras
from vigie.core.config import ConfigError
from vigie.core.kafka import apply_topics
from vigie.core.topics import DAY_MS, Topics
from vigie.detector.app import DetectorService, DetectorSettings
from vigie.grabber.app import GrabberService, GrabberSettings

from tests.stack import free_port

ORDERS = """authorisations:
  - id: centre
    reference: "Arrêté n° 2026-0142"
    order_date: 2026-03-02
    valid_until: 2026-12-31
    purposes: [traffic_regulation]
    max_retention_days: 1
  - id: lapsed
    reference: "Arrêté n° 2019-0007"
    order_date: 2019-03-02
    valid_until: 2024-03-01
    purposes: [security_of_persons]
    max_retention_days: 10
"""


def _order(**fields) -> Authorisation:
    base = {"id": "o", "reference": "Arrêté 1", "order_date": "2026-01-01", "valid_until": "2026-12-31",
            "purposes": ["fire_and_accident_prevention"], "max_retention_days": 7}
    return Authorisation.model_validate({**base, **fields})


def test_an_order_is_checked_when_read() -> None:
    """Retention above 30 days, an unknown purpose, a purpose listed twice, an order ending before it begins:
    each refused with its reason."""
    for fields, words in (({"max_retention_days": 31}, "less than or equal to 30"),
                          ({"purposes": ["face_recognition"]}, "Input should be"),
                          ({"purposes": ["shoplifting", "shoplifting"]}, "listed twice"),
                          ({"valid_until": "2025-01-01"}, "before order_date"),
                          ({"purposes": []}, "at least 1")):
        with pytest.raises(ValueError, match=words):
            _order(**fields)


def test_an_order_is_in_force_from_its_date_through_its_last_day() -> None:
    order = _order()
    at = lambda text: dt.datetime.fromisoformat(text)  # noqa: E731
    assert "not in force before 2026-01-01" in order.problem(at("2025-12-31T23:59:59+00:00"))
    assert order.problem(at("2026-01-01T00:00:00+00:00")) == ""
    assert order.problem(at("2026-12-31T23:59:59+00:00")) == ""
    assert "expired on 2026-12-31" in order.problem(at("2027-01-01T00:00:00+00:00"))
    assert order.ends_at() == at("2027-01-01T00:00:00+00:00")


def test_a_kind_needs_a_listed_purpose_that_justifies_it() -> None:
    order = _order()
    assert kind_problem("fire", "cam-1", order) == ""
    message = kind_problem("wrong_way", "cam-1", order)
    assert "wrong_way" in message and "cam-1" in message and "fire_and_accident_prevention" in message
    assert "traffic_regulation" in message  # what would justify it
    assert kind_problem("tamper", "cam-1", order) == ""  # tampering is watched under any order
    assert "none declared" in kind_problem("plugin_kind", "cam-1", order)
    assert kind_problem("plugin_kind", "cam-1", order, declared=["fire_and_accident_prevention"]) == ""
    assert set(Purpose) >= set(_order(purposes=[p.value for p in Purpose]).purposes)


def test_image_keeping_beyond_the_shortest_order_is_named() -> None:
    orders = [_order(id="a", max_retention_days=7), _order(id="b", max_retention_days=2)]
    assert longest_keep_problem("topic frames", 2 * DAY_MS, orders) == ""
    problem = longest_keep_problem("topic frames", 2 * DAY_MS + 1, orders)
    assert "topic frames" in problem and "b (Arrêté 1)" in problem and "2 day(s)" in problem
    assert longest_keep_problem("topic frames", 10**15, []) == ""


def test_validate_names_each_camera_without_an_order_in_force_and_each_unjustified_kind(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(ORDERS + "cameras:\n"
                       "  - {id: none, source: synthetic://scene}\n"
                       "  - {id: old, authorisation: lapsed, source: synthetic://scene}\n"
                       "  - {id: typo, authorisation: centr, source: synthetic://scene}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{cameras}:15: cameras[0]: camera none names no authorisation" in result.stderr, result.stderr
    assert f"{cameras}:16: cameras[1].authorisation: camera old: authorisation lapsed (Arrêté n° 2019-0007) " \
           "expired on 2024-03-01" in result.stderr
    assert f"{cameras}:17: cameras[2].authorisation: camera typo: authorisation 'centr' is not declared" in result.stderr
    cameras.write_text(ORDERS.replace("2026-12-31", "2099-12-31") + "cameras:\n"
                       "  - id: street\n    authorisation: centre\n    source: synthetic://scene\n"
                       "    analytics:\n      fire: {}\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 2
    assert (f"{cameras}:19: cameras[0].analytics.fire: analytic fire may not run on camera street: its authorisation "
            "centre lists traffic_regulation, and fire needs one of: fire_and_accident_prevention, rescue_of_persons"
            ) in result.stderr, result.stderr
    cameras.write_text(cameras.read_text().replace("fire: {}", "fire: false"))
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "authorisation centre (Arrêté n° 2026-0142): in force 2026-03-02 to 2099-12-31" in result.stdout
    assert "note: default analytic abandoned_object may not run on camera street" in result.stdout


def test_the_detector_runs_only_the_kinds_a_camera_is_authorised_for(tmp_path: Path) -> None:
    """Kinds asked for without a justifying purpose are refused (named in /healthz, the service degraded,
    an entry for the register); unjustified default kinds are simply not run; a camera without an order,
    or absent from the file, runs nothing."""
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(ORDERS + "cameras:\n"
                       "  - id: street\n    authorisation: centre\n    source: synthetic://scene\n"
                       "    analytics:\n      fire: {}\n      wrong_way: {zones: [{name: road, heading_deg: 0, "
                       "polygon: [[0, 0], [50, 0], [50, 50]]}]}\n"
                       "  - {id: bare, source: synthetic://scene}\n")
    service = DetectorService(DetectorSettings(device="cpu", object_classes=False, cameras_file=str(cameras)))
    asyncio.run(service.prepare())
    refused = {(r.camera_id, r.kind): r.asked for r in service.refusals}
    assert refused[("street", "fire")] is True and refused[("street", "abandoned_object")] is False
    assert refused[("bare", "abandoned_object")] is False and ("street", "wrong_way") not in refused
    assert ("bare", "crowd_movement") in refused and len(refused) == 5, refused
    assert "fire may not run on camera street" in service.degraded()["refused"][0]
    assert "street.fire" in service.health()["refused"]
    entries = list(service.audit_queue._pending)
    assert {(kind_name(e.kind), e.camera_id) for e in entries} >= {("analytic_refused", "street")}
    from vigie.detector.plan import AnalyticsPlan
    plan = AnalyticsPlan(service._sections, service.settings.analytics, "cpu", unknown_cameras=False)
    assert [k for k, _ in plan.keys_for("street")] == ["wrong_way"]
    assert plan.keys_for("bare") == [] and plan.keys_for("never-declared") == []


def _grabber(kafka, path: Path, clock) -> GrabberService:  # noqa: ANN001
    settings = GrabberSettings(kafka=kafka, cameras_file=str(path), http_port=0)
    return GrabberService(settings, clock=clock)


@pytest.mark.broker
def test_the_grabber_opens_only_authorised_cameras_and_stops_one_the_day_its_order_ends(kafka, tmp_path: Path) -> None:
    """A camera without an order, or under a lapsed one, is never opened (the others stream); a streaming
    camera whose order ends is stopped and stays stopped; each refusal and stop goes to the register."""
    asyncio.run(apply_topics(kafka, [Topics(kafka.namespace).frames, Topics(kafka.namespace).audit]))
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(ORDERS + "cameras:\n"
                       "  - {id: street, authorisation: centre, source: 'synthetic://scene?w=160&h=120&fps=10', fps: 5}\n"
                       "  - {id: old, authorisation: lapsed, source: 'synthetic://scene?w=160&h=120&fps=10'}\n"
                       "  - {id: bare, source: 'synthetic://scene?w=160&h=120&fps=10'}\n")
    now = [dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone.utc)]

    async def scenario() -> tuple[dict, dict, list[AuditEntry]]:
        grabber = _grabber(kafka, cameras, lambda: now[0])
        await grabber.start()
        stop = asyncio.Event()
        task = asyncio.create_task(grabber.run(stop))
        try:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if grabber.status["street"].captured >= 3 and grabber.status["street"].audited_up:
                    break
            before = {cid: grabber.health()["cameras"][cid]["state"] for cid in grabber.status}
            now[0] += dt.timedelta(minutes=2)  # 2027-01-01 00:01: the order has ended
            for _ in range(50):
                await asyncio.sleep(0.1)
                if grabber.status["street"].state == "refused":
                    break
            captured = grabber.status["street"].captured
            await asyncio.sleep(1.5)
            after = {cid: grabber.health()["cameras"][cid] for cid in grabber.status}
            assert grabber.status["street"].captured == captured  # no frame after the stop
        finally:
            stop.set()
            await task
            await grabber.stop()
        return before, after, list(grabber.audit_queue._pending)

    before, after, entries = asyncio.run(scenario())
    assert before == {"street": "streaming", "old": "refused", "bare": "refused"}
    assert after["street"]["state"] == "refused" and "expired on 2026-12-31" in after["street"]["error"]
    assert "expired on 2024-03-01" in after["old"]["error"] and "has no authorisation" in after["bare"]["error"]
    kinds = [(kind_name(e.kind), e.camera_id) for e in entries]
    assert kinds.count(("camera_refused", "old")) == 1 and kinds.count(("camera_refused", "bare")) == 1
    assert ("camera_started", "street") in kinds and ("camera_stopped", "street") in kinds
    stopped = next(e for e in entries if kind_name(e.kind) == "camera_stopped")
    assert "expired on 2026-12-31" in stopped.detail
    orders = [e.detail for e in entries if e.kind == AuditEntry.KIND_AUTHORISATION]
    assert any("authorisation centre" in d and "cameras=street" in d and "max_retention_days=1" in d for d in orders)


@pytest.mark.broker
def test_a_frames_topic_keeping_images_longer_than_authorised_stops_start_up(kafka, tmp_path: Path) -> None:
    """The frames topic set to two days while an order allows one: grabber and detector refuse to start,
    naming the topic (exit 2); at the default retention both start."""
    long_frames = Topics(kafka.namespace, frames_retention_ms=2 * DAY_MS)
    asyncio.run(apply_topics(kafka, long_frames.all([])))
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(ORDERS.replace("2026-12-31", "2099-12-31") + "cameras:\n"
                       "  - {id: street, authorisation: centre, source: 'synthetic://scene?w=160&h=120'}\n")
    for service in ("grabber", "detector"):
        result = subprocess.run([sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace",
                                 kafka.namespace, service, "--cameras", str(cameras), "--http-port", str(free_port())],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (service, result.stderr[-2000:])
        assert f"topic {kafka.namespace}frames keeps images up to 2.05 days, beyond the 1 day(s) authorised by " \
               "centre" in result.stderr, result.stderr[-2000:]
    asyncio.run(apply_topics(kafka, Topics(kafka.namespace).all([])))  # vigie topics puts it back

    async def starts() -> None:
        grabber = _grabber(kafka, cameras, lambda: dt.datetime.now(dt.timezone.utc))
        await grabber.start()
        await grabber.stop()

    asyncio.run(starts())


def test_load_cameras_refuses_an_undeclared_order(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: a\n    source: synthetic://scene\n")
                       .replace("authorisation: drill", "authorisation: other"))
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.authorisation: camera a: authorisation 'other' is not "):
        load_cameras(cameras)
