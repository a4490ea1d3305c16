"""``vigie cameras``: put a cameras file on the compacted ``cameras`` topic, which grabber replicas run.

``vigie cameras apply cameras.yaml [--prune]`` checks the file as ``vigie validate`` does (nothing is
written if any camera is invalid: errors name the file, line and field), refuses a source URL that holds a
password (the topic keeps references to secrets, never a secret), reads the topic's latest record per
camera, then writes one record per camera added or changed, and with ``--prune`` a tombstone per camera
of the topic no longer in the file. It prints what it added, changed and removed.
``vigie cameras list`` prints the cameras the topic holds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parser is built at every `vigie` command: the clients are imported when used
    from vigie.core.camera_records import CameraRecord
    from vigie.core.settings import KafkaSettings
    from vigie.core.topics import CamerasTopic

__all__ = ["add_arguments", "apply_file", "apply_records", "read_cameras"]


def add_arguments(sub: argparse._SubParsersAction, kafka_of: Callable[[argparse.Namespace], KafkaSettings]) -> None:
    """Add ``vigie cameras apply|list`` to the ``vigie`` parser's subcommands ``sub``."""
    p = sub.add_parser("cameras", help="the cameras topic grabber replicas run: `apply` a cameras file, `list` it")
    actions = p.add_subparsers(dest="action", required=True)
    apply = actions.add_parser("apply", help="validate a cameras file and write the cameras added or changed "
                               "(and, with --prune, remove those no longer in it)")
    apply.add_argument("file", help="cameras YAML (checked as `vigie validate` checks it)")
    apply.add_argument("--prune", action="store_true",
                       help="remove (tombstone) the cameras of the topic that the file no longer lists")
    actions.add_parser("list", help="print the cameras the topic holds (latest record per camera)")
    for action in (apply, actions.choices["list"]):
        action.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the broker")
    p.set_defaults(func=lambda args: main(args, kafka_of(args)))


def main(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """Run ``vigie cameras <action>``; returns the exit code. Raises ConfigError (exit 2), BrokerUnavailable."""
    from vigie.core.camera_records import inline_password_problems, records_of
    from vigie.core.topics import Topics

    topic = Topics(kafka.namespace).cameras
    if args.action == "list":
        held = asyncio.run(_connected(kafka, topic, args.wait, read_cameras(kafka, topic)))
        for camera_id, value in sorted(held.items()):
            print(f"{camera_id:<24} {_describe(topic, camera_id, value)}")
        print(f"{len(held)} camera(s) in {topic.name}")
        return 0
    from vigie.core.config import ConfigError as FileError, read_config_text
    from vigie.validation import validate_cameras

    cameras, _ = validate_cameras(args.file)
    problems = inline_password_problems(read_config_text(args.file), cameras)
    if problems:
        raise FileError(args.file, problems)
    wanted = records_of(cameras)
    changes = asyncio.run(_connected(kafka, topic, args.wait, apply_records(kafka, topic, wanted, args.prune)))
    for verb in ("added", "changed", "removed"):
        for camera_id in changes[verb]:
            print(f"{verb:<8} {camera_id}")
    print(f"{args.file}: {len(changes['added'])} added, {len(changes['changed'])} changed, "
          f"{len(changes['removed'])} removed, {len(changes['unchanged'])} unchanged in {topic.name}")
    if changes["kept"]:
        print(f"  note: {len(changes['kept'])} camera(s) of the topic are not in the file and still run "
              f"(--prune removes them): {', '.join(changes['kept'])}")
    return 0


async def apply_file(kafka: KafkaSettings, path: str, wait_s: float = 60.0) -> list[str]:
    """Run ``vigie cameras apply PATH --prune`` in a child process (the checks import the analytics, which a
    grabber does not keep in memory); returns the lines it printed (what it added, changed and removed).

    Raises:
        ConfigError: the file is invalid (its errors, ``FILE:LINE: location: message``); nothing was written.
        BrokerUnavailable: the broker did not answer (retriable), or the command failed otherwise.
    """
    import os
    import sys

    from vigie.core.errors import BrokerUnavailable, ConfigError

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "cameras",
        "apply", path, "--prune", "--wait", str(wait_s), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=os.environ.copy())
    out, err = await proc.communicate()
    problem = err.decode(errors="replace").strip().removeprefix("vigie cameras: configuration error:").strip()
    if proc.returncode == 2:
        raise ConfigError(problem)
    if proc.returncode != 0:
        raise BrokerUnavailable(f"vigie cameras apply {path} failed (exit {proc.returncode}): {problem[-2000:]}")
    return out.decode(errors="replace").splitlines()


