"""Evidence clips: the frames of one camera over an incident's time span, cut out of the ``frames`` topic
and encoded as an H.264 MP4 that a browser plays while it downloads.

:func:`frames_between` reads the camera's frames back from Kafka (no consumer group: nothing is
committed, no live consumer is disturbed); :func:`encode_clip` turns them into a :class:`Clip`.
The frames were masked by the grabber before they were published (privacy masks blacked out);
the clip shows them as published and never uncovers a mask: black stays black (H.264 is lossy:
a masked area decodes to near-black, luma within a few levels of 0).

Times are ``capture_ns`` of the frames: ns since the Unix epoch UTC.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import simplejpeg
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from vigie.contracts.v1 import Frame
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.kafka import make_consumer, partitions_of
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

log = logging.getLogger(__name__)

#: Records are timestamped when produced, after capture (and the producing host's clock may lag): reading
#: starts at the first record stamped this long before ``start_ns``.
START_MARGIN_MS = 10_000
#: After ``end_ns`` the camera's last frames may still be on their way to the broker: the end of the
#: partition ends the read only once the wall clock is this far past ``end_ns``.
PUBLISH_GRACE_NS = 2_000_000_000
#: x264 speed/size trade-off: with 'veryfast' a 30 s 640x480 5 fps clip takes about a second (JPEG decoding included).
PRESET = "veryfast"


@dataclass(frozen=True, slots=True)
class Clip:
    """An encoded evidence clip.

    Attributes:
        data: the MP4 file (H.264 High profile, yuv420p, ``moov`` atom first: plays while it downloads).
        frames: frames in it.
        start_ns: ``capture_ns`` of its first frame, ns since the Unix epoch UTC.
        end_ns: ``capture_ns`` of its last frame, ns since the Unix epoch UTC.
        width: width of its frames, pixels (even).
        height: height of its frames, pixels (even).
        privacy_masks: names of the privacy masks the grabber blacked out in its frames
            (union of their ``Frame.privacy_masks``), sorted.
        skipped: input frames left out: not JPEG, undecodable, or not later than the frame before
            (capture times compared at ms resolution).
    """

    data: bytes
    frames: int
    start_ns: int
    end_ns: int
    width: int
    height: int
    privacy_masks: tuple[str, ...]
    skipped: int


def partition_of(camera_id: str, partitions: Sequence[int]) -> int:
    """The partition the producers send ``camera_id``'s records to: aiokafka's default partitioner
    (murmur2 of the key, as Kafka's Java client) over ``partitions``, every partition of the topic.

    Raises ValueError when ``partitions`` is empty."""
    if not partitions:
        raise ValueError("a topic has at least one partition")
    ordered = sorted(partitions)
    return DefaultPartitioner()(Topic.key(camera_id), ordered, ordered)


async def frames_between(kafka: KafkaSettings, topic: Topic[Frame], camera_id: str, start_ns: int, end_ns: int,
                         *, timeout_s: float = 60.0) -> list[Frame]:
    """Frames of camera_id whose capture_ns is in [start_ns, end_ns], in capture order.

    Reads the one partition of ``topic`` that holds ``camera_id``'s frames, with a consumer of no
    group, from the first record stamped ``START_MARGIN_MS`` before ``start_ns`` (from the end of
    the partition when there is none yet). The read ends at the camera's first frame captured
    after ``end_ns``, or at the end of the partition once the wall clock is ``PUBLISH_GRACE_NS``
    past ``end_ns`` (so a span ending now waits for its last frames), or after ``timeout_s``
    seconds (a warning is logged; the frames read so far are returned). Records of other cameras
    and malformed records are skipped. Frames of a span older than the topic's retention are gone:
    the list may be empty. The frames are held in memory (a 640x480 JPEG is about 30-60 kB).

    Args:
        kafka: the cluster and namespace.
        topic: the frames topic (``Topics.frames``).
        camera_id: the camera.
        start_ns, end_ns: the span, ns since the Unix epoch UTC, both included.
        timeout_s: longest time spent reading, seconds.

    Returns:
        The frames, sorted by ``capture_ns`` (each a ``Frame`` as published: JPEG bytes, masked).

    Raises:
        ValueError: ``end_ns < start_ns``.
        ConfigError: the topic does not exist.
        BrokerUnavailable: no broker answers.
    """
    if end_ns < start_ns:
        raise ValueError(f"end_ns {end_ns} is before start_ns {start_ns}")
    deadline = time.monotonic() + timeout_s
    partitions = await partitions_of(kafka, topic)
    if not partitions:
        raise ConfigError(f"topic {topic.name} does not exist: no frame was published in this namespace")
    tp = TopicPartition(topic.name, partition_of(camera_id, partitions))
    key = topic.key(camera_id)
    consumer = make_consumer(kafka, group=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]  # asked first: a record sent meanwhile is past it
        found = (await consumer.offsets_for_times({tp: max(0, start_ns // 1_000_000 - START_MARGIN_MS)}))[tp]
        consumer.seek(tp, end if found is None else found.offset)  # None: only frames still to come can be in it
        frames: list[Frame] = []
        done = False
        while not done and (left := deadline - time.monotonic()) > 0:
            batch = (await consumer.getmany(tp, timeout_ms=max(1, int(min(left, 0.2) * 1000)))).get(tp, [])
            for record in batch:
                if record.key != key:
                    continue
                try:
                    frame = topic.decode(record.value)
                except MalformedMessage:
                    continue
                if done := frame.capture_ns > end_ns:
                    break
                if frame.capture_ns >= start_ns:
                    frames.append(frame)
            if not done and time.time_ns() > end_ns + PUBLISH_GRACE_NS:  # all published: the partition's end ends it
                done = await consumer.position(tp) >= (await consumer.end_offsets([tp]))[tp]
        if not done:
            log.warning("camera %s: reading its frames of %d..%d from %s took over %.0f s: the clip may lack its end",
                        camera_id, start_ns, end_ns, topic.name, timeout_s, extra={"camera": camera_id})
        return sorted(frames, key=lambda f: f.capture_ns)
    finally:
        await consumer.stop()


def decode_rgb(frame: Frame) -> np.ndarray | None:
    """The frame's picture, (H, W, 3) uint8 RGB; None when it is not a decodable JPEG."""
    if frame.encoding != Frame.ENCODING_JPEG:
        return None
    try:
        return simplejpeg.decode_jpeg(frame.data, colorspace="RGB")
    except ValueError:  # simplejpeg's error for data that is not a (whole) JPEG
        return None


def _sized(rgb: np.ndarray, width: int, height: int) -> av.VideoFrame:
    """``rgb``, (H, W, 3) uint8, as a yuv420p frame of ``width`` x ``height``: cropped when it is at most one
    pixel larger (odd sizes rounded down), resized otherwise (a camera that changed resolution)."""
    h, w = rgb.shape[:2]
    if 0 <= h - height <= 1 and 0 <= w - width <= 1:
        rgb = rgb[:height, :width]
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return picture.reformat(width=width, height=height, format="yuv420p")


def encode_clip(frames: Sequence[Frame], *, crf: int = 28) -> Clip:
    """H.264 MP4 of the JPEG frames; raises ValueError when frames is empty.

    ``frames`` are taken in the given order (capture order, as :func:`frames_between` returns
    them). The clip's size is that of the first decodable frame, rounded down to even; frames of
    another size are resized to it. Each frame is shown at its ``capture_ns`` relative to the first
    (ms time base: variable frame rate, real timing); a frame not later than the one before, a
    frame that is not JPEG or whose data does not decode is left out and counted in
    ``Clip.skipped``. Pixels are not changed beyond H.264's loss: masked (black) areas stay black.
    CPU-bound, about a second for 150 frames of 640x480 (two cores): call it in a worker thread
    (``asyncio.to_thread``) from a service. Writes the MP4 through a temporary file (see below).

    Args:
        frames: ``Frame`` messages, ``data`` JPEG bytes.
        crf: x264 constant rate factor, 0 (best) to 51 (smallest). Measured on 30 s of real 640x480
            footage at 5 fps: 23 gives 600 kB, 28 225 kB, 33 80 kB (mean error against the JPEGs
            2.0, 2.3, 3.0 levels of 255).

    Returns:
        The :class:`Clip`.

    Raises:
        ValueError: ``frames`` is empty, none of them is a decodable JPEG, or ``crf`` is out of 0..51.
    """
    if not frames:
        raise ValueError("no frame to encode")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be within 0..51, got {crf}")
    decoded = ((frame, decode_rgb(frame)) for frame in frames)
    skipped = 0
    for first, rgb in decoded:  # the first decodable frame sets the size
        if rgb is not None:
            break
        skipped += 1
    else:
        raise ValueError(f"none of the {len(frames)} frames is a decodable JPEG")
    size = (rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2)
    if 0 in size:
        raise ValueError(f"frame {first.camera_id}#{first.seq} is too small to encode: {rgb.shape[1]}x{rgb.shape[0]}")
    kept, masks, last_ms, last_ns = 0, set(), -1, first.capture_ns
    with tempfile.TemporaryDirectory(prefix="vigie-clip-") as folder:
        # faststart moves the index ahead of the data in a second pass that reopens the output by name:
        # FFmpeg cannot do it on a memory buffer, hence a file.
        path = os.path.join(folder, "clip.mp4")
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", options={"crf": str(crf), "preset": PRESET})
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
            for frame, rgb in itertools.chain([(first, rgb)], decoded):
                pts_ms = (frame.capture_ns - first.capture_ns) // 1_000_000
                if rgb is None or pts_ms <= last_ms:
                    skipped += 1
                    continue
                picture = _sized(rgb, *size)
                picture.pts, picture.time_base = pts_ms, Fraction(1, 1000)
                container.mux(stream.encode(picture))
                kept, last_ms, last_ns = kept + 1, pts_ms, frame.capture_ns
                masks.update(frame.privacy_masks)
            container.mux(stream.encode(None))
        with open(path, "rb") as file:
            data = file.read()
    return Clip(data, kept, first.capture_ns, last_ns, *size, tuple(sorted(masks)), skipped)
