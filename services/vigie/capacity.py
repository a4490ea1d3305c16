"""``make bench-capacity``: how many 5 fps cameras this machine carries through every service, and what each
camera costs each service.

For each step (4, 8, 16, 32 cameras by default) it starts the four services (station, correlator,
detector with the object-class stage, grabber) in a fresh namespace on the real broker, with that many
synthetic cameras (:mod:`vigie.grabber.synthetic`, 720x480 at 10 fps sampled at 5 fps; camera ``k``
leaves a box at ``2 + k % 10`` s, raised about 12 s later), and measures during ``seconds``:

- frames published (the frames topic's end offsets) and analysed (the detector's ``/healthz``), per second;
- capture → station topic latency of every incident opened, and capture → anomalies topic of every anomaly;
- CPU seconds of each service process (``/proc/<pid>/stat``: user + system, all threads) per camera-second.

A step *sustains* its cameras when the detector analysed at least 95 % of the frames the cameras should
give (``cameras * 5 * seconds``) and the alert latency's p99 is at most 300 ms. The search stops at the
first step that does not (bounded: about 45 s a step). The broker is shared, so its CPU is not counted here;
the frames' bytes per camera-second are (what a broker must carry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from vigie.benchkit import Latencies, fresh_namespace, percentiles_ms, start_service, stop
from vigie.core.authorisations import authorise_cameras
from vigie.core.kafka_security import client_options
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

FPS = 5.0
#: Analysed frames, as a share of the frames the cameras should give, for a step to sustain its cameras.
KEEP_UP = 0.95
TARGET_P99_S = 0.3
SERVICES = ("station", "correlator", "detector", "grabber")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far; NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def _cameras_yaml(n: int) -> str:
    lines = ["cameras:"]
    for k in range(n):
        lines.append(f"  - {{id: cam-{k}, source: 'synthetic://scene?seed={k}&w=720&h=480&fps=10&leave_at={2 + k % 10}',"
                     " fps: 5}")
    return authorise_cameras("\n".join(lines) + "\n")


def _detector_health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return json.loads(answer.read())


async def _watch(kafka: KafkaSettings, seconds: float, on_start) -> dict[str, object]:  # noqa: ANN001
    """Latencies on the anomalies and station topics during ``seconds``, the frames published and their bytes."""
    topics = Topics(kafka.namespace)
    consumer = AIOKafkaConsumer(topics.anomalies.name, topics.alerts("main").name, **client_options(kafka),
                                auto_offset_reset="latest", group_id=None, fetch_max_wait_ms=50)
    frames = AIOKafkaConsumer(**client_options(kafka), group_id=None)
    await consumer.start()
    await frames.start()
    try:
        parts = [TopicPartition(topics.frames.name, p) for p in frames.partitions_for_topic(topics.frames.name)
                 or await _partitions(frames, topics.frames.name)]
        first = sum((await frames.end_offsets(parts)).values())
        on_start()
        seen = Latencies(topics, time.time_ns())
        await seen.read(consumer, seconds)
        ends = await frames.end_offsets(parts)
        last = sum(ends.values())
        fullest = max(parts, key=lambda tp: ends[tp])
        frames.assign([fullest])
        frames.seek(fullest, max(0, ends[fullest] - 20))
        sizes = [len(r.value) for records in (await frames.getmany(timeout_ms=3000)).values() for r in records]
    finally:
        await consumer.stop()
        await frames.stop()
    return {"frames": last - first, "frame_bytes": sum(sizes) / len(sizes) if sizes else float("nan"),
            "alert": percentiles_ms(seen.alert), "anomaly": percentiles_ms(seen.anomaly)}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka gives no public call for it
    return consumer.partitions_for_topic(topic) or set()


def run_step(bootstrap: str, cameras: int, seconds: float, detector_args: tuple[str, ...] = ()) -> dict[str, object]:
    """One step: the four services on ``cameras`` synthetic cameras for ``seconds``; returns its figures.
    ``detector_args``: more options of ``vigie detector`` (e.g. ``--object-verdict before``).

    Raises:
        RuntimeError: a service did not start.
    """
    kafka = fresh_namespace(bootstrap, "benchcap")
    tmp = Path(tempfile.mkdtemp(prefix="vigie-capacity-"))
    (tmp / "cameras.yaml").write_text(_cameras_yaml(cameras))
    plan = [("station", ["--database", f"sqlite:///{tmp}/accounts.db"]), ("correlator", []),
            ("detector", ["--cameras", str(tmp / "cameras.yaml"), *detector_args]), ("grabber", ["--cameras", str(tmp / "cameras.yaml")])]
    procs, ports = {}, {}
    try:
        for name, args in plan:
            procs[name], ports[name] = start_service(kafka, name, args, tmp / f"{name}.log", ready_timeout_s=90)
        time.sleep(2.0)  # the cameras open, the detector's warm-up begins
        marks: dict[str, object] = {}

        def begin() -> None:
            marks["cpu"] = {name: cpu_seconds(p.pid) for name, p in procs.items()}
            marks["analysed"], marks["t"] = _detector_health(ports["detector"])["frames"], time.monotonic()

        seen = asyncio.run(_watch(kafka, seconds, begin))
        wall = time.monotonic() - marks["t"]
        detector = _detector_health(ports["detector"])
        analysed = detector["frames"] - marks["analysed"]
        cpu = {name: cpu_seconds(p.pid) - marks["cpu"][name] for name, p in procs.items()}
    finally:
        stop([procs[name] for name in reversed(SERVICES) if name in procs])
    expected = cameras * FPS * wall
    alert = seen["alert"]
    return {
        "cameras": cameras, "seconds": wall, "frames_per_s": seen["frames"] / wall, "analysed_per_s": analysed / wall,
        "expected_per_s": expected / wall, "alert": alert, "anomaly": seen["anomaly"],
        "frame_bytes": seen["frame_bytes"], "object_verdicts": detector.get("object_verdicts"), "cpu_per_camera_s": {n: c / (cameras * wall) for n, c in cpu.items()},
        "cpu_cores": {n: c / wall for n, c in cpu.items()},
        "sustained": analysed >= KEEP_UP * expected and alert["n"] > 0 and alert["p99"] <= TARGET_P99_S * 1000,
    }


def bench_capacity(bootstrap: str, steps: tuple[int, ...] = (4, 8, 16, 32), seconds: float = 30.0,
                   detector_args: tuple[str, ...] = ()) -> dict[str, object]:
    """Steps of :func:`run_step` in increasing order until one does not sustain its cameras.

    Returns ``{"steps": [...], "capacity": largest sustained camera count (0 if none)}``.
    """
    done = []
    for cameras in steps:
        done.append(run_step(bootstrap, cameras, seconds, detector_args))
        if not done[-1]["sustained"]:
            break
    return {"steps": done, "capacity": max((s["cameras"] for s in done if s["sustained"]), default=0)}


def rows(result: dict[str, object]) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, value, target)``."""
    out = []
    for s in result["steps"]:
        cost = ", ".join(f"{n} {v * 1000:.1f}" for n, v in s["cpu_per_camera_s"].items())
        out.append((f"{s['cameras']} cameras: analysed / expected frames per s",
                    f"{s['analysed_per_s']:.1f} / {s['expected_per_s']:.0f}", f">= {KEEP_UP:.0%}"))
        out.append((f"{s['cameras']} cameras: capture → station topic p50 / p99 (n={s['alert']['n']})",
                    f"{s['alert']['p50']:.0f} / {s['alert']['p99']:.0f} ms", "p99 <= 300 ms"))
        out.append((f"{s['cameras']} cameras: CPU ms per camera-second", cost, ""))
    out.append(("cameras at 5 fps sustained (this machine)", str(result["capacity"]), ""))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m vigie.capacity [--kafka HOST:PORT] [--steps 4 8 16 32] [--seconds 30] [--detector OPTIONS] [--json]``;
    returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vigie.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default=os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--detector", default="", help="more options of vigie detector, e.g. '--object-verdict before'")
    args = parser.parse_args(argv)
    result = bench_capacity(args.kafka, tuple(args.steps), args.seconds, tuple(args.detector.split()))
    for figure, value, target in rows(result):
        print(f"{figure:70s} {value:>40s} {target}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
