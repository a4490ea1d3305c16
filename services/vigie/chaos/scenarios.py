"""Fault-injection scenarios on the correlator's path: a known set of events in, one incident per event out.

Each scenario runs in its own namespace on the run's private broker: the correlator (one or
two workers, real processes) consumes the events' anomalies while they are fed at a steady
rate, and one fault is injected once a third of them are sent:

* ``none``: no fault (the baseline);
* ``broker-restart``: the broker is SIGKILLed and started again after ``down_s``;
* ``correlator-kill``: the correlator is SIGKILLed and started again at once;
* ``correlator-join-leave``: a second correlator joins the consumer group, then the first is
  SIGKILLed; the second must take over its partitions and its incident table;
* ``correlator-restart``: the correlator is stopped cleanly (SIGTERM) and started again;
* ``station-kill``: the operator station is SIGKILLed and started again (it rebuilds its view
  from its alert topic).

Every scenario also runs the station of the events' cameras: its console must end up showing
each event's incident exactly once (``console``: the events shown once). A process that exits
without the run asking it to is restarted, as docker compose's restart policy or Kubernetes
would (``restarts`` counts them: a correlator that finds itself stalled stops to be restarted).

The outcome counts, per event, the distinct incidents that reached the ``incidents`` topic:
0 lost and 0 duplicated is the pass mark. The recovery time is from the fault's injection (the
SIGKILL of the first worker in ``correlator-join-leave``) until every partition of the incident
table is written again (every camera's anomalies are processed again); for ``station-kill``,
until the new station lists every incident the old one did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from vigie.accounts.store import provision
from vigie.chaos.cluster import INTERRUPTED, PrivateBroker, ServiceProcess, supervise
from vigie.chaos.events import (Feeder, anomalies_of, every_partition_resumed, make_events, opened_by_event,
                               read_incidents, tally)
from vigie.contracts.v1 import Incident
from vigie.core.db import DatabaseSettings
from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.station.client import login_cookie

log = logging.getLogger(__name__)

#: The account the run's console checks log in with (an operator of station main, in the run's own database).
OBSERVER = "chaos-observer"
FAULTS = ("none", "broker-restart", "correlator-kill", "correlator-join-leave", "correlator-restart", "station-kill")


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """Sizes of one run: ``events`` over ``cameras`` cameras, ``per_event`` anomalies each, fed at
    ``rate`` per second; the broker stays down ``down_s`` seconds in ``broker-restart``."""

    events: int = 60
    per_event: int = 10
    cameras: int = 12
    rate: float = 10.0
    spacing_s: float = 1.0
    down_s: float = 5.0
    settle_s: float = 5.0
    timeout_s: float = 240.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the chaos table; ``records_in``: anomalies fed, or frames published on the frame path."""

    fault: str
    events: int
    records_in: int
    incidents: int
    lost: int
    duplicated: int
    strays: int
    recovery_s: float | None
    feeder_retries: int
    exit_codes: dict[str, int | None]
    console: int | None = None
    restarts: int = 0  # exits the run did not cause, restarted as a supervisor would

    @property
    def passed(self) -> bool:
        """No event lost, none duplicated, no incident that no event explains, every event once on the console."""
        return (self.lost == 0 and self.duplicated == 0 and self.strays == 0
                and self.console in (None, self.events))

    def as_dict(self) -> dict:
        """JSON-ready view."""
        return {**asdict(self), "passed": self.passed}


async def prepare_run(fault: str, known: tuple[str, ...], broker: PrivateBroker,
                      workdir: Path) -> tuple[KafkaSettings, Path]:
    """A fresh namespace with every topic on ``broker`` and the fault's log folder under ``workdir``.

    Raises:
        ValueError: ``fault`` is not one of ``known``.
    """
    if fault not in known:
        raise ValueError(f"unknown fault {fault!r}: choose from {', '.join(known)}")
    kafka = broker.settings(f"chaos{uuid.uuid4().hex[:8]}.")
    await apply_topics(kafka, Topics(kafka.namespace).all(["main"]))
    logs = workdir / fault
    logs.mkdir(parents=True, exist_ok=True)
    return kafka, logs


