"""Object-class verdicts made after the alert is published: the object-class stage off the alert path.

The object-class stage costs about 0.15 s of CPU per frame (:mod:`vigie.detector.objects`). When
the analytics waited for it, 8 cameras raising in one batch waited 8 calls in a row, about 1.2 s,
before any of their anomalies left. In the detector service (``object_verdict="after"``, the
default) an analytic that can raises at once and attaches an :class:`ObjectCheck` to its detection
(:attr:`FrameBatch.objects_later`); the anomaly is published with the others of the batch, and
:class:`Verdicts` runs the stage on that frame in the background, beside the next batches:

- the stage confirms it (no person over a left object): nothing more is sent; the alarm stands;
- it rejects it: a *withdrawal* is published to ``anomalies`` (same camera, kind, track and capture
  time; ``withdraws`` = the anomaly's id, ``withdrawal`` and ``withdrawal_reason`` say why), and the
  analytic is told (:meth:`AnalyticsPlan.withdraw`), so that the track waits for the stage before it
  is raised again. The correlator closes the incident the anomaly opened as a false alarm with that
  reason, written in its history and the register; the station shows it closed.

The stage runs with the detector's ``threads`` OpenCV threads (1 by default) so that it leaves the
other cores to the analytics: with every core (OpenCV's default) it starved them, and 8 ABODA cameras
raising together reached the station 3.8 s after capture instead of 0.24 s.

The verdict is the analytic's own test on the same frame and box, so what ends up open is what the
analytics decide when they wait for the stage (``vigie evaluate`` and ``vigie replay`` still wait for
it: their figures do not change). An operator sees such a false alarm for the time of one or a few
stage calls (0.15 s each on one core, queued in capture order), then closed with the reason. A
detector that stops (or crashes) with verdicts pending publishes none for them: the alarms stay open
for an operator to close (the safe side).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from vigie.contracts.v1 import Anomaly, Verdict
from vigie.detector.analytics.base import ObjectCheck, ObjectDetector

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """A published anomaly whose object-class verdict is owed: the frame ``(H, W, 3) uint8 RGB`` and the check."""

    anomaly: Anomaly
    image: np.ndarray
    check: ObjectCheck


def withdrawal(anomaly: Anomaly, check: ObjectCheck) -> Anomaly:
    """The anomaly that withdraws ``anomaly`` for ``check``'s reason (id ``<anomaly id>-withdrawn``)."""
    return Anomaly(
        id=f"{anomaly.id}-withdrawn", camera_id=anomaly.camera_id, kind=anomaly.kind, score=anomaly.score,
        regions=anomaly.regions, capture_ns=anomaly.capture_ns, frame=anomaly.frame,
        frame_width=anomaly.frame_width, frame_height=anomaly.frame_height, detector=anomaly.detector,
        detector_version=anomaly.detector_version, track_id=anomaly.track_id, published_ns=time.time_ns(),
        withdraws=anomaly.id, withdrawal=check.why, withdrawal_reason=Verdict.Reason.Value(f"REASON_{check.reason}"),
    )


class Verdicts:
    """Runs the object-class stage on published anomalies' frames, one at a time in a worker thread, in the
    order given; the rejected ones come out of :meth:`take` as withdrawals.

    Args:
        objects: the object-class stage.
    """

    def __init__(self, objects: ObjectDetector) -> None:
        self.objects = objects
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._ready: list[Anomaly] = []
        self.checked = 0
        self.withdrawn = 0

    def submit(self, anomaly: Anomaly, image: np.ndarray, check: ObjectCheck) -> None:
        """Owe a verdict on ``anomaly`` (already published), made on ``image``, its frame."""
        self._queue.put_nowait(Pending(anomaly, image, check))

    @property
    def waiting(self) -> int:
        """Verdicts owed and not made yet."""
        return self._queue.qsize()

    def take(self) -> list[Anomaly]:
        """The withdrawals made since the last call, in the order of their anomalies."""
        ready, self._ready = self._ready, []
        return ready

    async def run(self) -> None:
        """Make the verdicts as they come, until cancelled. A stage that raises confirms (logged): an alarm
        is never withdrawn for want of a verdict."""
        while True:
            pending = await self._queue.get()
            try:
                found = await asyncio.to_thread(self.objects.detect, pending.image)
            except Exception as exc:  # noqa: BLE001 - the alarm stands; the detector goes on
                log.error("object-class stage failed on %s (%s): the alarm stands", pending.anomaly.id, exc,
                          extra={"camera": pending.anomaly.camera_id})
                continue
            self.checked += 1
            if pending.check.rejects(found):
                self.withdrawn += 1
                self._ready.append(withdrawal(pending.anomaly, pending.check))
                log.info("anomaly %s withdrawn: %s", pending.anomaly.id, pending.check.why,
                         extra={"camera": pending.anomaly.camera_id})
