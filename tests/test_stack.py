"""``vigie up``: its ports are checked before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import free_port
from vigie.core.authorisations import authorise_cameras
from vigie.core.errors import ConfigError
from vigie.stack import _check_free
from vigie.station.client import login_cookie as client_login


def _up(cameras: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", "up", "--cameras", str(cameras), *extra],
                          capture_output=True, text=True, timeout=60)


def test_vigie_up_checks_the_service_ports_first(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: a\n    source: synthetic://scene\n"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _up(cameras, "--station-port", str(free_port()), "--ports", f"{free_port()},{port},{free_port()}")
    assert result.returncode == 2 and "Vigie is running" not in result.stderr
    assert f"port {port} for the detector's /healthz and /metrics is taken" in result.stderr
    assert "--ports G,D,C" in result.stderr and "Traceback" not in result.stderr
    for bad in ("8091,8092", "a,b,c", "8091,8092,70000"):
        result = _up(cameras, "--ports", bad)
        assert result.returncode == 2 and f"--ports {bad}: give three ports" in result.stderr


def _time_wait_port() -> int:
    """A port on 127.0.0.1 no one listens on any more, with a connection in TIME_WAIT: a server (SO_REUSEADDR, as
    aiohttp's and so the services') accepted a connection, closed it first (the side that closes first keeps
    TIME_WAIT), then closed its listening socket: a stack just stopped."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
        assert client.recv(1) == b""  # the client saw the FIN
        client.close()
    return port


def test_port_check_counts_only_a_port_listened_on_as_taken() -> None:
    """Defect: restarting the demo right after Ctrl-C failed with 'port ... taken' for a minute: the check bound
    without SO_REUSEADDR, so a port whose connections were in TIME_WAIT looked taken. Only a listened port is."""
    port = _time_wait_port()
    with socket.socket() as plain:  # what the check did before: a bind without SO_REUSEADDR fails
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    _check_free(port, "console", "--station-port N")  # free: no error
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        taken = listening.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {taken} for the console is taken"):
            _check_free(taken, "console", "--station-port N")


def test_vigie_up_restarts_a_service_that_dies(kafka, tmp_path: Path) -> None:
    """Defect: one service killed (kill -9 of the correlator) took the whole `vigie up` stack down, so a
    restart could not be tried under `make demo`. It is now started again with back-off, as a supervisor
    would, and the stack keeps running; Ctrl-C still stops everything cleanly."""
    import json
    import os
    import re
    import signal
    import time
    import urllib.request

    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n  - id: a\n    source: synthetic://scene?w=320&h=240\n    fps: 2\n"))
    ports = [free_port() for _ in range(6)]
    log = tmp_path / "up.log"
    database = f"sqlite:///{tmp_path}/vigie.db"

    def state(port: int) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return json.loads(r.read())["state"]
        except (OSError, ValueError):
            return None

    def wait(condition, what: str, timeout: float = 120) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition():
            assert up.poll() is None and time.monotonic() < deadline, f"{what}:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)

    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace,
                               "up", "--cameras", str(cameras), "--station-port", str(ports[0]),
                               "--ports", ",".join(map(str, ports[1:4])), "--register-port", str(ports[4]),
                               "--evidence-port", str(ports[5]), "--evidence-store", str(tmp_path / "evidence"),
                               "--database", database, "--demo-accounts"],
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait(lambda: "Vigie is running" in log.read_text(), "the stack did not start")
        # The demo's accounts: one-time passwords printed once; the operator's works (a new one is then asked).
        password = re.search(r"operator +\(operator\): one-time password (\S+)", log.read_text())
        assert password and re.search(r"admin +\(admin, auditor\): one-time password \S+", log.read_text())
        assert client_login(f"http://127.0.0.1:{ports[0]}", "operator", password[1])
        assert state(ports[4]) == "running" and state(ports[5]) == "running"  # the register, the evidence service
        found = subprocess.run(["pgrep", "-f", f"correlator.*--http-port {ports[3]}"], capture_output=True, text=True)
        (pid,) = [int(p) for p in found.stdout.split()]
        os.kill(pid, signal.SIGKILL)
        wait(lambda: "correlator exited with code -9; restarting it in" in log.read_text(), "no restart announced")
        wait(lambda: state(ports[3]) == "running", "the correlator did not come back")
        assert up.poll() is None
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.kill()


def test_demo_accounts_once_in_an_empty_database_passwords_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    """`vigie up --demo-accounts`: an admin and an operator in an empty database only; a password given in the
    environment is checked by the policy (no one-time password then), and a database with accounts is left alone."""
    import pytest

    from vigie.core.errors import ConfigError
    from vigie.stack import demo_accounts

    monkeypatch.setenv("VIGIE_DATABASE_URL", f"sqlite:///{tmp_path}/weak.db")
    monkeypatch.setenv("VIGIE_DEMO_ADMIN_PASSWORD", "admin")
    with pytest.raises(ConfigError, match="VIGIE_DEMO_ADMIN_PASSWORD"):
        demo_accounts(["main"])
    monkeypatch.setenv("VIGIE_DATABASE_URL", f"sqlite:///{tmp_path}/vigie.db")
    monkeypatch.setenv("VIGIE_DEMO_ADMIN_PASSWORD", "Correct-Horse-Battery-9")
    lines = demo_accounts(["main", "east"])
    assert lines[0].startswith("admin") and "VIGIE_DEMO_ADMIN_PASSWORD" in lines[0] and "Correct" not in lines[0]
    assert lines[1].startswith("operator") and "one-time password" in lines[1]
    import asyncio

    from vigie.accounts.store import AccountStore
    from vigie.core.db import DatabaseSettings, make_engine

    async def accounts() -> dict:
        engine = make_engine(DatabaseSettings())
        try:
            return {a.name: a for a in await AccountStore(engine).list()}
        finally:
            await engine.dispose()

    made = asyncio.run(accounts())
    assert set(made) == {"admin", "operator"}
    assert list(made["operator"].stations) == ["east", "main"] and made["operator"].must_change_password
    assert set(made["admin"].roles) == {"admin", "auditor"} and not made["admin"].must_change_password
    assert "Accounts exist" in demo_accounts(["main"])[0]
    assert set(asyncio.run(accounts())) == {"admin", "operator"}
