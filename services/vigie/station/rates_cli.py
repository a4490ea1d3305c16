"""``vigie rates``: the false-alarm rates of a station's verdicts, read from its alerts topic, in a terminal.

``vigie [--kafka HOST:PORT] rates --station main [--window 7d] [--flag-rate 0.5] [--min-verdicts 10] [--json]``
reads ``alerts.<station>`` from its first record to its end (a consumer outside any group: nothing is
committed, the station is not disturbed), feeds every revision to a :class:`~vigie.station.verdicts.VerdictStats`
and prints the table per camera x kind (worst rate first, flagged pairs marked), then per kind and overall;
``--json`` prints the console's ``/api/rates`` JSON instead. Exit codes: 0 done, 1 the broker or the topic
cannot be read, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any

from vigie.core.settings import KafkaSettings

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window(text: str) -> float:
    """An argparse ``type=``: ``24h``, ``7d``, ``90m``, ``3600`` (seconds) to seconds, within [1 h, 30 days]."""
    from vigie.station.verdicts import MAX_WINDOW_S, MIN_WINDOW_S

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    seconds = float(match[1]) * UNITS[match[2] or "s"] if match else -1.0
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise argparse.ArgumentTypeError(f"expected a duration from 1h to 30d (e.g. 24h, 7d), got {text!r}")
    return seconds


def add_arguments(sub: Any, kafka: Any) -> None:
    """Declare ``vigie rates`` on the subparsers ``sub``; ``kafka(args)`` gives the Kafka settings."""
    from vigie.core.options import bounded

    p = sub.add_parser("rates", help="false-alarm rates per camera and kind from the operators' verdicts "
                       "(read from a station's alerts topic)")
    p.add_argument("--bootstrap", dest="kafka", default=argparse.SUPPRESS,
                   help="bootstrap servers (same as vigie --kafka)")
    p.add_argument("--station", default="main", help="station id: its topic alerts.<station> is read (default main)")
    p.add_argument("--window", type=window, default=7 * 86400.0, help="closing time window, 1h to 30d (default 7d)")
    p.add_argument("--flag-rate", type=bounded(float, 0, 1), default=0.5,
                   help="flag a pair whose false-alarm rate is over this (default 0.5) ...")
    p.add_argument("--min-verdicts", type=bounded(int, 1), default=10,
                   help="... with at least this many verdicts, confirmed + false alarms (default 10)")
    p.add_argument("--timeout", type=bounded(float, 1, 3600), default=120.0,
                   help="seconds allowed to read the topic (default 120)")
    p.add_argument("--json", action="store_true", help="print the JSON of the console's /api/rates")
    p.set_defaults(func=lambda args: main(args, kafka(args)))


async def read_alerts(kafka: KafkaSettings, station: str, feed: Any, timeout_s: float) -> int:
    """Feed every incident revision of ``alerts.<station>``, from its first record to its end now, to
    ``feed(incident)``; returns how many were read (malformed ones are skipped).

    Raises BrokerUnavailable when the topic does not exist or cannot be read within ``timeout_s``.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    from vigie.core.errors import BrokerUnavailable, MalformedMessage
    from vigie.core.kafka import make_consumer, partitions_of
    from vigie.core.topics import Topics

    topic = Topics(kafka.namespace).alerts(station)
    try:
        partitions = await partitions_of(kafka, topic)
        if not partitions:
            raise BrokerUnavailable(f"topic {topic.name} not found (is the station id right?)")
        consumer = make_consumer(kafka, group=None, isolation_level="read_committed")
        await consumer.start()
    except KafkaError as exc:
        raise BrokerUnavailable(f"reading {topic.name}: {exc}") from None
    read, deadline = 0, time.monotonic() + timeout_s
    try:
        tps = [TopicPartition(topic.name, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        left = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        while left:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"reading {topic.name} took more than {timeout_s:g} s")
            for tp, records in (await consumer.getmany(*left, timeout_ms=500)).items():
                for record in records:
                    if record.offset < end[tp]:
                        try:
                            feed(topic.decode(record.value))
                        except MalformedMessage:
                            continue
                        read += 1
            left = {tp for tp in left if await consumer.position(tp) < end[tp]}
    except KafkaError as exc:
        raise BrokerUnavailable(f"reading {topic.name}: {exc}") from None
    finally:
        await consumer.stop()
    return read


def main(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """Read the topic, print the figures; returns the exit code (BrokerUnavailable propagates: exit 1)."""
    from vigie.register.query import iso_of
    from vigie.station.verdicts import VerdictStats

    stats = VerdictStats(args.window, args.flag_rate, args.min_verdicts)
    asyncio.run(read_alerts(kafka, args.station, stats.observe, args.timeout))
    body = {"station": args.station, **stats.rates().as_json()}
    body.update(to=iso_of(body["to_ns"]), **{"from": iso_of(body["from_ns"])})
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print_table(body)
    return 0


def _rate(tally: dict) -> str:
    if tally["rate"] is None:
        return "-"
    low, high = tally["interval"]
    return f"{100 * tally['rate']:.1f} % ({100 * low:.1f}-{100 * high:.1f})"


def print_table(body: dict) -> None:
    """Print the figures of ``/api/rates``'s JSON as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"False-alarm rates, station {body['station']}, closed {body['from']} to {body['to']} "
                        f"(flag: over {100 * body['flag_rate']:g} % with {body['min_verdicts']}+ verdicts)")
    for name in ("camera", "kind", "closed", "confirmed", "false", "tests", "rate (95 %)", "dominant reasons", "flag"):
        table.add_column(name, justify="right" if name in ("closed", "confirmed", "false", "tests") else "left")
    rows = [(p["camera"], p["kind"], p, "FLAGGED" if p["flagged"] else "") for p in body["pairs"]]
    rows += [("all", k["kind"], k, "") for k in body["kinds"]] + [("all", "all", body["overall"], "")]
    for camera, kind, tally, flag in rows:
        table.add_row(camera, kind, str(tally["closed"]), str(tally["confirmed"]), str(tally["false_alarms"]),
                      str(tally["tests"]), _rate(tally), ", ".join(tally["dominant"]), flag,
                      style="bold red" if flag else None, end_section=camera == "all" and kind == "all")
    console.print(table)
