"""Evidence clips: frames of one camera cut out of the real broker's frames topic, encoded as H.264 MP4."""

from __future__ import annotations

import asyncio
import io
import time

import av
import numpy as np
import pytest
import simplejpeg

from tests.clips import data_path, decode_video
from vigie.contracts.v1 import Frame
from vigie.core.kafka import make_producer
from vigie.core.topics import CAMERA_PARTITIONS, Topics
from vigie.evidence.clip import encode_clip, frames_between, partition_of

FPS = 5
STEP_NS = 1_000_000_000 // FPS
T0_NS = 1_700_000_000_000_000_000
MASK = (slice(40, 120), slice(64, 192))  # rows, columns blacked out "by the grabber"


def _picture(i: int, width: int, height: int, masked: bool = True) -> np.ndarray:
    """A moving, textured (H, W, 3) uint8 RGB scene, MASK blacked out as the grabber does (pixels set to 0)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x + 3 * i) % 200 + 40, (y + 2 * i) % 180 + 60, ((x + y) // 4 + i) % 150 + 80], axis=-1)
    image = image.astype(np.uint8)
    image[(y // 16 + x // 16 + i) % 2 == 0] //= 2
    if masked:
        image[MASK] = 0
    return image


def _frame(camera: str, i: int, t0_ns: int, size: tuple[int, int] = (320, 240), masks: tuple[str, ...] = ("window-1",),
           data: bytes | None = None) -> Frame:
    """Frame ``i`` of ``camera``, captured at ``t0_ns + i / FPS``; ``size`` is (width, height)."""
    width, height = size
    jpeg = simplejpeg.encode_jpeg(_picture(i, width, height), quality=85, colorspace="RGB") if data is None else data
    return Frame(camera_id=camera, seq=i, capture_ns=t0_ns + i * STEP_NS, width=width, height=height,
                 encoding=Frame.ENCODING_JPEG, data=jpeg, privacy_masks=masks, fps=FPS)


def _decode(data: bytes) -> tuple[list[np.ndarray], list[float]]:
    """The MP4's frames as (H, W, 3) uint8 RGB, and their presentation times, seconds."""
    with av.open(io.BytesIO(data)) as container:
        decoded = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in decoded], [f.time for f in decoded]


