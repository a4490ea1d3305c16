"""``vigie soak`` (``make soak``): every service on many cameras for a long time; resident memory, file
descriptors and threads must stay flat.

The run starts a private broker, the station, the correlator, the detector and the grabber on
``cameras`` synthetic cameras (the project's own rendered street scenes, each with a box left
behind, so incidents open and grow), then samples each process's ``/proc/<pid>/status`` and
``/proc/<pid>/fd`` every ``every_s`` seconds. After a warm-up (the first ``warmup_frac`` of the
run: caches, JIT and first allocations), growth is measured from the warm-up sample to the
last: at most ``max_rss_mib`` MiB of resident memory and ``max_growth`` (relative) of file
descriptors and threads, per process. A leak a day shows within an hour at this rate.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vigie.core.authorisations import authorise_cameras
from vigie.chaos.cluster import PrivateBroker, ServiceProcess, health
from vigie.core.kafka import apply_topics
from vigie.core.topics import Topics


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a process: resident memory (MiB), open file descriptors, threads."""

    at_s: float
    rss_mib: float
    fds: int
    threads: int


def read_sample(pid: int, at_s: float) -> Sample | None:
    """The :class:`Sample` of process ``pid`` from ``/proc``, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields.get("VmRSS", "0 kB").split()[0])
    return Sample(at_s=at_s, rss_mib=rss_kib / 1024, fds=fds, threads=int(fields.get("Threads", "0")))


@dataclass
class Growth:
    """What one process did over the measured part of the run, and whether it stayed flat."""

    process: str
    samples: list[Sample] = field(default_factory=list)

    def judge(self, warmup_frac: float, max_rss_mib: float, max_growth: float) -> dict:
        """Growth from the first sample after ``warmup_frac`` of the run to the last one.

        Returns a dict with the start and end values, the growths and ``flat`` (True when RSS grew by
        at most ``max_rss_mib`` MiB and descriptors and threads by at most ``max_growth`` of their
        start values, one of each always allowed). Raises ValueError without samples.
        """
        if not self.samples:
            raise ValueError(f"{self.process}: no sample")
        end = self.samples[-1]
        start = next((s for s in self.samples if s.at_s >= warmup_frac * end.at_s), self.samples[0])
        rss = end.rss_mib - start.rss_mib
        fd_ok = end.fds - start.fds <= max(1, max_growth * start.fds)
        thread_ok = end.threads - start.threads <= max(1, max_growth * start.threads)
        return {"process": self.process, "from_s": round(start.at_s), "to_s": round(end.at_s),
                "rss_mib": [round(start.rss_mib, 1), round(end.rss_mib, 1)], "rss_growth_mib": round(rss, 1),
                "peak_rss_mib": round(max(s.rss_mib for s in self.samples), 1),
                "fds": [start.fds, end.fds], "threads": [start.threads, end.threads],
                "flat": rss <= max_rss_mib and fd_ok and thread_ok}


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """Sizes of a soak: ``cameras`` synthetic cameras at ``fps`` for ``duration_s`` seconds, sampled
    every ``every_s``; the limits of :meth:`Growth.judge`."""

    cameras: int = 30
    fps: float = 5.0
    duration_s: float = 3600.0
    every_s: float = 10.0
    warmup_frac: float = 0.2
    max_rss_mib: float = 50.0
    max_growth: float = 0.10


def soak_cameras(cameras: int, fps: float) -> str:
    """A cameras file of synthetic 320x240 street scenes, each with a box left at a different time."""
    lines = ["cameras:"]
    for n in range(cameras):
        lines += [f"  - id: soak-{n:02d}",
                  f"    source: synthetic://scene?seed={n}&w=320&h=240&fps={fps:g}&leave_at={5 + n % 20}&people=3",
                  f"    fps: {fps:g}", "    width: 320"]
    return authorise_cameras("\n".join(lines) + "\n")


async def run_soak(plan: SoakPlan, workdir: Path, report=print) -> tuple[list[dict], dict]:  # noqa: ANN001
    """Run the soak; returns one :meth:`Growth.judge` dict per service, and what flowed through the
    pipeline (``published`` frames, ``analysed`` frames, ``incidents`` on the console) so that a
    stuck pipeline cannot pass. Raises RuntimeError when a service does not start or exits during
    the run (its log's tail in the message)."""
    broker = PrivateBroker(workdir / "broker")
    await asyncio.to_thread(broker.start)
    try:
        kafka = broker.settings(f"soak{uuid.uuid4().hex[:6]}.")
        await apply_topics(kafka, Topics(kafka.namespace).all(["main"]))
        cameras_file = workdir / "cameras.yaml"
        cameras_file.write_text(soak_cameras(plan.cameras, plan.fps))
        procs = [ServiceProcess(kafka, "station", ["--database", f"sqlite:///{workdir}/accounts.db"], workdir), ServiceProcess(kafka, "correlator", [], workdir),
                 ServiceProcess(kafka, "detector", ["--cameras", str(cameras_file), "--batch", "64"], workdir),
                 ServiceProcess(kafka, "grabber", ["--cameras", str(cameras_file)], workdir)]
        for proc in procs:
            proc.start()
            await asyncio.to_thread(proc.wait_ready, 120.0, ("running", "degraded"))
        growth = {p.label: Growth(p.label) for p in procs}
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < plan.duration_s:
                for proc in procs:
                    sample = read_sample(proc.proc.pid, elapsed)
                    if sample is None or proc.proc.poll() is not None:
                        raise RuntimeError(f"{proc.label} exited during the soak:\n{proc.tail()}")
                    growth[proc.label].samples.append(sample)
                report(f"{elapsed:7.0f} s  " + "  ".join(
                    f"{p.label} {growth[p.label].samples[-1].rss_mib:.0f} MiB" for p in procs))
                await asyncio.sleep(plan.every_s)
            flow = await asyncio.to_thread(_flow, procs)
        finally:
            for proc in reversed(procs):
                await asyncio.to_thread(proc.terminate)
        return [g.judge(plan.warmup_frac, plan.max_rss_mib, plan.max_growth) for g in growth.values()], flow
    finally:
        await asyncio.to_thread(broker.stop)


def _flow(procs: list[ServiceProcess]) -> dict:
    """Frames the grabber published, frames the detector analysed, incidents the station holds (their /healthz)."""
    bodies = {p.name: (health(p.port) or (0, {}))[1] for p in procs}
    cameras = bodies.get("grabber", {}).get("cameras", {})
    incidents = bodies.get("station", {}).get("incidents", 0)
    return {"published": sum(int(c.get("published", 0)) for c in cameras.values()),
            "analysed": int(bodies.get("detector", {}).get("frames", 0)),
            "incidents": incidents if isinstance(incidents, int) else len(incidents)}


def soak_table(results: list[dict]) -> str:
    """The soak's figures as Markdown."""
    lines = ["| process | measured s | RSS MiB start → end (peak) | growth MiB | fds | threads | flat |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['process']} | {r['from_s']}–{r['to_s']} | {r['rss_mib'][0]} → {r['rss_mib'][1]} "
                     f"({r['peak_rss_mib']}) | {r['rss_growth_mib']} | {r['fds'][0]} → {r['fds'][1]} | "
                     f"{r['threads'][0]} → {r['threads'][1]} | {'yes' if r['flat'] else 'NO'} |")
    return "\n".join(lines)


def write_json(path: Path, plan: SoakPlan, results: list[dict], flow: dict) -> None:
    """The soak's plan, figures and flow as JSON."""
    path.write_text(json.dumps({"plan": asdict(plan), "results": results, "flow": flow}, indent=2))
