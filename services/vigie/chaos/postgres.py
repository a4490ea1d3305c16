"""A private PostgreSQL server for tests and benchmarks: Debian's package, a fresh cluster in a temporary folder.

``initdb`` and ``postgres`` refuse to run as root, so under root the cluster belongs to the
``postgres`` system account the package creates and is started through ``runuser``. The server
listens on 127.0.0.1 on a free port, with password (SCRAM) authentication; it is stopped with
``pg_ctl stop -m fast`` at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from vigie.chaos.cluster import free_port as _free_port

PG_BIN = Path(os.environ.get("VIGIE_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER, PASSWORD = "vigie", "pg-test-only-6fd1"


def available() -> str | None:
    """None when a server can be started here, else why not (for pytest.skip)."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (Debian package postgresql; make system-deps-test)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL under its own account"
    return None


@dataclass
class PostgresServer:
    """One running cluster: ``url(db)`` gives a SQLAlchemy URL of a database created by :meth:`create_db`."""

    folder: Path
    port: int

    def _run(self, *argv: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)

    def url(self, db: str = "vigie") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        """Create database ``name`` owned by the test user; returns its URL."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres", "-v",
                        "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True,
                       env=env, stdin=subprocess.DEVNULL)
        return self.url(name)

    def psql(self, db: str, sql: str) -> str:
        """Run ``sql`` on database ``db`` as the test user; returns psql's unaligned output."""
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", db, "-At", "-v",
                               "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL)
        return done.stdout

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "stop", "-m", "fast")


def start() -> PostgresServer:
    """Initialise and start a cluster (fsync off: a scratch server, figures are upper bounds); raises
    CalledProcessError with initdb's or pg_ctl's output."""
    folder = Path(tempfile.mkdtemp(prefix="vigie-pg-"))
    (folder / "pwfile").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pwfile", "postgres", "postgres")
    os.chmod(folder, 0o700)
    server = PostgresServer(folder, _free_port())
    server._run(str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-U", USER, "--pwfile", str(folder / "pwfile"),
                "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
    opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} -c fsync=off"
    server._run(str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-o", opts, "-w",
                "start")
    return server
