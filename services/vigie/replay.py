"""``vigie replay``: re-run the analytics over recorded frames, for analysts, without touching live work.

Stages, in order (:func:`replay`):

1. find, per partition of ``frames``, the first offset at or after ``--from`` and the
   last before ``--to`` (Kafka's offsets-for-times lookup on record timestamps);
2. read that range with a consumer outside any consumer group (the live detector's
   group and committed offsets are never touched), keeping the ``--cameras`` asked for;
3. run the detector's own record path (decode, batch, analytics planned from
   ``--rules``) on the stream clock, as the live detector would;
4. write each anomaly to a sandbox topic ``replay.<run>.anomalies`` (7-day retention)
   and a JSON report of the tracks found, with a progress bar meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
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
from vigie.core.config import load_yaml_model
from vigie.core.errors import ConfigError
from vigie.core.kafka import apply_topics, make_consumer, make_producer, partitions_of, wait_for_broker
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.topics import DAY_MS, Topic, Topics, TopicSpec
from vigie.detector.pipeline import Analyser, decode_records, rounds, to_anomaly
from vigie.detector.plan import AnalyticsPlan

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ReplayRules(StrictModel):
    """Analytics to re-run: default kinds for every camera, and per-camera sections as in the cameras file."""

    defaults: list[str] = Field(default_factory=lambda: ["abandoned_object", "crowd_movement"],
                                description="Kinds run on every camera without a section.")
    cameras: dict[str, dict[str, dict[str, Any] | bool]] = Field(
        default_factory=dict, description="Camera id -> analytic kind -> settings (or false to disable).")


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
                 rules: ReplayRules, device: torch.device, console: Console | None = None) -> dict[str, Any]:
    """Re-run ``rules`` on the frames recorded between ``start`` and ``end``; returns the report.

    Raises ConfigError for an empty time range, BrokerUnavailable without a broker.
    """
    if end <= start:
        raise ConfigError(f"--to ({end.isoformat()}) must come after --from ({start.isoformat()})")
    topics = Topics(kafka.namespace)
    run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    sandbox: Topic[Anomaly] = Topic(TopicSpec(f"replay.{run}.anomalies", 1, 7 * DAY_MS), Anomaly, kafka.namespace)
    await wait_for_broker(kafka, 30)
    await apply_topics(kafka, [sandbox])
    plan = AnalyticsPlan(rules.cameras, rules.defaults, device)
    analyser = Analyser(plan, (160, 120), device)
    consumer = make_consumer(kafka, group=None)
    producer = make_producer(kafka)
    await consumer.start()
    await producer.start()
    report: dict[str, Any] = {"run": run, "from": start.isoformat(), "to": end.isoformat(), "sandbox_topic": sandbox.name,
                              "kinds": plan.kinds, "frames": 0, "skipped_cameras": 0, "malformed": 0, "anomalies": 0}
    tracks: dict[tuple[str, str], dict[str, Any]] = {}
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
                kept = [i for i in items if cameras is None or i.frame.camera_id in cameras]
                report["skipped_cameras"] += len(items) - len(kept)
                report["frames"] += len(kept)
                for batch_items in rounds(kept):
                    for detection in await asyncio.to_thread(analyser.analyse, batch_items):
                        anomaly = to_anomaly(batch_items[detection.index], detection)
                        await producer.send_and_wait(sandbox.name, sandbox.encode(anomaly),
                                                     key=sandbox.key(anomaly.camera_id))
                        report["anomalies"] += 1
                        _track(tracks, anomaly)
    finally:
        await consumer.stop()
        await producer.stop()
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
    """Run ``vigie replay``; prints a summary and writes the report. Returns 0."""
    rules = load_yaml_model(Path(args.rules), ReplayRules) if args.rules else ReplayRules()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    cameras = set(args.cameras.split(",")) if args.cameras else None
    console = Console(stderr=True)
    report = asyncio.run(replay(kafka, parse_time(args.start), parse_time(args.end), cameras, rules, device, console))
    text = json.dumps(report, indent=2)
    if args.report:
        Path(args.report).write_text(text + "\n")
    else:
        print(text)
    console.print(f"replayed {report['frames']} frames: {report['anomalies']} anomalies in {len(report['tracks'])} "
                  f"track(s) → topic {report['sandbox_topic']}")
    return 0
