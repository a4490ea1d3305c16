"""Kafka clients for every service: producers, consumers, the admin side and the dead-letter path.

Built on aiokafka (https://aiokafka.readthedocs.io). Producers wait for all in-sync
replicas (``acks='all'``) and are idempotent, so an acknowledged record is never lost
or duplicated by a producer retry; topics are created with the deployment's replication
factor and ``min.insync.replicas`` (:class:`~vigie.core.settings.KafkaSettings`), so an
acknowledged record is on that many brokers.

While the broker is away, aiokafka logs every failed connection attempt (tens of lines a
second); :func:`throttle_client_logs` keeps one line per kind of message every 30 s.
:class:`BrokerProbe` says whether the cluster answers, for start-up and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager

from aiokafka import (AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord,
                      TopicPartition)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest

from vigie.contracts.v1 import DeadLetter, RecordRef
from vigie.core.errors import BrokerUnavailable, ConfigError
from vigie.core.kafka_security import client_options, login_problem
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

log = logging.getLogger(__name__)

#: Largest record value a producer sends (a 4K JPEG fits); the broker's message.max.bytes matches.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record among ``partitions`` (> 0), as the Kafka clients' default partitioner
    (murmur2, Java's and aiokafka's) puts it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def make_producer(settings: KafkaSettings, *, linger_ms: int = 2) -> AIOKafkaProducer:
    """A producer for ``settings``; call ``await producer.start()`` (or use ``async with``)."""
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_request_size=MAX_RECORD_BYTES,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )


def make_consumer(
    settings: KafkaSettings, *topics: Topic, group: str | None, auto_offset_reset: str = "earliest", **extra
) -> AIOKafkaConsumer:
    """A consumer of ``topics`` in consumer group ``group`` (namespaced), offsets committed by the caller.

    With ``group=None`` it belongs to no group and the caller assigns partitions itself.
    """
    return AIOKafkaConsumer(
        *(t.name for t in topics),
        **client_options(settings),
        group_id=settings.group(group) if group else None,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
        fetch_max_bytes=4 * MAX_RECORD_BYTES,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
        **extra,
    )


class Rebalance(ConsumerRebalanceListener):
    """aiokafka's rebalance callbacks handed to a service's two coroutines, which the consumer awaits during a
    rebalance: ``revoked(partitions)`` at its start, ``assigned(partitions)`` at its end (sets of TopicPartition)."""

    def __init__(self, revoked: Callable[[set[TopicPartition]], Awaitable[None]],
                 assigned: Callable[[set[TopicPartition]], Awaitable[None]]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._assigned(assigned)


@asynccontextmanager
async def _admin(settings: KafkaSettings, timeout_ms: int = 15000) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client of ``settings``' cluster, closed on exit.

    Raises BrokerUnavailable, or ConfigError when the broker refuses the login (SASL, TLS)."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=timeout_ms)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        await admin.close()
        refused = await login_problem(settings)
        if refused:
            raise ConfigError(refused) from None
        raise BrokerUnavailable(f"no Kafka broker at {settings.bootstrap}: {exc}") from exc
    try:
        yield admin
    finally:
        await admin.close()


async def apply_topics(settings: KafkaSettings, topics: Iterable[Topic], ready_timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics with their partitions, retention and the deployment's durability;
    returns the names created.

    New topics get ``settings.replication_factor`` replicas and, like existing ones,
    ``min.insync.replicas = settings.min_insync_replicas``. Existing topics keep their partitions
    and replicas (Kafka does not change a replication factor in place: a differing one is logged),
    but their retention, segment roll and ``min.insync.replicas`` are reset to the spec's, so the
    30-day ceiling holds even for a topic created by hand. Returns once every partition of every
    topic has a leader (or after ``ready_timeout_s`` seconds), so a service started next finds
    them in the cluster metadata.

    Raises:
        BrokerUnavailable: no broker answers.
        ConfigError: the replication factor exceeds the number of brokers of the cluster.
    """
    topics = list(topics)
    async with _admin(settings) as admin:
        brokers = len((await admin.describe_cluster())["brokers"])
        if settings.replication_factor > brokers:
            raise ConfigError(
                f"replication factor {settings.replication_factor} needs at least as many brokers; the cluster at "
                f"{settings.bootstrap} has {brokers}: lower VIGIE_KAFKA_REPLICATION_FACTOR (--replication-factor)")
        existing = set(await admin.list_topics())

        def configs(topic: Topic) -> dict[str, str]:
            return {**topic.spec.configs(), "min.insync.replicas": str(settings.min_insync_replicas)}

        new = [
            NewTopic(t.name, num_partitions=t.spec.partitions, replication_factor=settings.replication_factor,
                     topic_configs=configs(t))
            for t in topics
            if t.name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        kept = [t for t in topics if t.name in existing]
        if kept:
            # AlterConfigs replaces the topic's whole set of overrides: every one we set goes in.
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, configs(t)) for t in kept])
            for described in await admin.describe_topics([t.name for t in kept]):
                replicas = {len(p["replicas"]) for p in described["partitions"]}
                if replicas and replicas != {settings.replication_factor}:
                    log.warning("topic %s has %s replica(s) per partition, the deployment asks for %d: Kafka does "
                                "not change it in place (kafka-reassign-partitions.sh does)", described["topic"],
                                "/".join(map(str, sorted(replicas))), settings.replication_factor)
    if new:
        await wait_for_topics(settings, topics, ready_timeout_s)
    return [n.name for n in new]


