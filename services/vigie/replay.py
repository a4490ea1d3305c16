"""``vigie replay``: re-run the analytics over recorded frames, for analysts, without touching live work.

Stages, in order (:func:`replay`):

1. find, per partition of ``frames``, the first offset at or after ``--from`` and the
   last before ``--to`` (Kafka's offsets-for-times lookup on record timestamps);
2. read that range with a consumer outside any consumer group (the live detector's
   group and committed offsets are never touched), keeping the ``--cameras`` asked for;
3. run the detector's own record path (decode, batch, analytics planned from each
   camera's section of ``--cameras-file`` and from ``--rules``) on the stream clock, as
   the live detector would;
4. write each anomaly to a sandbox topic ``replay.<run>.anomalies`` (7-day retention),
   created once there is a frame to replay, and a JSON report of the tracks found, with a
   progress bar meanwhile.

The report's ``warnings`` (also printed on stderr, one line each) say when the range holds
no frame, when a camera asked for has no frame in it, and when ``--from`` lies beyond the
frames topic's retention (older frames are gone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import torch
from aiokafka import TopicPartition
from pydantic import Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vigie.contracts.v1 import Anomaly
from vigie.core.cameras import load_cameras
from vigie.core.config import load_yaml_model
from vigie.core.options import resolve_device
from vigie.core.errors import ConfigError
from vigie.core.kafka import apply_topics, make_consumer, make_producer, partitions_of, wait_for_broker
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.topics import CHECK_MS, DAY_MS, HOUR_MS, Topic, Topics, TopicSpec
from vigie.detector.pipeline import Analyser, decode_records, rounds, to_anomaly
from vigie.detector.objects import ObjectDetector
from vigie.detector.plan import AnalyticsPlan, Failure, analytics_problems

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ReplayRules(StrictModel):
    """Analytics to re-run: default kinds for every camera, and per-camera sections as in the cameras file."""

    defaults: list[str] = Field(default_factory=lambda: ["abandoned_object", "crowd_movement"],
                                description="Kinds run on every camera without a section.")
    cameras: dict[str, dict[str, dict[str, Any] | bool]] = Field(
        default_factory=dict, description="Camera id -> analytic kind -> settings (or false to disable).")


def load_rules(rules_path: str | None, cameras_path: str | None = None) -> ReplayRules:
    """The analytics to re-run: each camera's ``analytics`` section of the cameras file at
    ``cameras_path`` (as the live detector runs it), then the rules file on top: its
    ``defaults``, and its per-camera sections, which replace the cameras file's.

    Raises:
        ConfigError: a missing or invalid file (``file:line: field: message``).
    """
    rules = load_yaml_model(Path(rules_path), ReplayRules) if rules_path else ReplayRules()
    if cameras_path:
        cameras = load_cameras(cameras_path, analytics_problems).cameras
        sections = {c.id: c.analytics for c in cameras if c.analytics is not None}
        rules = rules.model_copy(update={"cameras": {**sections, **rules.cameras}})
    return rules


def _span(ms: int) -> str:
    days = ms / DAY_MS
    return f"{days:g} day{'' if days == 1 else 's'}" if days >= 1 else f"{ms / HOUR_MS:g} h"


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``now``, a relative time (``-30m``, ``-2h``, ``-1d``) or ISO 8601 (naive means UTC). Raises ConfigError."""
    now = now or datetime.now(timezone.utc)
    if text == "now":
        return now
    if match := _RELATIVE.match(text):
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"time {text!r}: use 'now', -30m / -2h / -1d, or ISO 8601 like 2026-11-30T08:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _ranges(kafka: KafkaSettings, consumer, topic: Topic, start_ms: int,  # noqa: ANN001
                  end_ms: int) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition: [first offset at or after start_ms, first offset at or after end_ms)."""
    partitions = await partitions_of(kafka, topic)
    if not partitions:
        raise ConfigError(f"topic {topic.name} does not exist: nothing was recorded in this namespace")
    tps = [TopicPartition(topic.name, p) for p in partitions]
    ends = await consumer.end_offsets(tps)
    starts = await consumer.offsets_for_times({tp: start_ms for tp in tps})
    stops = await consumer.offsets_for_times({tp: end_ms for tp in tps})
    ranges = {}
    for tp in tps:
        first = starts[tp].offset if starts[tp] is not None else ends[tp]
        last = stops[tp].offset if stops[tp] is not None else ends[tp]
        if last > first:
            ranges[tp] = (first, last)
    return ranges


async def replay(kafka: KafkaSettings, start: datetime, end: datetime, cameras: set[str] | None,
                 rules: ReplayRules, device: torch.device, console: Console | None = None,
                 object_classes: bool = True) -> dict[str, Any]:
    """Re-run ``rules`` on the frames recorded between ``start`` and ``end``; returns the report.

    The report counts ``frames`` replayed, ``skipped_frames`` (frames of cameras not in
    ``cameras``), ``malformed`` records and ``failed`` frames (an analytic raised on them:
    ``warnings`` names the analytic and the reason; the replay goes on); ``sandbox_topic`` is None when no frame was
    replayed (the topic is then not created); ``warnings`` lists what the caller should say
    (an empty range, cameras without frames, a start beyond the frames' retention). With
    ``object_classes`` the analytics are offered the object-class stage, as by the live detector.

    Raises ConfigError for an empty time range or bad rules (before any broker work),
    BrokerUnavailable without a broker.
    """
    if end <= start:
        raise ConfigError(f"--to ({end.isoformat()}) must come after --from ({start.isoformat()})")
    topics = Topics(kafka.namespace)
    run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    sandbox: Topic[Anomaly] = Topic(TopicSpec(f"replay.{run}.anomalies", 1, 7 * DAY_MS), Anomaly, kafka.namespace)
    plan = AnalyticsPlan(rules.cameras, rules.defaults, device)
    analyser = Analyser(plan, (160, 120), device, ObjectDetector() if object_classes else None)
    report: dict[str, Any] = {"run": run, "from": start.isoformat(), "to": end.isoformat(), "sandbox_topic": None,
                              "kinds": plan.kinds, "frames": 0, "skipped_frames": 0, "malformed": 0, "failed": 0,
                              "anomalies": 0, "warnings": []}
    kept_ms = topics.frames.spec.retention_ms + topics.frames.spec.segment_ms + CHECK_MS  # the longest a frame stays
    if _ms(start) < time.time() * 1000 - kept_ms:
        report["warnings"].append(f"--from {start.isoformat()} lies beyond the retention of topic {topics.frames.name} "
                                  f"({_span(kept_ms)}): frames older than {_span(kept_ms)} are gone")
    await wait_for_broker(kafka, 30)
    consumer = make_consumer(kafka, group=None)
    producer = make_producer(kafka)
    await consumer.start()
    await producer.start()
    tracks: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[str] = set()  # cameras with frames in the range
    try:
        ranges = await _ranges(kafka, consumer, topics.frames, _ms(start), _ms(end))
        consumer.assign(list(ranges))
        for tp, (first, _) in ranges.items():
            consumer.seek(tp, first)
        total = sum(last - first for first, last in ranges.values())
        remaining = dict(ranges)
        with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console or Console(stderr=True), transient=False) as progress:
            bar = progress.add_task("frames", total=total)
            while remaining:
                polled = await consumer.getmany(*remaining, timeout_ms=500, max_records=64)
                records = []
                for tp, batch in polled.items():
                    last = remaining[tp][1]
                    records += [r for r in batch if r.offset < last]
                    if batch and batch[-1].offset >= last - 1:
                        del remaining[tp]
                progress.advance(bar, len(records))
                items, bad = decode_records(topics.frames, records)
                report["malformed"] += len(bad)
                seen.update(i.frame.camera_id for i in items)
                kept = [i for i in items if cameras is None or i.frame.camera_id in cameras]
                report["skipped_frames"] += len(items) - len(kept)
                report["frames"] += len(kept)
                if kept and report["sandbox_topic"] is None:
                    await apply_topics(kafka, [sandbox])
                    report["sandbox_topic"] = sandbox.name
                for batch_items in rounds(kept):
                    failures: list[Failure] = []
                    detections = await asyncio.to_thread(analyser.analyse, batch_items, failures)
                    for failure in failures:
                        frame = batch_items[failure.index].frame
                        report["failed"] += 1
                        report["warnings"].append(f"frame {frame.camera_id}#{frame.seq}: {failure.reason}")
                    for detection in detections:
                        anomaly = to_anomaly(batch_items[detection.index], detection)
                        await producer.send_and_wait(sandbox.name, sandbox.encode(anomaly),
                                                     key=sandbox.key(anomaly.camera_id))
                        report["anomalies"] += 1
                        _track(tracks, anomaly)
    finally:
        await consumer.stop()
        await producer.stop()
    between = f"between {start.isoformat()} and {end.isoformat()}"
    if not ranges:
        report["warnings"].append(f"no frame recorded {between} in topic {topics.frames.name}: nothing replayed")
    elif cameras and (missing := sorted(cameras - seen)):
        report["warnings"].append(f"camera(s) {', '.join(missing)}: no frame {between} "
                                  f"(cameras there: {', '.join(sorted(seen)) or 'none'})")
    report["tracks"] = sorted(tracks.values(), key=lambda t: t["first_capture_ns"])
    return report


def _track(tracks: dict[tuple[str, str], dict[str, Any]], anomaly: Anomaly) -> None:
    key = (anomaly.camera_id, anomaly.track_id or f"{anomaly.kind}:{anomaly.id}")
    entry = tracks.setdefault(key, {"camera_id": anomaly.camera_id, "kind": anomaly.kind, "track_id": anomaly.track_id,
                                    "first_capture_ns": anomaly.capture_ns, "count": 0, "max_score": 0.0,
                                    "regions": [[r.x, r.y, r.w, r.h] for r in anomaly.regions]})
    entry["count"] += 1
    entry["last_capture_ns"] = anomaly.capture_ns
    entry["max_score"] = max(entry["max_score"], round(float(anomaly.score), 4))


def main(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """Run ``vigie replay``; writes the report (``--report``, else stdout), then on stderr a summary
    and each warning of the report (one line each). Returns 0, warnings or not.

    Raises:
        ConfigError: a bad time, device, rules or cameras file; all are checked before any broker work.
        BrokerUnavailable: no broker.
    """
    start, end = parse_time(args.start), parse_time(args.end)
    device = resolve_device(args.device)
    rules = load_rules(args.rules, args.cameras_file)
    cameras = {c.strip() for c in args.cameras.split(",") if c.strip()} if args.cameras else None
    console = Console(stderr=True)
    report = asyncio.run(replay(kafka, start, end, cameras, rules, device, console, args.object_classes))
    text = json.dumps(report, indent=2)
    if args.report:
        Path(args.report).write_text(text + "\n")
    else:
        print(text)
    topic = f"topic {report['sandbox_topic']}" if report["sandbox_topic"] else "no sandbox topic"
    console.print(f"replayed {report['frames']} frames: {report['anomalies']} anomalies in {len(report['tracks'])} "
                  f"track(s) → {topic}")
    for warning in report["warnings"]:
        print(f"vigie replay: warning: {warning}", file=sys.stderr)
    return 0
