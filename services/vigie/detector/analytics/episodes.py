"""Episodes and emission schedules shared by the analytics: when a condition raises, repeats, ends.

Two pieces, for the two ways an analytic reports something that lasts:

* :class:`Episodes`: a *condition* per key (fire on a camera, a crowd mode, a tamper
  mode, an overcrowded zone, a colour query): the key is a camera id plus an optional
  sub-key. The condition must hold ``min_duration_s`` before the episode is raised
  (gaps shorter than ``release_s`` do not interrupt it); a raised episode emits on the
  frame it is raised, then every ``repeat_s``; it ends after more than ``release_s``
  without the condition, or when the stream time goes backwards (a stream restart).
* :class:`TrackIds` and :class:`EmissionSchedule`, for analytics that follow their own
  tracks (intrusion, wrong way, person down, abandoned object): serial track ids per
  camera, and whether a raised track is due to emit again.

Times are stream times in nanoseconds since the epoch (``FrameBatch.time_ns``);
durations and periods are configured in seconds. Track ids are numbered per camera
(or per camera and sub-key) from 1 and never reused, not even after :meth:`Episodes.forget`.

Track ids are unique across processes and restarts too: the serial number is written
``<run>-<n>``, ``<run>`` being :data:`RUN_ID`, made once per process at import (10 characters
of ``[0-9a-z]``: the start time in seconds in base 36, then random). Every track id ends
with ``<run>-<n>``, whatever its template (:func:`run_of` reads the run back), so a
detector restarted after a crash, or a second detector of the consumer group, never hands
out a track id that an earlier run already used for another object.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple

_BASE36 = string.digits + string.ascii_lowercase


def new_run_id() -> str:
    """A fresh run id: 10 characters of ``[0-9a-z]``, the wall-clock second in base 36 (6 characters,
    wrapping every 69 years) then 4 random ones (two runs started in the same second collide
    with probability 1 in 36**4, about 1.7 million)."""
    t, digits = int(time.time()) % 36 ** 6, []
    for _ in range(6):
        t, d = divmod(t, 36)
        digits.append(_BASE36[d])
    return "".join(reversed(digits)) + "".join(secrets.choice(_BASE36) for _ in range(4))


#: This process's run id: the prefix of every serial number :class:`TrackIds` hands out.
RUN_ID = new_run_id()
_RUN_AT_END = re.compile(r"(?<![0-9a-z])([0-9a-z]{10})-[0-9]+$")


def run_of(track_id: str) -> str | None:
    """The run id of a track id made by :class:`TrackIds` (its ``<run>-<n>`` end), or None for
    another string (an empty track id, one made before track ids carried their run)."""
    match = _RUN_AT_END.search(track_id)
    return match.group(1) if match else None

#: Default track-id template: ``"<camera>/<prefix>/<n>"``.
PLAIN = "{camera}/{prefix}/{n}"
#: Track-id template with the sub-key: ``"<camera>/<prefix>/<sub>/<n>"``.
WITH_SUB = "{camera}/{prefix}/{sub}/{n}"


class TrackIds:
    """Serial track ids, numbered per camera (or per camera and sub-key) and never reused.

    Args:
        prefix: the analytic's part of the id, e.g. ``"intrusion"``.
        template: :meth:`str.format` template with the fields ``camera``, ``prefix``,
            ``sub`` (the sub-key, optional) and ``n`` (``<run>-<serial>``, the serial from 1);
            default :data:`PLAIN`, ``"<camera>/<prefix>/<run>-<serial>"``. It must end with ``{n}``.
        per_sub: number each (camera, sub-key) pair apart instead of each camera.
        run: the run id written before each serial; default :data:`RUN_ID`, this process's.

    Raises:
        ValueError: ``template`` lacks ``{camera}`` or does not end with ``{n}``; ``run`` is not
            10 characters of ``[0-9a-z]``.
    """

    def __init__(self, prefix: str, *, template: str = PLAIN, per_sub: bool = False, run: str | None = None) -> None:
        if "{camera}" not in template or not template.endswith("{n}"):
            raise ValueError(f"track-id template {template!r} needs {{camera}} and must end with {{n}}")
        self.run = RUN_ID if run is None else run
        if run_of(f"{self.run}-1") != self.run:
            raise ValueError(f"run id {self.run!r} is not 10 characters of [0-9a-z]")
        self.prefix = prefix
        self.template = template
        self.per_sub = per_sub
        self._last: dict[Hashable, int] = {}

    def new(self, camera_id: str, sub: Hashable = None) -> str:
        """The next track id of ``camera_id`` (and ``sub`` with ``per_sub``); never returned again, by any run."""
        counter = (camera_id, sub) if self.per_sub else camera_id
        n = self._last[counter] = self._last.get(counter, 0) + 1
        return self.template.format(camera=camera_id, prefix=self.prefix, sub=sub, n=f"{self.run}-{n}")


class EmissionSchedule:
    """When a raised condition emits again: every ``repeat_s`` seconds (0: every frame).

    Args:
        repeat_s: seconds between emissions of one raised condition.
    """

    def __init__(self, repeat_s: float) -> None:
        self.repeat_ns = repeat_s * 1e9

    def due(self, last_emit_ns: int | None, now_ns: int) -> bool:
        """Whether a condition last emitted at ``last_emit_ns`` (None: never) emits at ``now_ns``.

        Both are stream times in ns; a time before ``last_emit_ns`` is not due.
        """
        return last_emit_ns is None or now_ns - last_emit_ns >= self.repeat_ns


class Emission(NamedTuple):
    """An episode's emission: its ``track_id`` and its ``duration_s`` (seconds since it began)."""

    track_id: str
    duration_s: float