async def longest_keep_ms(settings: KafkaSettings, topic: Topic) -> int:
    """How long the broker may keep a record of ``topic``, ms: its ``retention.ms`` plus ``segment.ms`` (Kafka
    deletes closed segments only) plus the 5-minute retention check; -1 when it keeps records forever.

    Raises BrokerUnavailable, or ConfigError when the topic does not exist.
    """
    from vigie.core.topics import CHECK_MS

    async with _admin(settings) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic.name, {"retention.ms": None, "segment.ms": None})])
    values: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise ConfigError(f"topic {topic.name}: {resource['error_message'] or 'cannot be described'}")
            for e in resource["config_entries"]:  # aiokafka names the key config_names
                values[e.get("config_names", e.get("config_name"))] = int(e["config_value"])
    retention, segment = values.get("retention.ms", -1), values.get("segment.ms", 0)
    return -1 if retention < 0 else retention + segment + CHECK_MS


async def check_image_retention(settings: KafkaSettings, topic: Topic, authorisations: Iterable) -> None:
    """Refuse to go on when ``topic`` (one holding images: ``frames``) may keep a record longer than the
    shortest retention of ``authorisations`` (:class:`~vigie.core.authorisations.Authorisation`).

    Raises ConfigError naming the topic, how long it keeps records and the authorisation; BrokerUnavailable.
    """
    from vigie.core.authorisations import longest_keep_problem

    authorisations = list(authorisations)
    if not authorisations:
        return
    keep = await longest_keep_ms(settings, topic)
    problem = longest_keep_problem(f"topic {topic.name}", keep if keep >= 0 else 10**15, authorisations)
    if problem:
        raise ConfigError(problem + " (vigie topics sets it)")


async def unready_topics(settings: KafkaSettings, topics: Iterable[Topic]) -> list[str]:
    """Names of ``topics`` the cluster does not have, or has with a partition that has no leader yet.

    Raises BrokerUnavailable.
    """
    names = [t.name for t in topics]
    async with _admin(settings) as admin:
        described = await admin.describe_topics(names)
    ready = {d["topic"] for d in described
             if not d["error_code"] and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])}
    return [n for n in names if n not in ready]


async def wait_for_topics(settings: KafkaSettings, topics: Iterable[Topic], timeout_s: float = 30.0) -> list[str]:
    """Wait until every topic of ``topics`` exists with a leader on each partition.

    Returns the names still missing or leaderless after ``timeout_s`` seconds (empty: all ready).
    Raises BrokerUnavailable.
    """
    topics = list(topics)
    deadline = time.monotonic() + timeout_s
    while True:
        unready = await unready_topics(settings, topics)
        if not unready or time.monotonic() > deadline:
            return unready
        await asyncio.sleep(0.2)


