"""What a detector owns in its consumer group: partitions of the frames topic, the cameras on them, their warm-up.

Frames are keyed by camera id, so each camera's frames live on one partition and the
detector that owns the partition is the only one that analyses the camera. A rebalance
(a detector joins, leaves or dies) moves partitions between detectors; aiokafka's group
protocol is *eager*: every member gives up all its partitions (``on_partitions_revoked``)
before any is handed out again (``on_partitions_assigned``). A camera's analytic state is
therefore dropped only at the assignment, and only for the partitions that did not come
back: the cameras of a partition a detector keeps stay warm, the others are forgotten (their
new owner replays their frames from the last committed offset and starts them cold).

A camera is *warming* from its first frame on this detector (or since its state was last
dropped) until its frames span the plan's warm-up (:meth:`AnalyticsPlan.warmup_s`, stream
seconds), then *warm*. :meth:`Ownership.health` reports it per camera for ``/healthz``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition


@dataclass(slots=True)
class _Camera:
    partition: TopicPartition
    first_s: float  # stream time (PTS, seconds) of its first frame since its state was (re)started
    last_s: float
    frames: int = 0


class Ownership:
    """Partitions owned, their cameras, and each camera's warm-up.

    Args:
        warmup_s: camera id -> stream seconds its analytics need before they are warm.
    """

    def __init__(self, warmup_s: Callable[[str], float]) -> None:
        self._warmup_s = warmup_s
        self.partitions: set[TopicPartition] = set()
        self._revoked: set[TopicPartition] = set()  # given up, not handed out again yet
        self._cameras: dict[str, _Camera] = {}
        self.rebalances = 0

    def owns(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` is assigned to this detector now (False between a revocation and the next assignment)."""
        return tp in self.partitions

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions given up at the start of a rebalance; their cameras are kept until :meth:`assigned`."""
        partitions = set(partitions)
        self._revoked |= partitions & self.partitions
        self.partitions -= partitions

    def assigned(self, partitions: Iterable[TopicPartition]) -> list[str]:
        """Partitions handed out at the end of a rebalance; returns the cameras lost (sorted), now forgotten here.

        A camera is lost when its partition was given up and not handed back; the caller
        drops its analytic state.
        """
        self.rebalances += 1
        self.partitions = set(partitions)
        gone = self._revoked - self.partitions
        self._revoked = set()
        lost = sorted(c for c, cam in self._cameras.items() if cam.partition in gone)
        for camera_id in lost:
            del self._cameras[camera_id]
        return lost

    def seen(self, camera_id: str, tp: TopicPartition, pts_s: float) -> None:
        """A frame of ``camera_id`` from ``tp`` at stream time ``pts_s`` (seconds) was analysed.

        A camera that moved partition, or whose stream time went backwards (a stream
        restart), warms up again from this frame.
        """
        cam = self._cameras.get(camera_id)
        if cam is None or cam.partition != tp or pts_s < cam.last_s:
            cam = self._cameras[camera_id] = _Camera(tp, pts_s, pts_s)
        cam.last_s = pts_s
        cam.frames += 1

    def reset(self, camera_id: str) -> None:
        """The camera's state was dropped (an analytic failed on it): it warms up again from its next frame."""
        self._cameras.pop(camera_id, None)

    def warming(self) -> list[str]:
        """Cameras whose analytics are still warming up, sorted."""
        return sorted(c for c, cam in self._cameras.items() if cam.last_s - cam.first_s < self._warmup_s(c))

    def health(self) -> dict[str, Any]:
        """``partitions`` (numbers, sorted), ``rebalances`` and ``cameras``: camera id -> its ``state``
        (``warming`` or ``warm``), ``partition``, ``frames`` and ``seen_s`` of ``warmup_s`` stream seconds."""
        warming = set(self.warming())
        cameras = {
            c: {"state": "warming" if c in warming else "warm", "partition": cam.partition.partition,
                "frames": cam.frames, "seen_s": round(cam.last_s - cam.first_s, 3),
                "warmup_s": self._warmup_s(c)}
            for c, cam in sorted(self._cameras.items())
        }
        return {"partitions": sorted(tp.partition for tp in self.partitions), "rebalances": self.rebalances,
                "cameras": cameras}
