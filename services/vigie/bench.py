"""``vigie bench``: throughput, latency and memory figures, printed as a table (and JSON with --json).

Figures (targets from the project's issues, checked here, never in timed tests):

- grabber: output frames per CPU-second (decode, sample, resize, mask, encode) on a
  720x480 clip, at 5 fps sampling and with every frame kept;
- detector: frames per second on one CPU thread at 640x360, batch 1 and batch 8, with
  the default analytics (target >= 100) and with every analytic on (target >= 60 at the
  detector's working batch); the object-class stage's cost per call, apart (it runs on
  candidates only);
- end to end: 8 cameras at 5 fps through the four services and the real broker for
  ``--seconds``; latency from capture time to the anomalies topic for every anomaly,
  and to the station's alert topic for every incident opened (target p99 <= 300 ms);
  the peak resident memory (VmHWM) of each service process;
- correlator: what it adds between an anomaly and its incident on the station topic, one at a time
  and 8 at once (target p99 <= 30 ms; :mod:`vigie.correlator.bench`);
- capacity (``make bench-capacity``, apart: about 3 minutes): :mod:`vigie.capacity`;
- register: append throughput and the verify time of 1,000,000 entries (:mod:`vigie.register.bench`);
- console: login and first page p50/p99, against one argon2id check; live view delay behind capture p50/p99,
  at the station's encoder and decoded by an aiortc client (:mod:`vigie.station.bench`);
- evidence: a clip per incident (ms, bytes), a purge of 100,000 items (:mod:`vigie.evidence.bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from vigie.benchkit import Latencies, free_port, fresh_namespace
from vigie.core.authorisations import authorise_cameras
from vigie.core.kafka_security import client_options
from vigie.core.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("VIGIE_DATA", ROOT.parent / "shared" / "data"))
ABODA = DATA / "aboda_video4" / "video4.avi"


def _percentiles(values: list[float]) -> tuple[float, float, int]:
    if not values:
        return float("nan"), float("nan"), 0
    arr = np.asarray(values)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), len(values)


def bench_grabber(fps: float, limit_s: float = 20.0) -> dict[str, float]:
    """Output frames per CPU-second of the grabber pipeline on one camera (ABODA or synthetic 720x480)."""
    from vigie.core.cameras import CameraConfig
    from vigie.grabber.frames import CameraPipeline

    source = str(ABODA) if ABODA.exists() else "synthetic://scene?seed=1&w=720&h=480&fps=30&duration=20"
    camera = CameraConfig(
        id="bench", source=source, fps=fps, width=640,
        privacy_masks=[{"name": "window", "polygon": [[0, 0], [200, 0], [200, 80], [0, 80]]}],
    )

    async def run() -> tuple[int, int, float, float]:
        pipeline = CameraPipeline(camera, as_fast_as_possible=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        frames = 0
        async for _ in pipeline.frames():
            frames += 1
            if time.perf_counter() - wall0 > limit_s:
                break
        return frames, pipeline.stats.decoded, time.process_time() - cpu0, time.perf_counter() - wall0

    frames, decoded, cpu, wall = asyncio.run(run())
    return {"frames": frames, "decoded": decoded, "cpu_s": cpu, "wall_s": wall,
            "frames_per_cpu_s": frames / cpu, "decoded_per_cpu_s": decoded / cpu}


def bench_detector(batch: int, frames: int, every: bool = False) -> float:
    """Frames per second of preprocess + the default analytics (or every one) on one CPU thread at 640x360."""
    from vigie.detector.analytics.registry import PLUGINS
    from vigie.detector.bench import measure

    kinds = sorted(PLUGINS) if every else ["abandoned_object", "crowd_movement"]
    return measure(frames, batch, size=(640, 360), kinds=kinds)


def bench_object_stage() -> float | None:
    """Milliseconds per call of the object-class stage (one CPU thread), or None when it is not installed."""
    from vigie.core.errors import ConfigError
    from vigie.detector.bench import object_stage_ms

    try:
        return object_stage_ms()
    except ConfigError:
        return None


def bench_alert_batch() -> dict[str, dict[str, float]] | None:
    """8 cameras raising together: the batch's analysis with the object-class verdict before and after the alert
    (:func:`vigie.detector.bench.alert_batch`), or None when the stage is not installed."""
    from vigie.core.errors import ConfigError
    from vigie.detector.bench import alert_batch

    try:
        return {"before": alert_batch(8, later=False), "after": alert_batch(8, later=True)}
    except ConfigError:
        return None


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def bench_end_to_end(cameras: int, seconds: float, bootstrap: str, object_classes: bool = True,
                     object_verdict: str = "after") -> dict[str, object]:
    """Run the four services on ``cameras`` cameras at 5 fps (real-time pace) and measure latencies and memory.

    The cameras all play the same clip from its start, so they raise their alarms in the same
    frame: with ``object_classes``, the object-class stage is consulted for each of them, after
    the alert (``object_verdict="after"``) or before (``"before"``: the worst case for the alert latency).
    """
    kafka = fresh_namespace(bootstrap)
    topics = Topics(kafka.namespace)
    tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-"))
    lines = ["cameras:"]
    for n in range(cameras):
        if ABODA.exists():
            lines.append(f"  - {{id: cam-{n}, source: '{ABODA}', fps: 5, loop: true}}")
        else:
            lines.append(f"  - {{id: cam-{n}, source: 'synthetic://scene?seed={n}&w=720&h=480&fps=10&leave_at={5 + n}',"
                         " fps: 5}")
    (tmp / "cameras.yaml").write_text(authorise_cameras("\n".join(lines) + "\n"))
    base = [sys.executable, "-m", "vigie", "--kafka", bootstrap, "--namespace", kafka.namespace, "--log-level", "WARNING"]
    plan = [
        ("station", ["station", "--database", f"sqlite:///{tmp}/accounts.db"]),
        ("correlator", ["correlator"]),
        ("detector", ["detector", "--cameras", str(tmp / "cameras.yaml"),
                      *([] if object_classes else ["--no-object-classes"]), "--object-verdict", object_verdict]),
        ("grabber", ["grabber", "--cameras", str(tmp / "cameras.yaml")]),
    ]
    procs = {}
    for name, args in plan:
        procs[name] = subprocess.Popen(base + args + ["--http-port", str(free_port())], stdout=subprocess.DEVNULL,
                                       stderr=open(tmp / f"{name}.log", "wb"), stdin=subprocess.DEVNULL)
    time.sleep(3)
    seen = Latencies(topics, time.time_ns())

    async def watch() -> None:
        consumer = AIOKafkaConsumer(topics.anomalies.name, topics.alerts("main").name, **client_options(kafka),
                                    auto_offset_reset="latest", group_id=None)
        await consumer.start()
        try:
            await seen.read(consumer, seconds)
        finally:
            await consumer.stop()

    asyncio.run(watch())
    rss = {name: _vm_hwm_mb(p.pid) for name, p in procs.items()}
    for name in ("grabber", "detector", "correlator", "station"):
        procs[name].send_signal(signal.SIGTERM)
        try:
            procs[name].wait(40)
        except subprocess.TimeoutExpired:
            procs[name].kill()
    codes = {name: p.returncode for name, p in procs.items()}
    a50, a99, an = _percentiles(seen.anomaly)
    i50, i99, inn = _percentiles(seen.alert)
    return {"cameras": cameras, "seconds": seconds, "anomaly_p50_s": a50, "anomaly_p99_s": a99, "anomalies": an,
            "alert_p50_s": i50, "alert_p99_s": i99, "incidents": inn, "peak_rss_mb": rss, "exit_codes": codes}


def main(args: argparse.Namespace) -> int:
    """Run the benchmarks and print the figures; returns 0."""
    console = Console()
    quick = args.quick
    results: dict[str, object] = {}
    console.print("[bold]grabber[/] (decode, sample, resize, mask, encode; one camera, 720x480 → 640)")
    results["grabber_5fps"] = bench_grabber(5.0, 8.0 if quick else 20.0)
    results["grabber_all"] = bench_grabber(30.0, 8.0 if quick else 20.0)
    from vigie.grabber.bench import bench_grabber_cost, rows as grabber_cost_rows

    results["grabber_cost"] = bench_grabber_cost(ABODA if ABODA.exists() else None, repeats=1 if quick else 3,
                                                 bootstrap=os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092"))
    console.print("[bold]detector[/] (one CPU thread, 640x360: default analytics, then every analytic)")
    n = 200 if quick else 1000
    results["detector_b1_fps"] = bench_detector(1, n)
    results["detector_b8_fps"] = bench_detector(8, n)
    results["detector_all_b1_fps"] = bench_detector(1, n // 2, every=True)
    results["detector_all_b8_fps"] = bench_detector(8, n // 2, every=True)
    results["object_stage_ms"] = bench_object_stage()
    results["alert_batch"] = bench_alert_batch()
    console.print("[bold]end to end[/] (8 cameras at 5 fps, real broker, four service processes)")
    bootstrap = os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092")
    results["end_to_end"] = bench_end_to_end(8, 30.0 if quick else 90.0, bootstrap)
    results["end_to_end_no_classes"] = bench_end_to_end(8, 30.0 if quick else 45.0, bootstrap, object_classes=False)
    console.print("[bold]correlator[/] (anomalies one at a time, then 8 at once; real process and broker)")
    from vigie.correlator.bench import bench_correlator, rows as correlator_rows

    results["correlator"] = bench_correlator(bootstrap, singles=50 if quick else 200)
    console.print("[bold]register[/] (append in batches of 500, verify the chain; SQLite, PostgreSQL when given)")
    from vigie.register.bench import bench_register, rows as register_rows

    results["register"] = bench_register(quick)
    console.print("[bold]console[/] (logins in a row on a fresh station, then the first page)")
    from vigie.station.bench import bench_console, rows as console_rows

    results["console"] = bench_console(bootstrap, n=20 if quick else 100)
    console.print("[bold]live view[/] (a camera watched over WebRTC by an aiortc client)")
    from vigie.station.bench import bench_live, live_rows

    results["live"] = bench_live(bootstrap, frames=100 if quick else 300)
    console.print("[bold]evidence[/] (a 30 s clip cut, encoded, stored and listed; a purge of 100,000 items)")
    from vigie.evidence.bench import bench_evidence, rows as evidence_rows

    results["evidence"] = bench_evidence(bootstrap, quick)
    results["bench_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    table = Table(title="Vigie benchmark (this machine)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    g5, ga = results["grabber_5fps"], results["grabber_all"]
    table.add_row("grabber, 5 fps sampling: output frames / CPU-s", f"{g5['frames_per_cpu_s']:.0f}", "")
    table.add_row("grabber, 5 fps sampling: decoded frames / CPU-s", f"{g5['decoded_per_cpu_s']:.0f}", "")
    table.add_row("grabber, every frame kept: output frames / CPU-s", f"{ga['frames_per_cpu_s']:.0f}", "")
    table.add_row("detector, default analytics, 1 core, batch 1: frames/s", f"{results['detector_b1_fps']:.0f}", ">= 100")
    table.add_row("detector, default analytics, 1 core, batch 8: frames/s", f"{results['detector_b8_fps']:.0f}", ">= 100")
    table.add_row("detector, all ten analytics, 1 core, batch 1: frames/s", f"{results['detector_all_b1_fps']:.0f}", "")
    table.add_row("detector, all ten analytics, 1 core, batch 8: frames/s", f"{results['detector_all_b8_fps']:.0f}", ">= 60")
    stage = results["object_stage_ms"]
    table.add_row("object-class stage (SSD-MobileNet-v2), 1 core: ms per call",
                  "not installed" if stage is None else f"{stage:.0f} ms", "")
    batch = results["alert_batch"]
    if batch is not None:
        before, after = batch["before"]["alert_ms"], batch["after"]["alert_ms"]
        table.add_row("8 cameras raising in one batch, 1 core: analysis, verdict before / after the alert",
                      f"{before:.0f} / {after:.0f} ms ({before / after:.1f}x)", "")
    e2e = results["end_to_end"]
    table.add_row(f"capture → anomalies, p50 / p99 (n={e2e['anomalies']})",
                  f"{e2e['anomaly_p50_s'] * 1000:.0f} / {e2e['anomaly_p99_s'] * 1000:.0f} ms", "")
    table.add_row(f"capture → station topic, p50 / p99 (n={e2e['incidents']} incidents, 8 raised in one batch, "
                  "object-class verdict after the alert)",
                  f"{e2e['alert_p50_s'] * 1000:.0f} / {e2e['alert_p99_s'] * 1000:.0f} ms", "p99 <= 300 ms")
    bare = results["end_to_end_no_classes"]
    table.add_row(f"capture → station topic, object-class stage off, p50 / p99 (n={bare['incidents']})",
                  f"{bare['alert_p50_s'] * 1000:.0f} / {bare['alert_p99_s'] * 1000:.0f} ms", "p99 <= 300 ms")
    for name, mb in e2e["peak_rss_mb"].items():
        table.add_row(f"peak RSS, {name}", f"{mb:.0f} MiB", "")
    for row in [*grabber_cost_rows(results["grabber_cost"]), *correlator_rows(results["correlator"]),
                *register_rows(results["register"]), *console_rows(results["console"]), *live_rows(results["live"]),
                *evidence_rows(results["evidence"])]:
        table.add_row(*row)
    console.print(table)
    if getattr(args, "json", False):
        print(json.dumps(results, default=float))
    return 0
