"""Quality measures of an analytic against ground truth (numpy only).

* :func:`roc_auc`: frame-level area under the ROC curve by the rank formula of
  Mann-Whitney (AUC = U / (n_pos * n_neg), ties given their average rank, i.e.
  counted half), the usual frame-level measure of the UCSD benchmark (Mahadevan
  et al., CVPR 2010).
* :func:`match_events`: event-level precision, recall and alarm delay. An *event*
  is a maximal run of abnormal frames, as a ``(start_s, end_s)`` span of stream
  time; an *alarm* is the first frame of a detection track (:func:`alarms_from`).
  An alarm is true when it falls inside an event, widened by ``tolerance_s`` on
  each side, and, where ground-truth boxes exist, one of its boxes overlaps them.
  An event is detected when it holds a true alarm; its delay is the first such
  alarm's time minus the event start (negative when it came early, within the
  tolerance).
* :func:`per_hour`: false alarms per hour of video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

BoxT = tuple[float, float, float, float]  # x, y, w, h in frame pixels


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` (1-D), tied values sharing the average of their ranks (float64)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # start of each run of equal values in the sorted order
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]  # exclusive
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (True = abnormal).

    Mann-Whitney: ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with ``R_pos`` the
    sum of the positives' average ranks, so a tie between a positive and a negative
    counts 1/2. Returns None when either class is empty (AUC undefined).

    Raises:
        ValueError: lengths differ, or a score is NaN.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{len(s)} scores for {len(y)} labels")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    r_pos = average_ranks(s)[y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def runs(labels: Sequence[bool] | np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in ``labels`` as ``(first, last_exclusive)`` index pairs."""
    y = np.asarray(labels, dtype=bool).ravel().astype(np.int8)
    edges = np.diff(np.r_[0, y, 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


@dataclass(frozen=True, slots=True)
class Alarm:
    """The first frame of a detection track: stream time (s), track id, boxes in pixels of a ``frame_size`` frame."""

    t_s: float
    track: str
    boxes: tuple[BoxT, ...] = ()
    frame_size: tuple[int, int] | None = None


def alarms_from(detections: Iterable[tuple[float, str, Sequence[BoxT], tuple[int, int] | None]]) -> list[Alarm]:
    """One :class:`Alarm` per track: its first detection in time order.

    ``detections``: ``(t_s, track_id, boxes, frame_size)``; a detection without track id
    (``""``) is an alarm of its own.
    """
    seen: set[str] = set()
    out = []
    for t, track, boxes, size in sorted(detections, key=lambda d: d[0]):
        if track and track in seen:
            continue
        seen.add(track)
        out.append(Alarm(float(t), track, tuple(tuple(float(v) for v in b) for b in boxes), size))
    return out


def boxes_overlap(a: Iterable[BoxT], b: Iterable[BoxT]) -> bool:
    """True when some box of ``a`` intersects some box of ``b`` with a positive area."""
    b = list(b)
    for ax, ay, aw, ah in a:
        for bx, by, bw, bh in b:
            if min(ax + aw, bx + bw) > max(ax, bx) and min(ay + ah, by + bh) > max(ay, by):
                return True
    return False


@dataclass(slots=True)
class EventScore:
    """Result of :func:`match_events`.

    ``correct``: per alarm, True/False. ``delays_s``: per detected event, seconds.
    ``precision`` is None without alarms, ``recall`` None without events.
    """

    correct: list[bool] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)
    delays_s: list[float] = field(default_factory=list)

    @property
    def true_alarms(self) -> int:
        return sum(self.correct)

    @property
    def false_alarms(self) -> int:
        return len(self.correct) - sum(self.correct)

    @property
    def precision(self) -> float | None:
        return self.true_alarms / len(self.correct) if self.correct else None

    @property
    def recall(self) -> float | None:
        return sum(self.detected) / len(self.detected) if self.detected else None

    @property
    def delay_s(self) -> float | None:
        """Mean delay over the detected events, seconds (None when none was detected)."""
        return float(np.mean(self.delays_s)) if self.delays_s else None


def match_events(alarms: Sequence[Alarm], events: Sequence[tuple[float, float]], tolerance_s: float = 1.0,
                 overlaps: Callable[[Alarm, tuple[float, float]], bool | None] | None = None) -> EventScore:
    """Match alarms to events (see the module docstring).

    Args:
        alarms: in any order.
        events: ``(start_s, end_s)`` spans of stream time, ``end_s`` exclusive.
        tolerance_s: an alarm up to this many seconds before an event's start or
            after its end still falls in it.
        overlaps: ``(alarm, event) -> bool`` whether the alarm's boxes overlap the
            ground-truth boxes of that event (None: no boxes to compare, the alarm's
            time decides alone); None: time alone.

    Raises:
        ValueError: negative tolerance.
    """
    if tolerance_s < 0:
        raise ValueError("tolerance_s must be >= 0")
    result = EventScore(detected=[False] * len(events))
    first: list[float | None] = [None] * len(events)
    for alarm in sorted(alarms, key=lambda a: a.t_s):
        # the event it lies in, else the nearest within the tolerance
        best, best_gap = None, math.inf
        for k, (t0, t1) in enumerate(events):
            gap = max(t0 - alarm.t_s, alarm.t_s - t1, 0.0)
            if gap <= tolerance_s and gap < best_gap:
                best, best_gap = k, gap
        ok = best is not None
        if ok and overlaps is not None:
            ok = overlaps(alarm, events[best]) is not False
        result.correct.append(ok)
        if ok:
            result.detected[best] = True
            if first[best] is None:
                first[best] = alarm.t_s
    result.delays_s = [t - events[k][0] for k, t in enumerate(first) if t is not None]
    return result


def per_hour(count: int, duration_s: float) -> float | None:
    """``count`` per hour of video of ``duration_s`` seconds (None for a zero duration)."""
    return count * 3600.0 / duration_s if duration_s > 0 else None
