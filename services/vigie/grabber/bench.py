"""The grabber's CPU cost per camera against the decode limit (``vigie bench``, or ``python -m vigie.grabber.bench``).

Three figures on the same clip, in one run, CPU time of the process (every thread,
``time.process_time``), each the median of ``repeats`` runs taken in turn:

- **decode**: clip frames decoded per CPU-second by PyAV alone;
- **limit**: the same, converting to RGB and resizing to the grabber's output size (one
  libswscale pass, AREA, a reused context) only the frames a :class:`~.sampler.PtsSampler`
  at the camera's fps keeps: decode plus the conversion a grabber needs at the least;
- **grabber**: clip frames consumed per CPU-second by the grabber's own path: source,
  sampler, resize, privacy mask, JPEG and the ``Frame`` record as the service serialises it
  (:func:`~.publisher.frame_record`); publishing to Kafka apart (:func:`publish_cost`).

``ratio`` = grabber / limit (1 or more: the grabber costs no more than decoding plus the RGB
conversion alone); ``of_decode`` = grabber / decode. The clip is ABODA video4 (720x480 MPEG-4
part 2, 29.97 fps, 1169 frames) when ``../shared/data`` holds it, else a 720x480 MPEG-4 clip
encoded here with PyAV (moving shapes over a textured background).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vigie.core.cameras import CameraConfig
from vigie.core.topics import Topics
from .frames import CameraPipeline
from .publisher import frame_record
from .sampler import PtsSampler

__all__ = ["bench_grabber_cost", "publish_cost", "rows", "synthetic_clip"]

#: The mask the benchmark's camera carries (a window in a corner of the 720x480 picture).
MASK = [{"name": "window", "polygon": [[0, 0], [200, 0], [200, 80], [0, 80]]}]


def synthetic_clip(path: Path, seconds: float = 20.0, fps: int = 30, size: tuple[int, int] = (720, 480)) -> Path:
    """Write an MPEG-4 part 2 clip of ``seconds`` at ``fps`` and ``size`` = (width, height) to ``path``; returns it."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = ((xx * 7 + yy * 3) % 256).astype(np.uint8)
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 2_000_000
        for n in range(int(seconds * fps)):
            image = np.repeat(background[:, :, None], 3, axis=2)
            x = int((n * 4) % (w - 80))
            image[200:280, x:x + 80] = (200, 40, 40)
            image[rng.integers(0, h, 2000), rng.integers(0, w, 2000)] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _out_size(src: tuple[int, int], width: int) -> tuple[int, int]:
    """The grabber's output size for a ``src`` = (w, h) picture and its camera's ``width`` (FrameSource's rule)."""
    if src[0] <= width:
        return src
    return width, max(1, round(src[1] * width / src[0]))


def _decode(path: Path, fps: float | None, width: int) -> tuple[int, int, float]:
    """(frames decoded, frames converted, CPU seconds): decode everything, convert what a sampler at ``fps`` keeps."""
    sampler, reformatter = (PtsSampler(fps) if fps else None), VideoReformatter()
    decoded = converted = 0
    cpu0 = time.process_time()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            decoded += 1
            if sampler is not None and sampler.keep(frame.time if frame.time is not None else decoded / 30):
                w, h = _out_size((frame.width, frame.height), width)
                picture = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA",
                                               threads=1)
                picture.to_ndarray()
                converted += 1
    return decoded, converted, time.process_time() - cpu0


def _grabber(path: Path, fps: float, width: int, keep: list[bytes] | None = None) -> tuple[int, int, float, int]:
    """(frames consumed, frames published, CPU seconds, record bytes) of the grabber's path on ``path``;
    the records' values are appended to ``keep`` when given."""
    camera = CameraConfig(id="bench", source=str(path), fps=fps, width=width, privacy_masks=MASK,
                          privacy_masks_reference_size=[720, 480])
    topic = Topics("bench.").frames

    async def run() -> tuple[int, int, float, int]:
        pipeline = CameraPipeline(camera, as_fast_as_possible=True)
        published = size = 0
        cpu0 = time.process_time()
        async for frame in pipeline.frames():
            value = frame_record(topic, camera, frame).value
            size += len(value)
            published += 1
            if keep is not None:
                keep.append(value)
        return pipeline.stats.decoded, published, time.process_time() - cpu0, size

    return asyncio.run(run())