async def run_fault(fault: str, plan: ChaosPlan, broker: PrivateBroker, workdir: Path) -> Outcome:
    """Run one scenario (see the module docstring) and count what came out.

    Raises:
        ValueError: unknown fault.
        RuntimeError: a service did not start (its log's tail is in the message).
    """
    kafka, logs = await prepare_run(fault, FAULTS, broker, workdir)
    events = make_events(plan.events, plan.cameras)
    anomalies = anomalies_of(events, plan.per_event, plan.spacing_s)
    first = ServiceProcess(kafka, "correlator", [], logs, label="correlator-1")
    second = ServiceProcess(kafka, "correlator", [], logs, label="correlator-2")
    database = f"sqlite:///{logs}/accounts.db"
    station = ServiceProcess(kafka, "station", ["--database", database], logs)
    observer = (OBSERVER, await provision(DatabaseSettings(url=database), OBSERVER, ["operator"], ["main"],
                                          by="chaos"))
    workers = [first, station]
    for proc in workers:
        proc.start()
    for proc in workers:
        await asyncio.to_thread(proc.wait_ready)
    feeder = Feeder(kafka, plan.rate)
    feeding = asyncio.create_task(feeder.run(anomalies))
    supervisor = asyncio.create_task(supervise([first, second, station]))  # as compose or Kubernetes would
    fault_at, station_back = time.time(), None
    try:
        while feeder.sent < len(anomalies) // 3 and not feeding.done():
            await asyncio.sleep(0.05)
        fault_at = time.time()
        log.info("chaos %s: injecting after %d anomalies", fault, feeder.sent)
        if fault == "broker-restart":
            await asyncio.to_thread(broker.kill)
            await asyncio.sleep(plan.down_s)
            await asyncio.to_thread(broker.start)
        elif fault == "correlator-kill":
            await asyncio.to_thread(first.kill)
            first.start()
        elif fault == "correlator-restart":
            await asyncio.to_thread(first.terminate)
            first.start()
        elif fault == "station-kill":  # recovery: until the new station lists what the old one did
            listed = {i.id for i in await asyncio.to_thread(console_view, station, observer, set(), 0)}
            await asyncio.to_thread(station.kill)
            station.start()
            await asyncio.to_thread(console_view, station, observer, listed, plan.timeout_s)
            station_back = time.time() - fault_at
        elif fault == "correlator-join-leave":
            workers.append(second)
            second.start()
            await asyncio.to_thread(second.wait_ready)
            await asyncio.sleep(2.0)
            fault_at = time.time()  # recovery from the SIGKILL of the first
            await asyncio.to_thread(first.kill)
            workers.remove(first)
        await feeding
        expected = {e.index for e in events}
        incidents = await read_incidents(
            kafka, lambda found: expected <= {opened_by_event(i) for i in found}, plan.settle_s, plan.timeout_s)
        resumed = None if fault in ("none", "station-kill") else await every_partition_resumed(kafka, fault_at)
        opened = {i.id for i in incidents}
        shown = await asyncio.to_thread(console_view, station, observer, opened, plan.timeout_s)
    finally:
        supervisor.cancel()
        if not feeding.done():
            feeding.cancel()
        codes = {}  # of the workers still running at the end (those the fault killed are not judged)
        for worker in workers:
            codes[worker.label] = await asyncio.to_thread(worker.terminate)
    counted = tally([e.index for e in events], incidents, opened_by_event)
    recovery = station_back if fault == "station-kill" else None if resumed is None else resumed - fault_at
    return Outcome(fault=fault, events=counted.events, records_in=len(anomalies), incidents=counted.incidents,
                   lost=counted.lost, duplicated=counted.duplicated, strays=counted.strays,
                   recovery_s=None if recovery is None else round(recovery, 1), feeder_retries=feeder.retries,
                   exit_codes=codes, restarts=first.restarts + second.restarts + station.restarts,
                   console=sum(1 for n in tally([e.index for e in events], shown, opened_by_event).per_event.values()
                               if n == 1))


def console_view(station: ServiceProcess, observer: tuple[str, str], expected: set[str],
                 timeout_s: float) -> list[Incident]:
    """The incidents the station's console lists (``/api/incidents``, logged in as ``observer``: user name,
    password), once it lists every id of ``expected`` (or after ``timeout_s``); each as an :class:`Incident`
    with its id and ``opened_by``."""
    deadline = time.monotonic() + timeout_s
    base = f"http://127.0.0.1:{station.port}"
    while True:
        try:  # a new login each time: the station may have been killed and started again meanwhile
            cookie = login_cookie(base, *observer, timeout_s=5)
            request = urllib.request.Request(f"{base}/api/incidents", headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=5) as r:
                listed = json.loads(r.read())["incidents"]
        except (OSError, ValueError, KeyError):
            listed = []
        if expected <= {i.get("id") for i in listed} or time.monotonic() > deadline or INTERRUPTED.is_set():
            return [Incident(id=i.get("id", ""), opened_by=i.get("openedBy", "")) for i in listed]
        time.sleep(0.5)


def table(outcomes: list[Outcome]) -> str:
    """The chaos table as Markdown: fault, events in, incidents out, lost, duplicated, recovery seconds."""
    lines = ["| fault | events in | records in | incidents out | lost | duplicated | strays | on the console | "
             "recovery s | restarts | result |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        recovery = "-" if o.recovery_s is None else f"{o.recovery_s:.1f}"
        lines.append(f"| {o.fault} | {o.events} | {o.records_in} | {o.incidents} | {o.lost} | {o.duplicated} | "
                     f"{o.strays} | {'-' if o.console is None else o.console} | {recovery} | {o.restarts} | "
                     f"{'pass' if o.passed else 'FAIL'} |")
    return "\n".join(lines)
