"""``vigie up``: its ports are checked before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.stack import free_port


def _up(cameras: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", "up", "--cameras", str(cameras), *extra],
                          capture_output=True, text=True, timeout=60)


def test_vigie_up_checks_the_service_ports_first(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - id: a\n    source: synthetic://scene\n")
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