def bench_grabber_cost(clip: Path | None = None, fps: float = 5.0, width: int = 640, repeats: int = 3,
                       bootstrap: str | None = None) -> dict[str, Any]:
    """Decode, limit and grabber figures (see the module's docstring) on ``clip`` (None: a synthetic clip).

    Returns a dict: ``clip``, ``frames``, ``published``, ``converted`` (frames the limit converted),
    ``decode_fps_cpu``, ``limit_fps_cpu``, ``grabber_fps_cpu`` (clip frames per CPU-second), ``ratio``,
    ``of_decode``, ``ms_per_published``, ``record_bytes`` (mean), ``runs``; with ``bootstrap``, also
    ``publish_ms`` (:func:`publish_cost` of the clip's records on that broker).
    """
    with tempfile.TemporaryDirectory(prefix="vigie-grabber-bench-") as tmp:
        if clip is None:
            clip, label = Path(tmp) / "synthetic.avi", "synthetic 720x480 MPEG-4 (../shared/data/aboda_video4 absent)"
            synthetic_clip(clip)
        else:
            label = clip.name
        runs: dict[str, list[float]] = {"decode": [], "limit": [], "grabber": [], "ms": []}
        for _ in range(repeats):
            frames, _, cpu = _decode(clip, None, width)
            runs["decode"].append(frames / cpu)
            frames, converted, cpu = _decode(clip, fps, width)
            runs["limit"].append(frames / cpu)
            consumed, published, cpu, size = _grabber(clip, fps, width)
            runs["grabber"].append(consumed / cpu)
            runs["ms"].append(cpu * 1000 / max(1, published))
        records: list[bytes] = []
        if bootstrap:
            _grabber(clip, fps, width, keep=records)
    med = {k: statistics.median(v) for k, v in runs.items()}
    publish_ms = publish_cost(bootstrap, records, f"bench{os.getpid()}.") if records else None
    return {"clip": label, "fps": fps, "frames": consumed, "published": published, "converted": converted,
            "publish_ms": publish_ms,
            "decode_fps_cpu": med["decode"], "limit_fps_cpu": med["limit"], "grabber_fps_cpu": med["grabber"],
            "ratio": med["grabber"] / med["limit"], "of_decode": med["grabber"] / med["decode"],
            "ms_per_published": med["ms"], "record_bytes": size / max(1, published), "runs": runs}


def publish_cost(bootstrap: str, records: list[bytes], namespace: str) -> float:
    """CPU milliseconds per record of handing ``records`` to the real broker at ``bootstrap`` through a
    :class:`~.publisher.FramePublisher` (one outbox, acknowledgements awaited) on a fresh ``namespace``.
    Raises aiokafka's errors when no broker answers."""
    from vigie.core.kafka import apply_topics, wait_for_broker
    from vigie.core.settings import KafkaSettings
    from .publisher import FramePublisher, Outbox, Outgoing

    kafka = KafkaSettings(bootstrap=bootstrap, namespace=namespace)
    topics = Topics(kafka.namespace)

    async def run() -> float:
        await wait_for_broker(kafka, 30)
        await apply_topics(kafka, [topics.frames])
        publisher = FramePublisher(kafka, topics.frames.name, on_published=lambda *_: None,
                                   on_failed=lambda *_: None)
        await publisher.start()
        outbox, closing = Outbox(capacity=len(records) + 1), asyncio.Event()
        try:
            cpu0 = time.process_time()
            for value in records:
                outbox.put(Outgoing(b"bench", value, time.time_ns()))
            closing.set()
            await publisher.drain("bench", outbox, closing)
            await publisher.flush()
            return (time.process_time() - cpu0) * 1000 / len(records)
        finally:
            await publisher.close()

    return asyncio.run(run())


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows (figure, value, target) of :func:`bench_grabber_cost`'s results (plus ``publish_ms`` if any)."""
    r = results
    out = [
        (f"grabber cost, clip: {r['clip']} ({r['frames']} frames, {r['fps']:g} fps sampling: {r['published']} "
         f"published, {r['converted']} converted by the limit)", "", ""),
        ("  PyAV decode only: clip frames / CPU-s", f"{r['decode_fps_cpu']:.0f}", ""),
        ("  PyAV decode + sampled RGB conversion to the output size (limit): clip frames / CPU-s",
         f"{r['limit_fps_cpu']:.0f}", ""),
        ("  grabber (source → sampler → mask → JPEG → Frame record): clip frames / CPU-s",
         f"{r['grabber_fps_cpu']:.0f}", ""),
        ("  grabber / limit (ratio); grabber / decode only", f"{r['ratio']:.2f}; {r['of_decode']:.2f}", ">= 0.8"),
        ("  grabber: CPU ms per published frame", f"{r['ms_per_published']:.2f} ms", ""),
    ]
    if r.get("publish_ms") is not None:
        out.append(("  publishing to the broker (aiokafka, acknowledged): CPU ms per frame",
                    f"{r['publish_ms']:.2f} ms", ""))
    return out


def main() -> None:  # pragma: no cover - a command
    """Print the figures (``VIGIE_DATA`` overrides ../shared/data; ``VIGIE_KAFKA`` adds the publishing cost)."""
    data = Path(os.environ.get("VIGIE_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
    clip = data / "aboda_video4" / "video4.avi"
    results = bench_grabber_cost(clip if clip.exists() else None, bootstrap=os.environ.get("VIGIE_KAFKA"))
    for figure, value, target in rows(results):
        print(f"{figure:100s} {value:>14s} {target}")


if __name__ == "__main__":  # pragma: no cover
    main()
