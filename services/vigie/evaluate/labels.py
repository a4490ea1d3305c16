"""Vigie's own label format for any clip: a ``labels.yaml`` (or ``.json``) beside it.

Example (times in seconds of the clip; ``unit: frame`` counts frames from 0 at ``fps``)::

    labelled_kinds: [abandoned_object, fire]   # or: all
    fps: 25                                    # optional: the rate frame numbers count at
    frame_size: [720, 480]                     # optional: the pixels boxes and zones are given in
    approximate: false                         # optional: not official ground truth
    warmup: [../normal/monday.mp4]             # optional: normal footage of the camera, played first
    events:
      - {kind: abandoned_object, start: 19, unit: s, boxes: [[452, 385, 50, 50]]}  # no end: until the clip ends
      - {kind: fire, start: 300, end: 420, unit: frame, zone: [[0, 0], [200, 0], [200, 100]]}

``labelled_kinds`` are the kinds the clip has been watched for: an alarm of such a kind
outside its events is a false alarm; an alarm of any other kind is counted apart, as
*unlabelled*. ``all`` labels every kind. An event's span is ``[start, end)`` in seconds,
``start .. end`` inclusive in frames; its ``boxes`` (``x y w h``) or ``zone`` (a polygon,
judged by its bounding box) say where it is: an alarm whose boxes miss them is false.

Where the file is looked for (:func:`label_file`): ``<clip stem>.labels.yaml`` beside a
video or ``<folder>.labels.yaml`` beside a folder of stills; ``labels.yaml`` inside a folder
of stills, beside ``frames/``/``img1/``, or in a folder that holds only that video
(``.yml`` and ``.json`` too).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from vigie.core.config import (ConfigError, ConfigProblem, format_loc, locate_problems, read_config_text,
                               validate_yaml_text)
from vigie.core.settings import StrictModel
from vigie.evaluate.metrics import BoxT

SUFFIXES = (".yaml", ".yml", ".json")
FORMAT = "vigie-labels"


def _known(kinds: list[str]) -> list[str]:
    """``kinds``, when each is a kind of the analytics registry (its site plugins included).

    Raises:
        ValueError: one is not, naming the known kinds.
    """
    from vigie.detector.analytics.registry import PLUGINS

    unknown = [k for k in kinds if k not in PLUGINS]
    if unknown:
        raise ValueError(f"unknown kind {', '.join(map(repr, unknown))} (known kinds: {', '.join(sorted(PLUGINS))})")
    return kinds


class Event(StrictModel):
    """One labelled event of a clip."""

    kind: str = Field(min_length=1, description="analytic kind, e.g. fire")
    start: float = Field(ge=0, description="start, in seconds or frames (see unit)")
    end: float | None = Field(default=None, ge=0, description="end (s: exclusive; frame: inclusive); none: the clip's end")
    unit: Literal["s", "frame"] = "s"
    boxes: list[tuple[float, float, float, float]] | None = Field(
        default=None, description="where: boxes x, y, w, h in frame_size pixels")
    zone: list[tuple[float, float]] | None = Field(default=None, min_length=3, description="where: a polygon")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return _known([value])[0]

    @model_validator(mode="after")
    def _ordered(self) -> "Event":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.unit == "s" and self.end == self.start:
            raise ValueError(f"end {self.end} equals start: a span in seconds, [start, end), would hold no frame")
        return self


class LabelFile(StrictModel):
    """A label file (see the module docstring)."""

    labelled_kinds: list[str] | Literal["all"] = Field(description="kinds the clip is labelled for, or all")
    fps: float | None = Field(default=None, gt=0, description="frame rate of frame numbers (default: the clip's)")
    frame_size: tuple[int, int] | None = Field(default=None, description="W, H pixels of boxes and zones")
    approximate: bool = False
    warmup: list[str] = Field(default_factory=list, description="warm-up clips, relative to this file")
    events: list[Event] = Field(default_factory=list)

    @field_validator("labelled_kinds")
    @classmethod
    def _kinds(cls, value: list[str] | str) -> list[str] | str:
        return value if value == "all" else _known(value)

    @field_validator("frame_size")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) <= 0:
            raise ValueError("frame_size must be positive")
        return value

    @model_validator(mode="after")
    def _events_labelled(self) -> "LabelFile":
        if self.labelled_kinds != "all":
            stray = sorted({e.kind for e in self.events} - set(self.labelled_kinds))
            if stray:
                raise ValueError(f"events of kinds not in labelled_kinds: {', '.join(stray)}")
        return self


def read(path: str | os.PathLike[str]) -> LabelFile:
    """Read and validate the label file at ``path`` (YAML or JSON).

    Raises:
        vigie.core.config.ConfigError: unreadable, not YAML, not valid, or a key given twice
            in one mapping (YAML keeps the last, silently losing the first, e.g. a second
            ``events:``); the message names ``path:line: location: problem``.
    """
    text = read_config_text(path)
    labels = validate_yaml_text(text, LabelFile, path=path)
    twice = _keys_twice(yaml.compose(text, Loader=yaml.SafeLoader), ())
    if twice:
        raise ConfigError(path, twice)
    return labels


def _keys_twice(node: yaml.Node | None, loc: tuple[str | int, ...]) -> list[ConfigProblem]:
    """Keys given twice in a mapping of the YAML ``node`` tree, at the line of the second."""
    problems: list[ConfigProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                problems.append(ConfigProblem(line, format_loc((*loc, key.value)),
                                              f"given twice (also line {seen[key.value]}): the first would be silently lost"))
            seen.setdefault(key.value, line)
            problems += _keys_twice(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for k, item in enumerate(node.value):
            problems += _keys_twice(item, (*loc, k))
    return problems


def check(path: str | os.PathLike[str], labels: LabelFile, duration_s: float | None, clip_fps: float | None,
          clip_size: tuple[int, int] | None = None) -> None:
    """Check ``labels`` (read from ``path``) against its clip: every warm-up path exists, every
    event starts before the clip's end (``duration_s``, None: unknown) and ends at most one second
    after it (frames counted at the file's ``fps``, else ``clip_fps``), and its boxes and zone lie
    in the frame (the file's ``frame_size``, else ``clip_size``, the clip's W, H pixels).

    Raises:
        vigie.core.config.ConfigError: each problem with the file, line and field, e.g.
            ``labels.yaml:5: events[1].start: 100 s is past the clip's end (26.5 s)``.
    """
    issues: list[tuple[tuple[str | int, ...], str]] = []
    folder = Path(path).parent
    for k, warm in enumerate(labels.warmup):
        if not (folder / warm).exists():
            issues.append((("warmup", k), f"no such clip or folder: {warm} ({os.path.abspath(folder / warm)})"))
    size = labels.frame_size or clip_size
    for k, event in enumerate(labels.events):
        if size is not None:
            issues += _outside(event, k, size, labels.frame_size is None)
    fps = labels.fps or clip_fps
    for k, event in enumerate(labels.events):
        if duration_s is None or (event.unit == "frame" and not fps):
            continue
        frames = event.unit == "frame"
        scale = 1.0 / fps if frames else 1.0
        said = (lambda v: f"frame {v:g}") if frames else (lambda v: f"{v:g} s")
        where = f"the clip's end ({duration_s:.1f} s{f', {round(duration_s * fps)} frames' if frames else ''})"
        if event.start * scale >= duration_s:
            issues.append((("events", k, "start"), f"{said(event.start)} is past {where}"))
        elif event.end is not None and event.end * scale > duration_s + 1.0:
            issues.append((("events", k, "end"), f"{said(event.end)} is past {where}"))
    if issues:
        raise ConfigError(path, locate_problems(read_config_text(path), issues))


def _outside(event: Event, k: int, size: tuple[int, int], clip_size: bool) -> list[tuple[tuple[str | int, ...], str]]:
    """The boxes and zone points of ``event`` (the ``k``-th) that leave a ``size`` (W, H) frame
    (one pixel of slack); ``clip_size``: that size is the clip's, the file giving no frame_size."""
    w, h = size
    hint = "; give frame_size: the pixels they are drawn in" if clip_size else ""
    where = f"outside the {w}x{h} frame{' of the clip' if clip_size else ' (frame_size)'}{hint}"
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for j, (x, y, bw, bh) in enumerate(event.boxes or []):
        if x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1 or bw <= 0 or bh <= 0:
            issues.append((("events", k, "boxes", j), f"[{x:g}, {y:g}, {bw:g}, {bh:g}] (x, y, w, h) is empty or {where}"))
    for j, (x, y) in enumerate(event.zone or []):
        if not (-1 <= x <= w + 1 and -1 <= y <= h + 1):
            issues.append((("events", k, "zone", j), f"[{x:g}, {y:g}] is {where}"))
    return issues


def label_file(clip: str | os.PathLike[str], alone: bool) -> Path | None:
    """The label file of ``clip`` (a video file or a folder of stills), None when it has none.

    ``alone``: a video is the only clip of its folder (a plain ``labels.yaml`` there is its);
    a folder of stills is alone beside its labels when it is a ``frames/`` or ``img1/`` folder.
    """
    from vigie.evaluate.groundtruth import STILLS_FOLDERS

    clip = Path(clip)
    if clip.is_dir():
        names = [clip / "labels", clip.parent / f"{clip.name}.labels"]
        if clip.name in STILLS_FOLDERS:
            names.append(clip.parent / "labels")
    else:
        names = [clip.parent / f"{clip.stem}.labels", clip.parent / f"{clip.name}.labels"]
        if alone:
            names.append(clip.parent / "labels")
    for name in names:
        for suffix in SUFFIXES:
            candidate = name.with_name(name.name + suffix)
            if candidate.is_file():
                return candidate
    return None


class SpanTruth:
    """The labelled events of one kind as spans of stream time, with the interface of
    :class:`vigie.evaluate.groundtruth.KindTruth` (``label``, ``events``, ``boxes_at``).

    ``spans``: ``(start_s, end_s or inf, boxes or None)``; boxes in ``size`` pixels.
    """

    def __init__(self, spans: list[tuple[float, float, list[BoxT] | None]], size: tuple[int, int] | None,
                 approximate: bool = False) -> None:
        self.spans = sorted(spans, key=lambda s: s[0])
        self.size = size
        self.approximate = approximate
        self.boxes = [b for _, _, b in self.spans if b is not None] or None

    def label(self, t_s: float) -> bool:
        """Whether ``t_s`` lies in an event."""
        return any(a <= t_s < b for a, b, _ in self.spans)

    def events(self, end_s: float) -> list[tuple[float, float]]:
        """Events that start by ``end_s``, as ``(start_s, end_s)``, cut at ``end_s``."""
        return [(a, min(b, end_s)) for a, b, _ in self.spans if a <= end_s]

    def boxes_at(self, t_s: float, frame_size: tuple[int, int] | None) -> list[BoxT] | None:
        """Boxes of the event at ``t_s`` (else the nearest event), scaled to ``frame_size``; None when unknown."""
        if not self.spans:
            return None
        span = min(self.spans, key=lambda s: max(s[0] - t_s, t_s - s[1], 0.0))
        if span[2] is None:
            return None
        sx = sy = 1.0
        if frame_size is not None and self.size is not None:
            sx, sy = frame_size[0] / self.size[0], frame_size[1] / self.size[1]
        return [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in span[2]]


def _where(event: Event) -> list[BoxT] | None:
    if event.boxes is not None:
        return [tuple(map(float, b)) for b in event.boxes]
    if event.zone is not None:
        xs, ys = [p[0] for p in event.zone], [p[1] for p in event.zone]
        return [(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))]
    return None


def truths(labels: LabelFile, clip_fps: float | None) -> dict[str, SpanTruth]:
    """One :class:`SpanTruth` per kind that has events in ``labels``.

    ``clip_fps``: the clip's own rate, used for ``unit: frame`` when the file gives no ``fps``.

    Raises:
        ValueError: an event counted in frames and no rate is known.
    """
    spans: dict[str, list[tuple[float, float, list[BoxT] | None]]] = {}
    for event in labels.events:
        if event.unit == "frame":
            fps = labels.fps or clip_fps
            if not fps:
                raise ValueError(f"event of {event.kind} counted in frames, and no fps known")
            start, end = event.start / fps, math.inf if event.end is None else (event.end + 1) / fps
        else:
            start, end = event.start, math.inf if event.end is None else event.end
        spans.setdefault(event.kind, []).append((start, end, _where(event)))
    return {kind: SpanTruth(s, labels.frame_size, labels.approximate) for kind, s in spans.items()}
