"""Ctrl-C during ``vigie evaluate FOLDER --jobs 2``: the command exits 130 at once, without the
workers' tracebacks, and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.clips import data_path


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def test_ctrl_c_stops_a_collection_in_worker_processes_cleanly(tmp_path) -> None:
    long_clip = data_path("intel_sample_videos", "one-by-one-person-detection.mp4")  # 139 s
    for camera in ("cam-1", "cam-2", "cam-3"):
        (tmp_path / camera).mkdir()
        (tmp_path / camera / "street.mp4").symlink_to(long_clip)
    # SIGINT at its default, as in a terminal (a shell's background job would ignore it)
    process = subprocess.Popen(
        [sys.executable, "-m", "vigie", "evaluate", str(tmp_path), "--jobs", "2", "--kinds", "fire"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while len(_children(process.pid)) < 3 and time.monotonic() < deadline:  # 2 workers, 1 resource tracker
            time.sleep(0.2)
        workers = _children(process.pid)
        assert len(workers) >= 3 and process.poll() is None
        time.sleep(1.0)  # the workers are importing or evaluating
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted" in err and out == ""
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
