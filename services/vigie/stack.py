"""``vigie up``: the six services as child processes on this machine, stopped together.

Start order: register, evidence, station, correlator, detector, grabber (consumers before
producers, so the first frames, and the first audit entries, find everyone listening). Stop
order, on Ctrl-C or SIGTERM: grabber first (no new frames), then detector, correlator, station,
evidence and register last (it appends what the others wrote while stopping), each given SIGTERM
and time to drain. The register, the evidence catalogue and the console share one database
(``--database``, default ``VIGIE_DATABASE_URL`` or the SQLite file ``var/vigie.db``); evidence
lies in ``--evidence-store`` (default ``var/evidence``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from vigie.core.errors import ConfigError

DRAIN_S = 30.0


def _command(args: argparse.Namespace, service: str, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "vigie", "--log-level", args.log_level]
    if args.kafka:
        base += ["--kafka", args.kafka]
    if args.namespace:
        base += ["--namespace", args.namespace]
    return [*base, service, *extra]


def _ports(text: str) -> tuple[int, int, int]:
    """``"8091,8092,8093"`` → the grabber's, detector's and correlator's health ports. Raises ConfigError."""
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        ports = ()
    if len(ports) != 3 or not all(0 < p < 65536 for p in ports):
        raise ConfigError(f"--ports {text}: give three ports GRABBER,DETECTOR,CORRELATOR, e.g. 8091,8092,8093")
    return ports  # type: ignore[return-value]


def _check_free(port: int, what: str, option: str) -> None:
    with socket.socket() as probe:
        # As the services bind (SO_REUSEADDR): a port left in TIME-WAIT by a stack just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} for the {what} is taken ({exc.strerror}): choose another with "
                              f"`vigie up {option}`") from None