async def wait_for_broker(settings: KafkaSettings, timeout_s: float = 60.0) -> None:
    """Wait until the broker answers a metadata request. Raises BrokerUnavailable after ``timeout_s``,
    ConfigError at once when it refuses the login (SASL credentials, TLS certificate).

    aiokafka's own connection errors are muted meanwhile: one line says what is awaited.
    """
    deadline = time.monotonic() + timeout_s
    client_log = logging.getLogger("aiokafka")
    level, warned = client_log.level, False
    client_log.setLevel(logging.CRITICAL)
    try:
        while True:
            admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=5000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as exc:  # aiokafka raises several types while the broker starts
                refused = await login_problem(settings)
                if refused:  # a refused login: waiting changes nothing
                    raise ConfigError(refused) from None
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"no Kafka broker at {settings.bootstrap} after {timeout_s:.0f} s: {exc}") from exc
                if not warned:
                    log.warning("waiting up to %.0f s for the Kafka broker at %s", timeout_s, settings.bootstrap)
                    warned = True
                await asyncio.sleep(0.5)
            finally:
                await admin.close()
    finally:
        client_log.setLevel(level)


async def partitions_of(settings: KafkaSettings, topic: Topic) -> list[int]:
    """Partition numbers of ``topic``, sorted; empty when it does not exist. Raises BrokerUnavailable."""
    async with _admin(settings) as admin:
        described = await admin.describe_topics([topic.name])
    if not described or described[0]["error_code"]:
        return []
    return sorted(p["partition"] for p in described[0]["partitions"])


async def sandbox_topics(settings: KafkaSettings, delete: bool = False) -> list[str]:
    """The replay sandbox topics of ``settings``' namespace (``<namespace>replay.<run>.anomalies``), sorted;
    with ``delete``, they are deleted first (the live topics are never touched).

    Raises BrokerUnavailable.
    """
    prefix = f"{settings.namespace}replay."
    async with _admin(settings) as admin:
        found = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if delete and found:
            await admin.delete_topics(found)
    return found


async def missing_topics(settings: KafkaSettings, topics: Iterable[Topic]) -> list[str]:
    """Names of ``topics`` the cluster does not have. Raises BrokerUnavailable."""
    await wait_for_broker(settings, timeout_s=settings.request_timeout_s)
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
    return [t.name for t in topics if t.name not in existing]


async def require_topics(settings: KafkaSettings, topics: Iterable[Topic], stations: Iterable[str] = ()) -> None:
    """Check that ``topics`` exist before a service uses them (waiting up to 10 s for topics being
    created, e.g. by ``vigie topics apply`` run just after the broker came up).

    Raises:
        ConfigError: naming the missing topics and the command that creates them (a service that
            started without them would otherwise report a broker that "does not answer").
        BrokerUnavailable: no broker answers.
    """
    await wait_for_broker(settings, timeout_s=settings.request_timeout_s)
    missing = await wait_for_topics(settings, topics, min(10.0, settings.request_timeout_s))  # being created?
    if missing:
        extra = f" --stations {','.join(stations)}" if stations else ""
        raise ConfigError(f"topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} do"
                          f"{'' if len(missing) > 1 else 'es'} not exist: run `vigie topics apply{extra}` first "
                          f"(namespace {settings.namespace!r})")


