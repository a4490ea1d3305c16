"""The real parts a chaos run drives: a private Kafka broker and Vigie services as processes.

The broker is the project's own single-node KRaft broker (``deploy/kafka/kafka.sh``) started on
ports and a data folder of the run's own, so that restarting or killing it never touches a
broker someone else uses. Services are ``python -m vigie <service>`` processes whose
``/healthz`` is polled; they are stopped with SIGTERM (a clean drain) or SIGKILL (a crash).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from vigie.core.kafka_security import environment
from vigie.core.settings import KafkaSettings

#: The repository root (the chaos command runs from a checkout: it needs deploy/kafka).
ROOT = Path(__file__).resolve().parents[3]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
#: Set by :func:`interrupt`: every wait of this module gives up at once.
INTERRUPTED = threading.Event()
_RUNNING: set = set()  # brokers and service processes started and not stopped yet


def interrupt() -> None:
    """Stop everything this run started, at once (SIGKILL): the operator pressed Ctrl-C or the run got
    SIGTERM. Every wait of the run then ends (:data:`INTERRUPTED`)."""
    INTERRUPTED.set()
    for part in list(_RUNNING):
        part.kill()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A single-node Kafka broker of one chaos run, on its own ports and data folder.

    Args:
        var: folder of its data and logs (created; removed by nobody: it is the run's).
        extra_env: more environment for ``kafka.sh``, e.g. ``VIGIE_KAFKA_EXTRA_PROPERTIES`` and
            ``VIGIE_KAFKA_SCRAM_FILE`` for a listener with SASL or TLS (see ``kafka.sh``).

    Raises:
        RuntimeError: ``kafka.sh`` failed to start or stop it (its output is in the message).
    """

    def __init__(self, var: Path, extra_env: dict[str, str] | None = None) -> None:
        self.var = var
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "VIGIE_VAR": str(self.var), "VIGIE_KAFKA_PORT": str(self.port),
                "VIGIE_KAFKA_CONTROLLER_PORT": str(self.controller_port), "VIGIE_PYTHON": sys.executable,
                **self.extra_env}

    def _run(self, action: str) -> None:
        done = subprocess.run([str(KAFKA_SH), action], env=self._env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} failed ({done.returncode}):\n{done.stderr[-3000:]}")

    def start(self) -> None:
        """Start it and return once it answers metadata requests (a second try after a failed first one:
        on a loaded machine the JVM may take over the script's minute to answer)."""
        _RUNNING.add(self)
        try:
            self._run("start")
        except RuntimeError:
            if INTERRUPTED.is_set():
                raise
            self._run("start")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, waits for the JVM to exit)."""
        self._run("stop")
        _RUNNING.discard(self)

    def kill(self) -> None:
        """SIGKILL the broker's JVM (a crash: no clean shutdown)."""
        pidfile = self.var / "kafka" / "kafka.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            try:
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
            pidfile.unlink(missing_ok=True)

    def settings(self, namespace: str) -> KafkaSettings:
        """Kafka settings of this broker for ``namespace``."""
        return KafkaSettings(bootstrap=self.bootstrap, namespace=namespace, security_protocol="PLAINTEXT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def health(port: int, timeout_s: float = 2.0) -> tuple[int, dict] | None:
    """``(HTTP status, body)`` of a service's ``/healthz``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 while starting or draining: the body still says why
        try:
            return exc.code, json.loads(exc.read())
        except (ValueError, OSError):
            return exc.code, {}
    except (OSError, ValueError):
        return None


class ServiceProcess:
    """One Vigie service run as ``python -m vigie <name> <args>`` in a namespace.

    Args:
        kafka: broker and namespace.
        name: service subcommand (grabber, detector, correlator, station).
        args: its own arguments (``--http-port`` is added).
        log_dir: its output goes to ``<log_dir>/<label>.log`` (appended across restarts).
        label: name of the log file and of the process in reports (several correlators...).
    """

    def __init__(self, kafka: KafkaSettings, name: str, args: list[str], log_dir: Path, label: str | None = None) -> None:
        self.kafka = kafka
        self.name = name
        self.args = list(args)
        self.label = label or name
        self.log_path = log_dir / f"{self.label}.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.stopping = False  # set by kill() and terminate(): an exit the run asked for
        self.restarts = 0  # exits it did not ask for, restarted by :func:`supervise`

    def start(self) -> None:
        """Start the process (it may not be ready yet: see :meth:`wait_ready`)."""
        self.stopping = False
        cmd = [sys.executable, "-m", "vigie", "--kafka", self.kafka.bootstrap, "--namespace", self.kafka.namespace,
               self.name, *self.args, "--http-port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **environment(self.kafka), "PYTHONUNBUFFERED": "1"},
                                         start_new_session=True)
        self.starts += 1
        _RUNNING.add(self)

    def state(self) -> str | None:
        """What ``/healthz`` says (``state``), or None when it does not answer."""
        answer = health(self.port)
        return None if answer is None else str(answer[1].get("state"))

    def wait_ready(self, timeout_s: float = 90.0, states: tuple[str, ...] = ("running",)) -> float:
        """Wait until ``/healthz`` says one of ``states``; returns the seconds waited.

        Raises:
            RuntimeError: the process exited, or was not ready after ``timeout_s`` (with its log's tail).
        """
        started = time.monotonic()
        while self.state() not in states:
            if INTERRUPTED.is_set():
                raise RuntimeError(f"{self.label}: interrupted")
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({None if self.proc is None else self.proc.returncode}):\n"
                                   f"{self.tail()}")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{self.label} not {'/'.join(states)} after {timeout_s:.0f} s:\n{self.tail()}")
            time.sleep(0.25)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL (a crash: no drain, no commit)."""
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout_s: float = 45.0) -> int | None:
        """SIGTERM and wait for the clean drain; SIGKILL after ``timeout_s``. Returns the exit code."""
        self.stopping = True
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        _RUNNING.discard(self)
        return self.proc.returncode

    def restart_if_exited(self) -> bool:
        """Start the process again when it exited without being asked to (as docker compose's restart
        policy or Kubernetes would); True when it did."""
        if self.proc is None or self.stopping or self.proc.poll() is None:
            return False
        self.restarts += 1
        self.start()
        return True

    def tail(self, chars: int = 3000) -> str:
        """The end of the process's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def supervise(procs: list[ServiceProcess], every_s: float = 0.5) -> None:
    """Restart the processes of ``procs`` that exit without being asked to, until cancelled."""
    import asyncio

    while True:
        for proc in procs:
            proc.restart_if_exited()
        await asyncio.sleep(every_s)