async def _publish(kafka, frames: list[Frame]) -> None:  # noqa: ANN001
    """Publish ``frames`` keyed by camera id, each record stamped with its capture time (ms)."""
    topic, producer = Topics(kafka.namespace).frames, make_producer(kafka)
    await producer.start()
    try:
        for frame in frames:  # one idempotent producer: the records of a partition stay in this order
            await producer.send(topic.name, topic.encode(frame), key=topic.key(frame.camera_id),
                                timestamp_ms=frame.capture_ns // 1_000_000)
        await producer.flush()
    finally:
        await producer.stop()


def _neighbour(camera: str) -> str:
    """Another camera id whose frames share ``camera``'s partition (so the key filter is what keeps them apart)."""
    partitions = range(CAMERA_PARTITIONS)
    ids = (f"cam-{i}" for i in range(100))
    return next(c for c in ids if c != camera and partition_of(c, partitions) == partition_of(camera, partitions))


@pytest.mark.broker
async def test_frames_between_returns_one_cameras_frames_in_range_in_order(kafka, caplog) -> None:  # noqa: ANN001
    """20 s of two interleaved cameras on one partition, and a malformed record: only the asked camera's frames
    captured in [start, end] come back, in order; a camera without frames gives an empty list; a span still
    running past timeout_s gives the frames so far, with a warning."""
    topic, t0 = Topics(kafka.namespace).frames, time.time_ns() - 30_000_000_000
    other = _neighbour("cam-a")
    published = [f for i in range(20 * FPS) for f in (_frame("cam-a", i, t0), _frame(other, i, t0 + STEP_NS // 2))]
    await _publish(kafka, published[:50])
    producer = make_producer(kafka)
    async with producer:
        await producer.send_and_wait(topic.name, b"\xff not a frame", key=topic.key("cam-a"),
                                     timestamp_ms=published[49].capture_ns // 1_000_000)
    await _publish(kafka, published[50:])

    start, end = t0 + 5 * 10**9, t0 + 12 * 10**9  # frames 25..60 of cam-a, both ends included
    frames = await frames_between(kafka, topic, "cam-a", start, end, timeout_s=20)
    assert [f.seq for f in frames] == list(range(25, 61))
    assert {f.camera_id for f in frames} == {"cam-a"}

    until_now = await frames_between(kafka, topic, other, t0 + 15 * 10**9, time.time_ns(), timeout_s=20)
    assert [f.seq for f in until_now] == list(range(75, 100)), "read to the end of the partition"
    assert await frames_between(kafka, topic, "cam-absent", t0, time.time_ns(), timeout_s=20) == []
    began = time.monotonic()
    unfinished = await frames_between(kafka, topic, "cam-a", start, time.time_ns() + 60 * 10**9, timeout_s=1)
    assert [f.seq for f in unfinished] == list(range(25, 100)) and time.monotonic() - began < 5
    assert "the clip may lack its end" in caplog.text
    with pytest.raises(ValueError):
        await frames_between(kafka, topic, "cam-a", end, start)


@pytest.mark.broker
async def test_frames_between_waits_for_frames_of_a_span_ending_now(kafka) -> None:  # noqa: ANN001
    """A span ending in the next second: frames published meanwhile, each half a second after its capture
    (the grabber still running, its producer lagging), are in it."""
    topic, t0 = Topics(kafka.namespace).frames, time.time_ns()

    async def grabber() -> None:
        for i in range(2 * FPS):
            await asyncio.sleep(max(0.0, (t0 + i * STEP_NS + 500_000_000 - time.time_ns()) / 1e9))
            await _publish(kafka, [_frame("cam-live", i, t0, size=(64, 48))])

    publishing = asyncio.create_task(grabber())
    frames = await frames_between(kafka, topic, "cam-live", t0, t0 + 10**9, timeout_s=20)
    await publishing
    assert [f.seq for f in frames] == list(range(FPS + 1))


def test_encode_clip_keeps_frames_timing_and_privacy_masks() -> None:
    frames = [_frame("cam", i, T0_NS, masks=("window-1",) if i % 2 else ("door", "window-1")) for i in range(40)]
    clip = encode_clip(frames)
    assert (clip.frames, clip.skipped, clip.width, clip.height) == (40, 0, 320, 240)
    assert (clip.start_ns, clip.end_ns) == (T0_NS, T0_NS + 39 * STEP_NS)
    assert clip.privacy_masks == ("door", "window-1")
    assert clip.data.index(b"moov") < clip.data.index(b"mdat"), "faststart: the index comes first"
    pictures, times = _decode(clip.data)
    assert len(pictures) == 40 and {p.shape for p in pictures} == {(240, 320, 3)}
    assert times[-1] - times[0] == pytest.approx(39 / FPS, abs=1 / FPS)
    inner = (slice(MASK[0].start + 4, MASK[0].stop - 4), slice(MASK[1].start + 4, MASK[1].stop - 4))
    for picture in pictures:
        assert picture[inner].mean() <= 8 and picture[inner].max() <= 32, "a privacy mask uncovered"
        outside = np.ones(picture.shape[:2], bool)
        outside[MASK] = False
        assert picture[outside].mean() > 60, "the scene itself is shown"


def test_encode_clip_gives_one_size_across_a_resolution_change() -> None:
    frames = [_frame("cam", i, T0_NS, size=(321, 241) if i < 10 else (640, 480)) for i in range(20)]
    clip = encode_clip(frames)
    assert (clip.frames, clip.width, clip.height) == (20, 320, 240)
    pictures, _ = _decode(clip.data)
    assert len(pictures) == 20 and {p.shape for p in pictures} == {(240, 320, 3)}
    assert pictures[-1][24:56, 36:92].mean() <= 8, "the mask, resized with its frame, stays black"


def test_encode_clip_skips_frames_it_cannot_show() -> None:
    frames = [_frame("cam", i, T0_NS) for i in range(12)]
    frames[3].encoding = Frame.ENCODING_UNSPECIFIED
    frames[5].data = frames[5].data[:200]
    frames[8].capture_ns = frames[7].capture_ns  # not after the one before
    clip = encode_clip(frames)
    assert (clip.frames, clip.skipped) == (9, 3)
    assert len(_decode(clip.data)[0]) == 9
    broken = [_frame("cam", 0, T0_NS, data=b"not a jpeg")] + frames[1:3]
    clip = encode_clip(broken)
    assert (clip.frames, clip.skipped, clip.start_ns) == (2, 1, T0_NS + STEP_NS), "the first decodable frame leads"


def test_encode_clip_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="no frame"):
        encode_clip([])
    with pytest.raises(ValueError, match="decodable"):
        encode_clip([_frame("cam", 0, T0_NS, data=b"not a jpeg")])
    with pytest.raises(ValueError, match="crf"):
        encode_clip([_frame("cam", 0, T0_NS)], crf=60)


@pytest.mark.data
def test_encode_clip_on_real_footage() -> None:
    """10 s of ABODA video 4 (640x426 at 5 fps), JPEG as the grabber publishes it, encoded and decoded back."""
    footage = decode_video(str(data_path("aboda_video4", "video4.avi")), FPS, 640)[:10 * FPS]
    frames = [Frame(camera_id="aboda", seq=i, capture_ns=ns, width=img.shape[1], height=img.shape[0],
                    encoding=Frame.ENCODING_JPEG, data=simplejpeg.encode_jpeg(img, quality=85, colorspace="RGB"))
              for i, (ns, img) in enumerate(footage)]
    clip = encode_clip(frames)
    assert (clip.frames, clip.skipped, clip.width, clip.height) == (len(frames), 0, 640, 426)
    pictures, times = _decode(clip.data)
    assert len(pictures) == len(frames) and pictures[0].shape == (426, 640, 3)
    assert times[-1] - times[0] == pytest.approx((frames[-1].capture_ns - frames[0].capture_ns) / 1e9, abs=1 / FPS)
    original = footage[len(footage) // 2][1][:426].astype(float)
    assert np.abs(pictures[len(footage) // 2].astype(float) - original).mean() < 12, "the scene, not noise"