class BrokerProbe:
    """Whether the Kafka cluster of ``settings`` answers a metadata request, checked on demand.

    One aiokafka client is kept between checks (one TCP connection); after a failed check it is
    closed and the next check bootstraps again from ``settings.bootstrap``, so a cluster that
    came back elsewhere behind the same names is found.
    """

    def __init__(self, settings: KafkaSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        #: Brokers in the cluster metadata of the last successful check.
        self.brokers = 0
        self._client: AIOKafkaClient | None = None

    async def check(self) -> str | None:
        """None when the cluster answered within ``timeout_s`` seconds, else why not (one line)."""
        try:
            return await asyncio.wait_for(self._check(), self.timeout_s)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            await self.close()
            return await login_problem(self.settings) or describe_broker_error(exc) or "no answer"

    async def _check(self) -> None:
        if self._client is None:
            client = AIOKafkaClient(**client_options(self.settings),
                                    request_timeout_ms=int(self.timeout_s * 1000))
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
        # The brokers only (an empty topic list), not the whole cluster's metadata: on a cluster of thousands
        # of topics that took about 0.1 s of parsing on the event loop at every check, which the service's
        # records waited for (the correlator's p99 rose from 16 to 120 ms with a check every 5 s).
        node = self._client.get_random_node()
        if node is None:
            raise KafkaConnectionError("no broker in the cluster metadata")
        response = await self._client.send(node, MetadataRequest(topics=[]))
        self.brokers = len(response.brokers)
        return None

    async def close(self) -> None:
        """Close the client (a later :meth:`check` opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def describe_broker_error(exc: BaseException) -> str:
    """One line saying why the broker could not be used: aiokafka's message without its address lists."""
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    text = re.sub(r"\s*(from\s*)?\[\(.*$", "", str(exc)).strip() or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


def retriable(exc: BaseException) -> bool:
    """True when ``exc`` means the broker is (for now) out of reach, so the same call may succeed later."""
    return isinstance(exc, (BrokerUnavailable, KafkaConnectionError, asyncio.TimeoutError)) or (
        isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False)))


def retry_delays(settings: KafkaSettings) -> Iterator[float]:
    """Capped exponential back-off between attempts to reach the broker, seconds, endless:
    ``retry_initial_s`` doubling up to ``retry_max_s``, each spread by ±20 % so that services
    restarted together do not retry in step."""
    delay = settings.retry_initial_s
    while True:
        yield min(settings.retry_max_s, delay * random.uniform(0.8, 1.2))
        delay = min(settings.retry_max_s, delay * 2)


class _ClientLogThrottle(logging.Filter):
    """Lets through one record per (logger, message template) every ``every_s`` seconds for the
    loggers under ``prefixes``; the next one let through says how many were held back."""

    def __init__(self, prefixes: tuple[str, ...], every_s: float) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.every_s = every_s
        self._seen: dict[tuple[str, str], list] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} (and {seen[1]} more like it in {now - seen[0]:.0f} s, not shown)"
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def throttle_client_logs(every_s: float = 30.0, prefixes: tuple[str, ...] = ("aiokafka",)) -> None:
    """Keep at most one log line per kind of Kafka client message every ``every_s`` seconds.

    Installed on the root logger's handlers (a logger's own filters do not see its children's
    records); calling it again changes nothing.
    """
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ClientLogThrottle) for f in handler.filters):
            handler.addFilter(_ClientLogThrottle(prefixes, every_s))


class DeadLetters:
    """Sends records a service could not process to the dead-letter topic, with the reason.

    Args:
        producer: a started producer.
        topic: the dead-letter topic.
        service: name of the service that gave up on the record.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: Topic[DeadLetter], service: str) -> None:
        self._producer = producer
        self._topic = topic
        self._service = service

    async def send(self, record: ConsumerRecord, reason: str) -> None:
        """Publish ``record`` with ``reason`` and wait for the broker's acknowledgement."""
        letter = DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            reason=reason,
            service=self._service,
            at_ns=time.time_ns(),
        )
        log.warning("dead letter %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        await self._producer.send_and_wait(self._topic.name, self._topic.encode(letter), key=record.key)


async def fetch_record(settings: KafkaSettings, ref: RecordRef, timeout_s: float = 5.0) -> ConsumerRecord | None:
    """Read the one record at ``ref`` (topic, partition, offset), or None if it is gone (retention) or absent."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
        fetch_max_bytes=4 * MAX_RECORD_BYTES,
    )
    await consumer.start()
    try:
        tp = TopicPartition(ref.topic, ref.partition)
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not first <= ref.offset < end:
            return None
        consumer.seek(tp, ref.offset)
        batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000), max_records=1)
        records = batch.get(tp, [])
        return records[0] if records and records[0].offset == ref.offset else None
    finally:
        await consumer.stop()


async def total_lag(consumer: AIOKafkaConsumer) -> int:
    """Records between the consumer's position and the high watermark, summed over its assignment."""
    lag = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        lag += max(0, high - await consumer.position(tp))
    return lag
