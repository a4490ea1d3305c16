"""``vigie chaos``: fault injection against real processes and a real broker, counting lost and duplicated incidents.

The run starts a private Kafka broker (its own ports and data folder, so a broker shared with
others is never restarted), then runs each requested fault of :mod:`vigie.chaos.scenarios` in
its own namespace and prints the chaos table. Exit code 1 when any fault lost, duplicated or
invented an incident.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from pathlib import Path

from vigie.core.options import bounded

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vigie chaos``."""
    from vigie.chaos.scenarios import FAULTS

    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated faults to run, each in its own namespace (default all: {','.join(FAULTS)})")
    parser.add_argument("--events", type=bounded(int, 1, 1000), default=60, help="events in (default 60)")
    parser.add_argument("--per-event", type=bounded(int, 1, 1000), default=10,
                        help="anomalies per event (default 10: 600 anomalies)")
    parser.add_argument("--cameras", type=bounded(int, 1, 1000), default=12, help="cameras the events are spread over")
    parser.add_argument("--rate", type=bounded(float, 0.1, 10000), default=10.0, help="anomalies fed per second")
    parser.add_argument("--down", type=bounded(float, 0, 600), default=5.0,
                        help="seconds the broker stays down in broker-restart")
    parser.add_argument("--workdir", help="folder for the broker's data and the services' logs (default: a temp dir)")
    parser.add_argument("--json", dest="json_path", help="also write the outcomes as JSON to this file")


def main(args: argparse.Namespace) -> int:
    """Run the faults of ``args``; prints the chaos table; returns 0 when every fault passed, else 1.

    Raises:
        ConfigError: an unknown fault name.
    """
    from vigie.chaos.cluster import PrivateBroker
    from vigie.chaos.scenarios import FAULTS, ChaosPlan, run_fault, table
    from vigie.core.errors import ConfigError

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ConfigError(f"--faults: unknown {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    plan = ChaosPlan(events=args.events, per_event=args.per_event, cameras=args.cameras, rate=args.rate,
                     down_s=args.down)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vigie-chaos-"))
    broker = PrivateBroker(workdir / "broker")
    print(f"vigie chaos: private broker on {broker.bootstrap}, logs in {workdir}", flush=True)
    broker.start()
    outcomes = []
    try:
        for fault in faults:
            outcome = asyncio.run(run_fault(fault, plan, broker, workdir))
            outcomes.append(outcome)
            print(table([outcome]).splitlines()[-1], flush=True)
    finally:
        broker.stop()
    print(table(outcomes))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([o.as_dict() for o in outcomes], indent=2))
    return 0 if all(o.passed for o in outcomes) else 1
