"""Fault-injection scenarios on the frame path: real footage through grabber, detector and correlator.

Every camera of the run plays the same real clip (by default ABODA video 4: a man leaves a
bag by a cabinet and walks away), so every camera holds exactly one event, an abandoned
object, and must give exactly one ``abandoned_object`` incident. The grabber publishes the
clips as fast as possible; the fault is injected once the detector has analysed
``fault_after_s`` seconds of every camera (before the bag is set down, so that a detector that
restarts cold has time to learn the scene again):

* ``detector-kill``: the detector is SIGKILLed and started again (it replays what it had not
  committed, with cold analytics);
* ``detector-join-leave``: a second detector joins the consumer group, then the first leaves
  (SIGTERM, a clean drain) and the second carries on with every camera;
* ``grabber-kill``: the clips are played in real time; the grabber is SIGKILLed once it has
  published ``fault_after_s`` seconds of every camera and started again (a file starts again from
  its beginning: the scene replays, and must still give one incident);
* ``rtsp-restart``: each camera is a real RTSP server (GStreamer) playing the clip in real time;
  the servers are SIGKILLed and started again on the same ports; the grabber reconnects by itself;
* ``pipeline-broker-restart``: the clips are played in real time and the broker is SIGKILLed, then
  started again after ``down_s``: the grabber keeps its newest frames meanwhile, the detector and
  the correlator wait for it.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

from vigie.core.authorisations import authorise_cameras
from vigie.chaos.cluster import PrivateBroker, ServiceProcess, health, supervise
from vigie.chaos.events import read_incidents, tally
from vigie.chaos.rtsp_server import RtspServer
from vigie.chaos.scenarios import ChaosPlan, Outcome, prepare_run
from vigie.core.topics import CAMERA_PARTITIONS
from vigie.contracts.v1 import Incident

FOOTAGE_FAULTS = ("detector-kill", "detector-join-leave", "grabber-kill", "rtsp-restart", "pipeline-broker-restart")
KIND = "abandoned_object"


def cameras_yaml(sources: list[str]) -> str:
    """A cameras file of one camera per source (a clip or an RTSP URL) at 5 fps, abandoned object only."""
    lines = ["cameras:"]
    for n, source in enumerate(sources):
        lines += [f"  - id: chaos-clip-{n:02d}", f"    source: {source}", "    fps: 5",
                  "    reconnect: {initial_s: 0.5, max_s: 2.0}" if source.startswith("rtsp://") else "    loop: false",
                  "    analytics:", f"      {KIND}: {{}}", "      crowd_movement: false"]
    return authorise_cameras("\n".join(lines) + "\n")


def _camera_event(cameras: int):  # noqa: ANN202
    names = {f"chaos-clip-{n:02d}": n for n in range(cameras)}

    def which(incident: Incident) -> int | None:
        return names.get(incident.camera_id) if incident.kind == KIND else None

    return which


async def _furthest_camera(detector: ServiceProcess) -> int:
    """Frames the detector analysed of the camera it is furthest into (its /healthz; 0 while it does not answer).

    The fault comes when the furthest camera reaches ``fault_after_s``: every camera is then before its bag
    (a total over the cameras could be reached with one camera already past its bag, whose restarted cold
    detector could then never raise it)."""
    answer = await asyncio.to_thread(health, detector.port)
    cameras = answer[1].get("cameras", {}) if answer else {}
    return max((int(c.get("frames", 0)) for c in cameras.values()), default=0)


async def _partitions(detector: ServiceProcess) -> list:
    """The frames partitions the detector owns, by its /healthz (empty while it does not answer)."""
    answer = await asyncio.to_thread(health, detector.port)
    return list(answer[1].get("partitions", [])) if answer and answer[1].get("state") == "running" else []


async def run_footage_fault(fault: str, plan: ChaosPlan, broker: PrivateBroker, workdir: Path, clip: Path,
                            cameras: int = 3, fault_after_s: float = 5.0, fps: float = 5.0) -> Outcome:
    """Run one frame-path scenario (see the module docstring) and count the incidents per camera.

    Raises:
        ValueError: unknown fault.
        RuntimeError: a service or an RTSP server did not start (its log's tail is in the message).
    """
    kafka, logs = await prepare_run(fault, FOOTAGE_FAULTS, broker, workdir)
    with ExitStack() as servers:
        if fault == "rtsp-restart":
            started = [servers.enter_context(RtspServer(clip, name=f"cam{n}")) for n in range(cameras)]
            sources = [s.url for s in started]
        else:
            started, sources = [], [str(clip)] * cameras
        cameras_file = logs / "cameras.yaml"
        cameras_file.write_text(cameras_yaml(sources))
        realtime = fault in ("grabber-kill", "rtsp-restart", "pipeline-broker-restart")
        return await _run(fault, plan, broker, kafka, logs, cameras_file, started, cameras, fault_after_s * fps,
                          realtime)


async def _run(fault: str, plan: ChaosPlan, broker: PrivateBroker, kafka, logs: Path,  # noqa: ANN001
               cameras_file: Path, servers: list[RtspServer], cameras: int, frames_before: float,
               realtime: bool) -> Outcome:
    # small batches: the detector's progress (when the fault comes) moves a few frames at a time
    detector_args = ["--cameras", str(cameras_file), "--no-object-classes", "--batch", "4"]
    correlator = ServiceProcess(kafka, "correlator", [], logs)
    first = ServiceProcess(kafka, "detector", detector_args, logs, label="detector-1")
    second = ServiceProcess(kafka, "detector", detector_args, logs, label="detector-2")
    grabber = ServiceProcess(kafka, "grabber", ["--cameras", str(cameras_file)]
                             + ([] if realtime else ["--as-fast-as-possible"]), logs)
    which = _camera_event(cameras)
    published = 0
    supervisor = asyncio.create_task(supervise([correlator, first, second, grabber]))  # as compose would
    try:
        for proc in (correlator, first):
            proc.start()
        for proc in (correlator, first):
            await asyncio.to_thread(proc.wait_ready)
        grabber.start()
        progress, needed = ((lambda: _furthest_camera(first)), frames_before) if fault.startswith("detector") else (
            (lambda: asyncio.to_thread(health_of, grabber)), cameras * frames_before)
        while await progress() < needed:
            for proc in (first, grabber):
                if proc.proc.poll() is not None:
                    raise RuntimeError(f"{proc.label} exited before the fault:\n{proc.tail()}")
            await asyncio.sleep(0.1)
        fault_at = time.time()
        if fault == "detector-kill":  # recovery: until one detector owns every frames partition again
            await asyncio.to_thread(first.kill)
            first.start()
            await _owns_every_partition(first, fault_at, plan.timeout_s)
        elif fault == "detector-join-leave":  # from the first one's leaving
            second.start()
            await asyncio.to_thread(second.wait_ready)
            await asyncio.sleep(2.0)
            fault_at = time.time()
            await asyncio.to_thread(first.terminate)
            await _owns_every_partition(second, fault_at, plan.timeout_s)
        elif fault == "grabber-kill":  # recovery: until the new grabber publishes
            await asyncio.to_thread(grabber.kill)
            grabber.start()
            await _publishes_again(grabber, 0, fault_at, plan.timeout_s)
        elif fault == "rtsp-restart":  # recovery: until the grabber publishes more than before
            before = await asyncio.to_thread(health_of, grabber)
            for server in servers:
                await asyncio.to_thread(server.kill)
            await asyncio.sleep(2.0)
            for server in servers:
                await asyncio.to_thread(server.start)
            await _publishes_again(grabber, before + cameras, fault_at, plan.timeout_s)
        else:  # pipeline-broker-restart, recovery: until the grabber publishes more than before
            before = await asyncio.to_thread(health_of, grabber)
            await asyncio.to_thread(broker.kill)
            await asyncio.sleep(plan.down_s)
            await asyncio.to_thread(broker.start)
            await _publishes_again(grabber, before + cameras, fault_at, plan.timeout_s)
        recovered = time.time() - fault_at
        incidents = await read_incidents(
            kafka, lambda found: {which(i) for i in found} >= set(range(cameras)), plan.settle_s * 2, plan.timeout_s)
        published = await asyncio.to_thread(health_of, grabber)
    finally:
        supervisor.cancel()
        codes = {p.label: await asyncio.to_thread(p.terminate) for p in (grabber, first, second, correlator)
                 if p.proc is not None}
    counted = tally(list(range(cameras)), incidents, which)
    return Outcome(fault=fault, events=cameras, records_in=published, incidents=counted.incidents,
                   lost=counted.lost, duplicated=counted.duplicated, strays=counted.strays,
                   recovery_s=round(recovered, 1), feeder_retries=0, exit_codes=codes,
                   restarts=sum(p.restarts for p in (grabber, first, second, correlator)))


async def _owns_every_partition(detector: ServiceProcess, since: float, timeout_s: float) -> None:
    while len(await _partitions(detector)) < CAMERA_PARTITIONS and time.time() - since < timeout_s:
        await asyncio.sleep(0.1)


async def _publishes_again(grabber: ServiceProcess, above: int, since: float, timeout_s: float) -> None:
    while await asyncio.to_thread(health_of, grabber) <= above and time.time() - since < timeout_s:
        await asyncio.sleep(0.1)


def health_of(grabber: ServiceProcess) -> int:
    """Frames the grabber published over all its cameras (0 when it does not answer)."""
    answer = health(grabber.port)
    cameras = answer[1].get("cameras", {}) if answer else {}
    return sum(int(c.get("published", 0)) for c in cameras.values())
