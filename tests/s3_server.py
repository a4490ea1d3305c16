"""An S3-compatible server for the evidence store's tests: gofakes3 (built by scripts/s3-server.sh into
var/bin), in memory, buckets created on first use, on a port of the test's choosing."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BINARY = Path(__file__).resolve().parents[1] / "var" / "bin" / "gofakes3"
#: Credentials the test server accepts (it checks none); boto3 needs some to sign its requests.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vigie-test", "AWS_SECRET_ACCESS_KEY": "vigie-test-secret"}


def need_server() -> None:
    """Skip the test, saying why, when gofakes3 is not built."""
    if not BINARY.exists():
        pytest.skip("gofakes3 not built (make system-deps-test builds it with Go: scripts/s3-server.sh)")


@contextmanager
def s3_server(port: int) -> Iterator[str]:
    """gofakes3 listening on 127.0.0.1:``port`` until the block ends; yields its endpoint URL."""
    need_server()
    process = subprocess.Popen([str(BINARY), "-backend", "memory", "-autobucket", "-host", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "gofakes3 did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def s3_credentials(monkeypatch) -> None:  # noqa: ANN001
    """The test server's credentials in the environment, as boto3 reads them."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    os.environ.pop("AWS_PROFILE", None)