@dataclass(slots=True)
class _Episode:
    start_ns: int
    last_seen_ns: int
    track_id: str = ""  # set once raised
    last_emit_ns: int | None = None


class Episodes:
    """Per-key episodes of one condition and their emission schedule (see the module docstring).

    Args:
        prefix: the analytic's part of the track ids (see :class:`TrackIds`).
        repeat_s: re-emit a raised episode every this many seconds (0: every frame with
            the condition).
        release_s: an episode ends after more than this many seconds without the condition.
        min_duration_s: seconds the condition must hold (gaps up to ``release_s``
            included) before the episode is raised and gets its track id.
        template: track-id template (see :class:`TrackIds`), e.g. :data:`WITH_SUB`.
        ids_per_sub: number track ids per (camera, sub-key) instead of per camera.
        run: the run id of the track ids (see :class:`TrackIds`); default this process's.
        release_slack_ns: nanoseconds of tolerance added to ``release_s`` (absorbs the
            rounding of frame times).

    Raises:
        ValueError: as :class:`TrackIds`.
    """

    def __init__(self, prefix: str, repeat_s: float, release_s: float, *, min_duration_s: float = 0.0,
                 template: str = PLAIN, ids_per_sub: bool = False, release_slack_ns: int = 0,
                 run: str | None = None) -> None:
        self.ids = TrackIds(prefix, template=template, per_sub=ids_per_sub, run=run)
        self.schedule = EmissionSchedule(repeat_s)
        self.release_ns = release_s * 1e9 + release_slack_ns
        self.min_duration_s = min_duration_s
        self._episodes: dict[tuple[str, Hashable], _Episode] = {}

    def update(self, camera_id: str, now_ns: int, present: bool, sub: Hashable = None) -> Emission | None:
        """Record whether the condition is ``present`` on ``(camera_id, sub)`` at ``now_ns`` (stream ns).

        Returns:
            The :class:`Emission` to report on this frame (the frame the episode is
            raised, then every ``repeat_s``), else None.
        """
        key = (camera_id, sub)
        ep = self._episodes.get(key)
        if ep is not None and (now_ns - ep.last_seen_ns > self.release_ns or now_ns < ep.last_seen_ns):
            del self._episodes[key]  # ended, or the stream restarted: the next one is new
            ep = None
        if not present:
            return None
        if ep is None:
            ep = self._episodes[key] = _Episode(now_ns, now_ns)
        ep.last_seen_ns = now_ns
        duration = (now_ns - ep.start_ns) / 1e9
        if duration + 1e-9 < self.min_duration_s:
            return None
        if not ep.track_id:
            ep.track_id = self.ids.new(camera_id, sub)
        elif not self.schedule.due(ep.last_emit_ns, now_ns):
            return None
        ep.last_emit_ns = now_ns
        return Emission(ep.track_id, duration)

    def forget(self, camera_id: str) -> None:
        """End every episode of ``camera_id`` (track numbers keep counting, so ids stay unique)."""
        for key in [k for k in self._episodes if k[0] == camera_id]:
            del self._episodes[key]
