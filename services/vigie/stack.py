"""``vigie up``: the four services as child processes on this machine, stopped together.

Start order: station, correlator, detector, grabber (consumers before producers, so the
first frames find everyone listening). Stop order, on Ctrl-C or SIGTERM: grabber first
(no new frames), then detector, correlator and station, each given SIGTERM and time to
drain. When one service dies, the others are stopped and its exit code is returned.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from vigie.core.errors import ConfigError

DRAIN_S = 30.0


def _command(args: argparse.Namespace, service: str, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "vigie", "--log-level", args.log_level]
    if args.kafka:
        base += ["--kafka", args.kafka]
    if args.namespace:
        base += ["--namespace", args.namespace]
    return [*base, service, *extra]


def run_stack(args: argparse.Namespace) -> int:
    """Run grabber, detector, correlator and station until a signal or a failure; returns the exit code.

    The cameras and routing files and the console's port are checked first: a mistake
    is reported before anything starts. Raises ConfigError.
    """
    from vigie.cli import _validate

    _validate(args.cameras, args.routing)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.station_port))
        except OSError as exc:
            raise ConfigError(f"port {args.station_port} for the console is taken ({exc.strerror}): "
                              "choose another with `vigie up --station-port N` (make demo STATION_PORT=N)") from None
    routing = ["--routing", args.routing] if args.routing else []
    fast = ["--as-fast-as-possible"] if args.as_fast_as_possible else []
    plan = [
        ("station", _command(args, "station", "--http-port", str(args.station_port))),
        ("correlator", _command(args, "correlator", *routing)),
        ("detector", _command(args, "detector", "--cameras", args.cameras)),
        ("grabber", _command(args, "grabber", "--cameras", args.cameras, *fast)),
    ]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children: list[tuple[str, subprocess.Popen]] = []
    for name, cmd in plan:
        # Children ignore the terminal's Ctrl-C: this process stops them in order.
        children.append((name, subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())))
    print(f"\n  Vigie is running. Operator console: http://127.0.0.1:{args.station_port}/  (Ctrl-C stops)\n",
          file=sys.stderr, flush=True)
    code = 0
    while not stopping:
        for name, child in children:
            if child.poll() is not None:
                print(f"vigie up: {name} exited with code {child.returncode}; stopping the others", file=sys.stderr)
                code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.3)
    for name, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(DRAIN_S)
            except subprocess.TimeoutExpired:
                print(f"vigie up: {name} did not stop in {DRAIN_S:.0f} s; killing it", file=sys.stderr)
                child.kill()
                child.wait()
    for name, child in children:
        if child.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL) and not code:
            print(f"vigie up: {name} stopped with code {child.returncode}", file=sys.stderr)
            code = 1
    print("vigie up: stopped", file=sys.stderr)
    return code