async def _connected(kafka: KafkaSettings, topic: CamerasTopic, wait_s: float, work):  # noqa: ANN001, ANN202
    """Wait for the broker and the topic, then await ``work``. Raises BrokerUnavailable, ConfigError."""
    from vigie.core.kafka import require_topics, wait_for_broker

    try:
        await wait_for_broker(kafka, timeout_s=wait_s)
        await require_topics(kafka, [topic])
        return await work
    finally:
        work.close()  # a coroutine never awaited (broker away): no warning


def _describe(topic: CamerasTopic, camera_id: str, value: bytes) -> str:
    """One line on a record of the topic: source (redacted), fps, width, authorisation; or why it is invalid."""
    from vigie.core.errors import MalformedMessage
    from vigie.core.secrets import redact

    try:
        record = topic.decode(value, camera_id.encode())
    except MalformedMessage as exc:
        return f"INVALID: {exc}"
    c = record.camera
    return f"{redact(c.source)} fps={c.fps:g} width={c.width} authorisation={c.authorisation or 'none'}"


async def read_cameras(kafka: KafkaSettings, topic: CamerasTopic, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The latest value of every camera of ``topic`` (read from the beginning to the end of each partition,
    tombstoned cameras and records on another partition than their key's left out: the grabbers ignore them),
    by camera id. Raises BrokerUnavailable when the end is not reached in time."""
    from aiokafka import TopicPartition

    from vigie.core.errors import BrokerUnavailable
    from vigie.core.kafka import make_consumer, partitions_of

    consumer = make_consumer(kafka, group=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in await partitions_of(kafka, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[str, bytes | None] = {}
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"{topic.name}: not read to its end within {timeout_s:.0f} s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key is not None and not topic.misplaced(record.key, record.partition, len(tps)):
                        latest[record.key.decode(errors="replace")] = record.value
        return {camera_id: value for camera_id, value in latest.items() if value is not None}
    finally:
        await consumer.stop()


async def apply_records(kafka: KafkaSettings, topic: CamerasTopic, wanted: dict[str, CameraRecord],
                        prune: bool) -> dict[str, list[str]]:
    """Make ``topic`` hold ``wanted``: write the records added or changed (an invalid record in the topic
    counts as changed), and with ``prune`` a tombstone for each camera of the topic not in ``wanted``.

    Returns the camera ids, sorted, under ``added``, ``changed``, ``removed``, ``unchanged`` and ``kept``
    (in the topic, not in ``wanted``, not pruned). Raises BrokerUnavailable; aiokafka's KafkaError when a
    write is refused.
    """
    from vigie.core.errors import MalformedMessage
    from vigie.core.kafka import make_producer

    held = await read_cameras(kafka, topic)
    changes: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "unchanged": [], "kept": []}
    writes: list[tuple[str, bytes | None]] = []
    for camera_id, record in sorted(wanted.items()):
        try:
            current = topic.decode(held[camera_id], camera_id.encode()) if camera_id in held else None
        except MalformedMessage:
            current = None
        verb = "added" if camera_id not in held else "unchanged" if record.same_as(current) else "changed"
        changes[verb].append(camera_id)
        if verb != "unchanged":
            writes.append((camera_id, topic.encode(record)))
    for camera_id in sorted(set(held) - set(wanted)):
        changes["removed" if prune else "kept"].append(camera_id)
        if prune:
            writes.append((camera_id, None))
    if writes:
        producer = make_producer(kafka)
        await producer.start()
        try:
            sent = [await producer.send(topic.name, value, key=topic.key(camera_id)) for camera_id, value in writes]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
    return changes