def _healthy(port: int) -> bool:
    """Whether the service on ``port`` is ready: /healthz says running, or degraded (running, part of its work failing)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return json.loads(response.read()).get("state") in ("running", "degraded")
    except (OSError, ValueError):
        return False


class Restarts:
    """When to restart a service that exited: after 1 s, doubling up to 30 s; a service that ran
    for a minute since its last start is restarted after 1 s again. Times in seconds (monotonic)."""

    def __init__(self) -> None:
        self.count = 0
        self.due_at = 0.0
        self._delay = 0.5
        self._started = time.monotonic()

    def next_delay(self) -> float:
        """Schedule the next start; returns the delay in seconds."""
        now = time.monotonic()
        self._delay = 1.0 if now - self._started > 60.0 else min(30.0, self._delay * 2)
        self.count += 1
        self.due_at = now + self._delay
        self._started = self.due_at
        return self._delay


#: Demo accounts of ``vigie up --demo-accounts``: name, roles, and the variable that may give the password.
DEMO_ACCOUNTS = (("admin", ("admin", "auditor"), "VIGIE_DEMO_ADMIN_PASSWORD"),
                 ("operator", ("operator",), "VIGIE_DEMO_OPERATOR_PASSWORD"))


def demo_accounts(stations: list[str]) -> list[str]:
    """Create the demo's admin (admin and auditor: accounts and the register, no image) and operator (of
    ``stations``) in an empty accounts database; returns the lines telling how to log in.

    A password comes from the account's environment variable (``VIGIE_DEMO_ADMIN_PASSWORD``,
    ``VIGIE_DEMO_OPERATOR_PASSWORD``; checked by the password policy) or is generated, printed once,
    and must be changed at the first login. A database that already has accounts is left as it
    is. Raises ConfigError for a password the policy refuses, DatabaseUnavailable when the database
    cannot be reached.
    """
    import asyncio

    from vigie.accounts.passwords import WeakPassword
    from vigie.accounts.store import AccountStore, provision
    from vigie.core.db import DatabaseSettings, make_engine, migrate

    database = DatabaseSettings()

    async def existing() -> int:
        engine = make_engine(database)
        try:
            await migrate(engine, database)
            return len(await AccountStore(engine).list())
        finally:
            await engine.dispose()

    if asyncio.run(existing()):
        return [f"Accounts exist in {database.redacted()}: log in with yours (a forgotten password: "
                ".venv/bin/vigie users passwd NAME --one-time)"]
    lines = []
    for name, roles, variable in DEMO_ACCOUNTS:
        given = os.environ.get(variable) or None
        try:
            password = asyncio.run(provision(database, name, roles, stations if "operator" in roles else (),
                                             by="vigie up", password=given, must_change=given is None))
        except WeakPassword as exc:
            raise ConfigError(f"{variable}: {exc}") from None
        shown = f"the password of {variable}" if given else f"one-time password {password} (a new one is asked)"
        lines.append(f"{name:<9} ({', '.join(roles)}): {shown}")
    return lines


def _load_routing_stations(path: str | None) -> list[str]:
    from vigie.cli import _load_routing

    return sorted(_load_routing(path).all_stations()) or ["main"]


def run_stack(args: argparse.Namespace) -> int:
    """Run grabber, detector, correlator and station until a signal; returns the exit code.

    A service that exits is started again with back-off (:class:`Restarts`), as a supervisor
    (docker compose's ``restart: unless-stopped``, Kubernetes) would; one that exits with a
    configuration error (code 2) stops the stack.

    The cameras and routing files and the ports are checked first: a mistake is reported
    before anything starts. The console's address is printed once every service reports
    ready (running or degraded) on its /healthz. Raises ConfigError.
    """
    from vigie.cli import _validate

    grabber_port, detector_port, correlator_port = _ports(args.ports)
    _validate(args.cameras, args.routing, args.policy)
    _check_free(args.station_port, "console", "--station-port N (make demo STATION_PORT=N)")
    for port, name in ((grabber_port, "grabber"), (detector_port, "detector"), (correlator_port, "correlator")):
        _check_free(port, f"{name}'s /healthz and /metrics", "--ports G,D,C (make demo PORTS=G,D,C)")
    _check_free(args.register_port, "register's /healthz and /metrics", "--register-port N")
    _check_free(args.evidence_port, "evidence service's /healthz and /metrics", "--evidence-port N")
    if args.database:
        os.environ["VIGIE_DATABASE_URL"] = args.database
    routing = ["--routing", args.routing] if args.routing else []
    routing += ["--policy", args.policy] if args.policy else []
    logins = demo_accounts(_load_routing_stations(args.routing)) if args.demo_accounts else []
    fast = ["--as-fast-as-possible"] if args.as_fast_as_possible else []
    plan = [
        ("register", args.register_port, _command(args, "register", "--http-port", str(args.register_port))),
        ("evidence", args.evidence_port, _command(args, "evidence", "serve", "--cameras", args.cameras, "--store",
                                                  args.evidence_store, "--http-port", str(args.evidence_port))),
        ("station", args.station_port, _command(args, "station", "--evidence-store", args.evidence_store,
                                                "--cameras", args.cameras, "--http-port", str(args.station_port))),
        ("correlator", correlator_port, _command(args, "correlator", *routing, "--http-port", str(correlator_port))),
        ("detector", detector_port, _command(args, "detector", "--cameras", args.cameras,
                                             "--http-port", str(detector_port))),
        ("grabber", grabber_port, _command(args, "grabber", "--cameras", args.cameras, *fast,
                                           "--http-port", str(grabber_port))),
    ]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children: list[tuple[str, subprocess.Popen]] = []
    for name, _, cmd in plan:
        # Children ignore the terminal's Ctrl-C: this process stops them in order.
        children.append((name, subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())))
    waiting = {name: port for name, port, _ in plan}
    restarts = {name: Restarts() for name, _, _ in plan}
    code = 0
    while not stopping:
        if waiting:
            waiting = {name: port for name, port in waiting.items() if not _healthy(port)}
            if not waiting:
                print(f"\n  Vigie is running. Operator console: http://127.0.0.1:{args.station_port}/  "
                      "(Ctrl-C stops)", file=sys.stderr, flush=True)
                print("\n".join(f"  {line}" for line in logins or [
                    "Log in with an account: .venv/bin/vigie users add NAME --roles operator --stations main"]) + "\n",
                      file=sys.stderr, flush=True)
        for index, (name, child) in enumerate(children):
            if child.poll() is None or restarts[name].due_at > time.monotonic():
                continue
            if restarts[name].due_at == 0.0:  # it just exited
                if child.returncode == 2:  # a configuration error: a restart would fail the same way
                    print(f"vigie up: {name} exited with a configuration error; stopping the others", file=sys.stderr)
                    code, stopping = 2, True
                    break
                delay = restarts[name].next_delay()
                print(f"vigie up: {name} exited with code {child.returncode}; restarting it in {delay:.0f} s "
                      f"(restart {restarts[name].count})", file=sys.stderr, flush=True)
                continue
            restarts[name].due_at = 0.0
            children[index] = (name, subprocess.Popen(plan[index][2], start_new_session=True, env=os.environ.copy()))
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
