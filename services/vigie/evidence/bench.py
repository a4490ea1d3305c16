"""Figures of the evidence store (``vigie bench``, or ``python -m vigie.evidence.bench``):

- evidence written per incident: a 30 s clip of 640x480 frames at 5 fps cut from the real broker's
  ``frames`` topic, encoded, written whole and listed (ms, bytes), as a ratio to the 30 s it shows;
- a right-of-access export of 60 s of the same camera (everyone but the requester pixelated, people
  found as foreground blobs), as a ratio to a plain clip of those 60 s encoded in the same run;
- the purge of 100,000 items (10,000 with ``--quick``) on a SQLite file and a folder: seconds, and the
  ratio to removing the same files alone, measured in the same run (the catalogue's share).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

from vigie.contracts.v1 import Frame
from vigie.core.authorisations import DAY_NS
from vigie.core.db import DatabaseSettings, make_engine, migrate
from vigie.core.kafka import apply_topics, make_producer
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.evidence.catalogue import Catalogue, NewItem
from vigie.evidence.clip import encode_clip, frames_between
from vigie.evidence.store import FolderStore

CLIP_S, ACCESS_S, FPS = 30, 60, 5
ABODA = Path(__file__).resolve().parents[4] / "shared" / "data" / "aboda_video4" / "video4.avi"


def _pictures(n: int) -> list[bytes]:
    """``n`` JPEG frames, 640x480: ABODA video 4 when there, else a moving synthetic pattern."""
    out = []
    if ABODA.exists():
        import av

        with av.open(str(ABODA)) as container:
            for frame in container.decode(video=0):
                out.append(simplejpeg.encode_jpeg(frame.to_ndarray(width=640, height=480, format="rgb24"), 85,
                                                  colorspace="RGB"))
                if len(out) == n:
                    return out
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    while len(out) < n:
        out.append(simplejpeg.encode_jpeg(np.roll(base, len(out) * 8, axis=1), 85, colorspace="RGB"))
    return out


async def bench_clip(kafka: KafkaSettings, folder: Path) -> dict[str, float]:
    """Publish ``CLIP_S`` s of one camera, then cut, encode, store and list its clip: ms and bytes."""
    topics = Topics(kafka.namespace)
    await apply_topics(kafka, [topics.frames])
    pictures = _pictures(ACCESS_S * FPS)
    start = time.time_ns() - (ACCESS_S + 5) * 10**9
    producer = make_producer(kafka)
    await producer.start()
    try:
        for n, data in enumerate(pictures):
            at = start + n * 10**9 // FPS
            frame = Frame(camera_id="bench", seq=n, capture_ns=at, pts=n / FPS, width=640, height=480,
                          encoding=Frame.ENCODING_JPEG, data=data, fps=FPS)
            await producer.send(topics.frames.name, topics.frames.encode(frame), key=topics.frames.key("bench"),
                                timestamp_ms=at // 10**6)
        await producer.flush()
    finally:
        await producer.stop()
    settings = DatabaseSettings(url=f"sqlite:///{folder / 'clip.db'}")
    engine = make_engine(settings)
    try:
        await migrate(engine, settings)
        catalogue = Catalogue(engine, FolderStore(folder / "store"))
        began = time.perf_counter()
        frames = await frames_between(kafka, topics.frames, "bench", start, start + CLIP_S * 10**9)
        cut = time.perf_counter()
        clip = await asyncio.to_thread(encode_clip, frames)
        encoded = time.perf_counter()
        digest = catalogue.store.put("bench/clip.mp4", clip.data)
        await catalogue.record([NewItem("inc-bench", "bench", "clip", "bench/clip.mp4", digest, len(clip.data),
                                        clip.frames, clip.start_ns, clip.end_ns, clip.end_ns + DAY_NS, "bench")],
                               time.time_ns())
        done = time.perf_counter()
    finally:
        await engine.dispose()
    total = done - began
    figures = {"frames": clip.frames, "bytes": len(clip.data), "cut_ms": (cut - began) * 1000,
               "encode_ms": (encoded - cut) * 1000, "store_ms": (done - encoded) * 1000, "total_ms": total * 1000,
               "real_time_ratio": CLIP_S / total}
    return {**figures, **await bench_access(kafka, start)}


async def bench_access(kafka: KafkaSettings, start: int) -> dict[str, float]:
    """An access export of the ``ACCESS_S`` s published from ``start`` (people as foreground blobs), and a plain
    clip of the same frames (the reference)."""
    from vigie.core.authorisations import authorise_cameras
    from vigie.core.cameras import CamerasFile
    from vigie.detector.analytics.base import Box
    from vigie.evidence.access import access_export

    import yaml

    cameras = CamerasFile.model_validate(yaml.safe_load(authorise_cameras(
        "cameras:\n  - id: bench\n    source: synthetic://scene\n")))
    topics, end = Topics(kafka.namespace), start + ACCESS_S * 10**9
    began = time.perf_counter()
    frames = await frames_between(kafka, topics.frames, "bench", start, end)
    await asyncio.to_thread(encode_clip, frames)
    plain_s = time.perf_counter() - began
    began = time.perf_counter()
    clip, manifest = await access_export(kafka, topics, cameras, "bench", start, end, start + end >> 1,
                                         Box(300, 180, 60, 140), now_ns=time.time_ns(), objects=False)
    access_s = time.perf_counter() - began
    return {"access_frames": clip.frames, "access_s": access_s, "access_plain_s": plain_s,
            "access_ratio": access_s / plain_s, "access_boxes": manifest["boxes_anonymised"]}


async def bench_purge(folder: Path, items: int) -> dict[str, float]:
    """List ``items`` small items, all due, and purge them; and remove as many plain files (the reference)."""
    settings = DatabaseSettings(url=f"sqlite:///{folder / 'purge.db'}")
    engine = make_engine(settings)
    store = FolderStore(folder / "purge")
    now = time.time_ns()
    try:
        await migrate(engine, settings)
        catalogue = Catalogue(engine, store)
        for start in range(0, items, 1000):
            batch = []
            for n in range(start, min(items, start + 1000)):
                key = f"cam-{n % 50}/{n // 1000:03d}/{n}.jpg"
                path = store.path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xff\xd8evidence\xff\xd9")
                batch.append(NewItem(f"inc-{n}", f"cam-{n % 50}", "snapshot", key, "0" * 64, 12, 1, now, now,
                                     now - 1, "bench", id=uuid.uuid4().hex))
            await catalogue.record(batch, now)
        began = time.perf_counter()
        gone = await catalogue.purge(now)
        purge_s = time.perf_counter() - began
    finally:
        await engine.dispose()
    if len(gone) != items:
        raise RuntimeError(f"purge destroyed {len(gone)} of {items} items")
    plain = folder / "plain"
    for n in range(items):
        path = plain / f"{n // 1000:03d}" / f"{n}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8evidence\xff\xd9")
    began = time.perf_counter()
    for n in range(items):
        os.unlink(plain / f"{n // 1000:03d}" / f"{n}.jpg")
    unlink_s = time.perf_counter() - began
    return {"items": items, "purge_s": purge_s, "per_s": items / purge_s, "unlink_s": unlink_s,
            "ratio_to_unlink": purge_s / unlink_s}


def bench_evidence(bootstrap: str, quick: bool = False) -> dict[str, Any]:
    """Both figures; the clip's in a throwaway namespace of the broker at ``bootstrap``."""
    kafka = KafkaSettings(bootstrap=bootstrap, namespace=f"bench{uuid.uuid4().hex[:8]}.")
    with tempfile.TemporaryDirectory(prefix="vigie-evidence-bench-") as folder:
        return {"clip": asyncio.run(bench_clip(kafka, Path(folder))),
                "purge": asyncio.run(bench_purge(Path(folder), 10_000 if quick else 100_000))}


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows (figure, value, target) of :func:`bench_evidence`'s results."""
    clip, purge = results["clip"], results["purge"]
    return [
        (f"evidence per incident: {CLIP_S} s clip of 640x480 at {FPS} fps (cut, encode, store, list)",
         f"{clip['total_ms']:.0f} ms ({clip['cut_ms']:.0f} + {clip['encode_ms']:.0f} + {clip['store_ms']:.0f}), "
         f"{clip['bytes'] / 1024:.0f} KiB, {clip['real_time_ratio']:.0f}x real time", ""),
        (f"right-of-access export, {ACCESS_S} s of 640x480 at {FPS} fps, people as foreground blobs",
         f"{clip['access_s']:.1f} s ({clip['access_ratio']:.1f}x a plain clip of it; {clip['access_boxes']} boxes "
         "hidden)", ""),
        (f"evidence purge of {purge['items']:,} items (SQLite, folder)",
         f"{purge['purge_s']:.1f} s ({purge['per_s']:,.0f}/s; {purge['ratio_to_unlink']:.1f}x plain unlink)", ""),
    ]


if __name__ == "__main__":
    figures = bench_evidence(os.environ.get("VIGIE_KAFKA", "127.0.0.1:9092"), quick="--quick" in sys.argv)
    for row in rows(figures):
        print(" | ".join(row))
    print(json.dumps(figures))
