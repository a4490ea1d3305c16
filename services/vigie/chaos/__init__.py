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
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from vigie.core.options import bounded

log = logging.getLogger(__name__)


#: The clip the frame-path faults play by default (a checkout beside the project's shared data).
DEFAULT_CLIP = Path(__file__).resolve().parents[4] / "shared" / "data" / "aboda_video4" / "video4.avi"


def all_faults() -> tuple[str, ...]:
    """Every fault name: the correlator's path, then the frame path."""
    from vigie.chaos.footage import FOOTAGE_FAULTS
    from vigie.chaos.scenarios import FAULTS

    return FAULTS + FOOTAGE_FAULTS


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="folder for the broker's data and the services' logs (default: a temp dir)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vigie chaos``."""
    faults = all_faults()
    parser.add_argument("--faults", default=",".join(faults),
                        help=f"comma-separated faults to run, each in its own namespace (default all: {','.join(faults)})")
    parser.add_argument("--clip", default=str(DEFAULT_CLIP),
                        help="footage of the frame-path faults: a clip in which one object is left behind "
                        "(default ABODA video 4 from the shared data)")
    parser.add_argument("--clip-cameras", type=bounded(int, 1, 64), default=3,
                        help="cameras playing the clip in the frame-path faults (default 3)")
    parser.add_argument("--events", type=bounded(int, 1, 1000), default=60, help="events in (default 60)")
    parser.add_argument("--per-event", type=bounded(int, 1, 1000), default=10,
                        help="anomalies per event (default 10: 600 anomalies)")
    parser.add_argument("--cameras", type=bounded(int, 1, 1000), default=12, help="cameras the events are spread over")
    parser.add_argument("--rate", type=bounded(float, 0.1, 10000), default=10.0, help="anomalies fed per second")
    parser.add_argument("--down", type=bounded(float, 0, 600), default=5.0,
                        help="seconds the broker stays down in broker-restart")
    _outputs(parser)


def _interruptible(run: Callable[[], int]) -> int:
    """``run()``, stopped cleanly by Ctrl-C or SIGTERM: everything the run started (the private broker, the
    services, the RTSP servers) is killed at once and the exit code is 130."""
    from vigie.chaos.cluster import interrupt

    def on_signal(signum: int, _frame: object) -> None:
        interrupt()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run()
    except KeyboardInterrupt:
        interrupt()
        print("vigie: interrupted; what the run started is stopped", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(args: argparse.Namespace) -> int:
    """Run the faults of ``args``; prints the chaos table; returns 0 when every fault passed, else 1.

    Raises:
        ConfigError: an unknown fault name.
    """
    from vigie.chaos.cluster import PrivateBroker
    from vigie.chaos.footage import FOOTAGE_FAULTS, run_footage_fault
    from vigie.chaos.scenarios import ChaosPlan, run_fault, table
    from vigie.core.errors import ConfigError
    from vigie.core.kafka import throttle_client_logs

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in all_faults()]
    if unknown or not faults:
        raise ConfigError(f"--faults: {'unknown ' + ', '.join(unknown) if unknown else 'none given'}; "
                          f"choose from {', '.join(all_faults())}")
    if len(set(faults)) != len(faults):
        raise ConfigError(f"--faults: {args.faults!r} names a fault twice")
    clip = Path(args.clip)
    if any(f in FOOTAGE_FAULTS for f in faults) and not clip.is_file():
        raise ConfigError(f"--clip: {clip} not found (the frame-path faults {', '.join(FOOTAGE_FAULTS)} need footage)")
    if "rtsp-restart" in faults:
        from vigie.chaos.rtsp_server import rtsp_server_unavailable

        if why := rtsp_server_unavailable():
            raise ConfigError(f"rtsp-restart needs GStreamer's RTSP server: {why} (`make system-deps-test` installs it)")
    plan = ChaosPlan(events=args.events, per_event=args.per_event, cameras=args.cameras, rate=args.rate,
                     down_s=args.down)
    workdir = _workdir(args.workdir, "vigie-chaos-")
    throttle_client_logs()  # the feeder's client repeats itself while the broker is down: on purpose

    def run() -> int:
        broker = PrivateBroker(workdir / "broker")
        print(f"vigie chaos: private broker on {broker.bootstrap}, logs in {workdir}", flush=True)
        broker.start()
        outcomes = []
        try:
            for fault in faults:
                if fault in FOOTAGE_FAULTS:
                    outcome = asyncio.run(run_footage_fault(fault, plan, broker, workdir, clip,
                                                            cameras=args.clip_cameras))
                else:
                    outcome = asyncio.run(run_fault(fault, plan, broker, workdir))
                outcomes.append(outcome)
                print(table([outcome]).splitlines()[-1], flush=True)
        finally:
            broker.stop()
        print(table(outcomes))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps([o.as_dict() for o in outcomes], indent=2))
        return 0 if all(o.passed for o in outcomes) else 1

    return _interruptible(run)


def _workdir(given: str | None, prefix: str) -> Path:
    """The run's folder: ``given`` (created) or a new temporary one. Raises ConfigError when it cannot be written."""
    from vigie.core.errors import ConfigError

    if not given:
        return Path(tempfile.mkdtemp(prefix=prefix))
    path = Path(given)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".vigie-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--workdir {given}: cannot write there ({exc.strerror or exc})") from None
    return path


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vigie soak``."""
    parser.add_argument("--duration", type=bounded(float, 10, 7 * 86400), default=3600.0,
                        help="seconds to run (default 3600)")
    parser.add_argument("--cameras", type=bounded(int, 1, 1000), default=30, help="synthetic cameras (default 30)")
    parser.add_argument("--fps", type=bounded(float, 0.1, 60), default=5.0, help="frames per second per camera")
    parser.add_argument("--every", type=bounded(float, 1, 3600), default=10.0, help="seconds between samples")
    parser.add_argument("--max-rss-growth", type=bounded(float, 0, 100000), default=50.0,
                        help="MiB of resident memory a process may gain after the warm-up (default 50)")
    _outputs(parser)


def soak_main(args: argparse.Namespace) -> int:
    """Run the soak of ``args``; prints the figures; returns 0 when every process stayed flat, else 1."""
    from vigie.chaos.soak import SoakPlan, run_soak, soak_table, write_json

    plan = SoakPlan(cameras=args.cameras, fps=args.fps, duration_s=args.duration, every_s=args.every,
                    max_rss_mib=args.max_rss_growth)
    workdir = _workdir(args.workdir, "vigie-soak-")

    def run() -> int:
        print(f"vigie soak: {plan.cameras} cameras at {plan.fps:g} fps for {plan.duration_s:.0f} s, logs in {workdir}",
              flush=True)
        results, flow = asyncio.run(run_soak(plan, workdir, report=lambda line: print(line, flush=True)))
        print(soak_table(results))
        flowing = flow["analysed"] > 0 and flow["published"] > 0
        print(f"frames published {flow['published']}, analysed {flow['analysed']}; incidents on the console "
              f"{flow['incidents']}")
        passed = all(r["flat"] for r in results) and flowing
        print(f"vigie soak: {'pass' if passed else 'FAIL'}" + ("" if flowing else " (no frame went through)"))
        if args.json_path:
            write_json(Path(args.json_path), plan, results, flow)
        return 0 if passed else 1

    return _interruptible(run)
