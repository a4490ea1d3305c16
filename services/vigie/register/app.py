"""The register service: appends every audit entry, exactly once, to the hash-chained register table.

Stages, in order (:meth:`RegisterService.prepare`, then :meth:`RegisterService.start`):

1. the database: reachable (else a clear error naming its redacted URL, before anything
   listens), schema migrated (:func:`vigie.core.db.migrate`);
2. the ``audit`` and ``deadletter`` topics exist;
3. a producer, for dead letters;
4. a consumer in group ``register`` on ``audit``, offsets committed by hand.

Like every service run by :func:`vigie.core.lifecycle.serve`, it writes its own
``service_started`` and ``service_stopped`` entries to ``audit``, and appends them from there.

Then :meth:`RegisterService.run` loops: take up to ``batch_size`` records, send the malformed
ones to ``deadletter`` with the reason, append the rest in ONE database transaction
(:func:`vigie.register.store.append`: ids already present are left out, so a replay adds
nothing), and only then commit the Kafka offsets. A SIGKILL at any point loses nothing (the
offsets trail the database) and duplicates nothing (the ids). On a database error (down,
read-only, full) it stops taking records, commits nothing, reports ``degraded`` with the
reason on ``/healthz``, and retries the same batch with capped exponential back-off; the
entries wait in the topic meanwhile. Every ``outbox_interval_s`` (5 s) it also publishes the accounts'
audit outbox (:func:`vigie.accounts.outbox.flush_outbox`): the ``account_change`` entries that
``vigie users`` or a console wrote while the broker was away reach ``audit``, and so the register.
Retention runs at start and every ``prune_interval_s``
(a day): entries older than ``retention_days`` go, the chain stays verifiable from its anchor.
The chain is verified (:func:`vigie.register.chain.verify`) at start and every ``verify_interval_s``
(an hour), beside the appends: ``vigie_register_chain_ok`` (1 intact, 0 broken; NaN before the first
verification ends), ``vigie_register_chain_verified_seq`` (the head it reached) and
``vigie_register_chain_verified_timestamp_seconds`` (when it ended); a broken chain is named under
``degraded`` on ``/healthz`` (seq, entry, what is wrong) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from vigie.accounts.outbox import flush_outbox
from vigie.core.audit import AuditLog
from vigie.core.db import DatabaseSettings, DatabaseUnavailable, check_reachable, describe_db_error, make_engine, migrate
from vigie.core.errors import MalformedMessage
from vigie.core.kafka import DeadLetters, make_consumer, make_producer, require_topics, retry_delays, total_lag
from vigie.core.lifecycle import Service
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.register.chain import VerifyResult, verify
from vigie.register.models import anchor
from vigie.register.store import ChainConflict, append, entry_fields, prune

log = logging.getLogger(__name__)
DAY_NS = 86400 * 10**9
#: Errors that mean the database does not take the batch now (retried with back-off).
DB_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError, ChainConflict)


class RegisterSettings(StrictModel):
    """Settings of ``vigie register``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    retention_days: int = Field(365, ge=1, le=36500, description=(
        "Days an entry is kept (default 365: one year). The register holds no image, so this is independent "
        "of the 30-day ceiling on images."))
    prune_interval_s: float = Field(86400.0, gt=0, le=86400 * 7, description="Seconds between two retention runs.")
    outbox_interval_s: float = Field(5.0, gt=0, le=3600, description="Seconds between two publications of the "
                                     "accounts' audit outbox (entries written while the broker was away).")
    batch_size: int = Field(500, ge=1, le=10000, description="Most entries appended per database transaction.")
    verify_interval_s: float = Field(3600.0, ge=10, le=86400, description="Seconds between two verifications of "
                                     "the chain (the first at start).")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8094, ge=0, le=65535)


class RegisterService(Service):
    """Consumes ``audit`` and appends each entry once to the register (see the module's stages)."""

    name = "register"

    def __init__(self, settings: RegisterSettings, registry=None) -> None:  # noqa: ANN001
        super().__init__(settings.kafka, registry)
        self.settings = settings
        self.engine = None
        self._producer = None
        self._consumer = None
        self._deadletters: DeadLetters | None = None
        #: Why the database does not take entries now ("" while it does), since when (ns UTC), entries waiting.
        self.db_error, self.db_error_since_ns, self.waiting = "", 0, 0
        self.head_seq, self.lag = 0, 0
        self.appended = Counter("vigie_register_appended", "Entries appended to the register", registry=self.registry)
        self.duplicates = Counter("vigie_register_duplicates", "Entries left out: their id was in the register",
                                  registry=self.registry)
        self.db_errors = Counter("vigie_register_db_errors", "Database errors (append or retention)",
                                 registry=self.registry)
        self.outbox_published = Counter("vigie_register_outbox_published", "Entries of the accounts' audit outbox "
                                        "published to the audit topic", registry=self.registry)
        self.pruned = Counter("vigie_register_pruned", "Entries deleted by retention", registry=self.registry)
        self.head = Gauge("vigie_register_head_seq", "Seq of the last entry appended", registry=self.registry)
        self.chain_ok = Gauge("vigie_register_chain_ok", "1 when the last verification found the chain intact, "
                              "0 when broken (NaN before the first ends)", registry=self.registry)
        self.chain_ok.set(float("nan"))
        self.verified_seq = Gauge("vigie_register_chain_verified_seq", "Head seq the last verification reached",
                                  registry=self.registry)
        self.verified_at = Gauge("vigie_register_chain_verified_timestamp_seconds", "Unix time the last "
                                 "verification of the chain ended (0 before the first ends)", registry=self.registry)
        #: The last verification's result (None before the first ends), and the one running.
        self.chain: VerifyResult | None = None
        self._verifying: asyncio.Task | None = None

    async def prepare(self) -> None:
        """Stage 1: reach the database and migrate its schema.

        Raises DatabaseUnavailable naming the redacted URL when it cannot be reached or written.
        """
        if self.engine is not None:
            return
        database = self.settings.database
        engine = make_engine(database)
        try:
            await check_reachable(engine, database)
            await migrate(engine, database)
            async with engine.connect() as connection:
                self.head_seq = (await connection.execute(select(anchor.c.head_seq))).scalar() or 0
        except DatabaseUnavailable:
            await engine.dispose()
            raise
        except DB_ERRORS as exc:
            await engine.dispose()
            raise DatabaseUnavailable(describe_db_error(database, exc)) from None
        self.engine = engine
        self.head.set(self.head_seq)
        log.info("register: database %s, head at seq %d", database.redacted(), self.head_seq)

    async def start(self) -> None:
        """Stages 2-4 (the database first when :meth:`prepare` was not called)."""
        await self.prepare()
        await require_topics(self.kafka, [self.topics.audit, self.topics.deadletter])
        self._producer = make_producer(self.kafka)
        await self._producer.start()
        self._deadletters = DeadLetters(self._producer, self.topics.deadletter, self.name)
        self._consumer = make_consumer(self.kafka, self.topics.audit, group="register")
        await self._consumer.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Append batches until ``stop``; retention at start and every ``prune_interval_s``; the accounts'
        audit outbox published at start and every ``outbox_interval_s``."""
        next_prune = next_outbox = next_verify = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_verify and (self._verifying is None or self._verifying.done()):
                self._verifying = asyncio.create_task(self.verify_chain())
                next_verify = time.monotonic() + self.settings.verify_interval_s
            if time.monotonic() >= next_prune:
                done = await self.prune_once()
                next_prune = time.monotonic() + (self.settings.prune_interval_s if done else 60.0)
            if time.monotonic() >= next_outbox:
                await self.publish_outbox()
                next_outbox = time.monotonic() + self.settings.outbox_interval_s
            batch = await self._consumer.getmany(timeout_ms=500, max_records=self.settings.batch_size)
            records = [r for part in batch.values() for r in part]
            if records and not await self._take(records, stop):
                break
            with contextlib.suppress(KafkaError):
                self.lag = await total_lag(self._consumer)
                self.metrics.consumer_lag.set(self.lag)

    async def _take(self, records: list[ConsumerRecord], stop: asyncio.Event) -> bool:
        """Dead-letter the malformed records, append the others, commit; False when stopped before appending."""
        batch = []
        for record in records:
            self.metrics.records_in(record.topic).inc()
            try:
                batch.append(entry_fields(self.topics.audit.decode(record.value)))
            except MalformedMessage as exc:
                self.metrics.errors("dead_letter").inc()
                await self._deadletters.send(record, str(exc))
        if batch and not await self._append_until_done(batch, stop):
            return False
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # the entries are in: a replay of these records adds nothing
            self.metrics.errors("commit_failed").inc()
            log.warning("register: offsets not committed (%s): these records will be read again and skipped", exc)
        return True

    async def _append_until_done(self, batch: list[dict[str, Any]], stop: asyncio.Event) -> bool:
        """Append ``batch``, retrying with back-off while the database fails; False when stopped first."""
        delays = None
        while True:
            try:
                result = await append(self.engine, batch)
            except DB_ERRORS as exc:
                self.db_errors.inc()
                reason = describe_db_error(self.settings.database, exc)
                if not self.db_error:
                    self.db_error_since_ns = time.time_ns()
                    log.warning("register: the database does not take entries, %d waiting: %s", len(batch), reason)
                self.db_error, self.waiting = reason, len(batch)
                delays = delays or retry_delays(self.kafka)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), next(delays))
                if stop.is_set():
                    return False
                continue
            if self.db_error:
                log.info("register: the database takes entries again (after %.0f s)",
                         (time.time_ns() - self.db_error_since_ns) / 1e9)
                self.db_error, self.db_error_since_ns, self.waiting = "", 0, 0
            self.appended.inc(result.appended)
            self.duplicates.inc(result.duplicates)
            self.head_seq = result.head_seq
            self.head.set(result.head_seq)
            return True

    async def publish_outbox(self) -> int:
        """Publish the accounts' audit outbox to ``audit`` (:func:`vigie.accounts.outbox.flush_outbox`); returns
        how many entries went. A broker or database error is logged (the entries wait for the next run)."""
        try:
            published = await flush_outbox(self.engine, AuditLog(self._producer, self.topics.audit))
        except KafkaError as exc:
            log.warning("register: the audit outbox waits for the broker: %s", type(exc).__name__)
            return 0
        except DB_ERRORS as exc:
            self.db_errors.inc()
            log.warning("register: the audit outbox not read: %s", describe_db_error(self.settings.database, exc))
            return 0
        if published:
            self.outbox_published.inc(published)
            log.info("register: %d entries of the audit outbox published", published)
        return published

    async def prune_once(self) -> bool:
        """Delete the entries older than ``retention_days`` (:func:`vigie.register.store.prune`); False on error."""
        try:
            deleted = await prune(self.engine, time.time_ns() - self.settings.retention_days * DAY_NS)
        except DB_ERRORS as exc:
            self.db_errors.inc()
            log.warning("register: retention not run: %s", describe_db_error(self.settings.database, exc))
            return False
        if deleted:
            self.pruned.inc(deleted)
            log.info("register: retention deleted %d entries older than %d days", deleted, self.settings.retention_days)
        return True

    async def verify_chain(self) -> VerifyResult | None:
        """Verify the chain and export the outcome (see the module); None, counted in
        ``vigie_register_db_errors``, when the database could not be read."""
        try:
            result = await verify(self.engine)
        except DB_ERRORS as exc:
            self.db_errors.inc()
            log.warning("register: chain not verified: %s", describe_db_error(self.settings.database, exc))
            return None
        self.chain = result
        self.chain_ok.set(1 if result.ok else 0)
        self.verified_seq.set(result.head_seq)
        self.verified_at.set(time.time())
        if not result.ok:
            log.error("register: chain broken at seq %s (entry %s): %s", result.first_bad_seq, result.entry_id,
                      result.reason)
        return result

    async def stop(self) -> None:
        """Stop a verification in progress; close the consumer (no commit), the producer and the database's
        connections."""
        verifying, self._verifying = self._verifying, None
        if verifying is not None:
            verifying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await verifying
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        engine, self.engine = self.engine, None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await producer.stop()
        if engine is not None:
            await engine.dispose()

    def degraded(self) -> dict[str, Any]:
        """``{"database": {...}}`` while the database does not take entries: why (redacted), since when, waiting;
        ``{"chain": {...}}`` while the last verification found the chain broken: where and what."""
        out: dict[str, Any] = {}
        if self.db_error:
            out["database"] = {"error": self.db_error, "since_ns": self.db_error_since_ns, "waiting": self.waiting}
        if self.chain is not None and not self.chain.ok:
            out["chain"] = {"first_bad_seq": self.chain.first_bad_seq, "entry_id": self.chain.entry_id,
                            "reason": self.chain.reason}
        return out

    def health(self) -> dict[str, Any]:
        """The database (redacted URL), the head's seq, the consumer lag, the retention and the last verification
        of the chain (intact or not, the head it reached; null before the first ends)."""
        chain = None if self.chain is None else {"ok": self.chain.ok, "verified_seq": self.chain.head_seq}
        return {"database": self.settings.database.redacted(), "head_seq": self.head_seq, "lag": self.lag,
                "retention_days": self.settings.retention_days, "chain": chain}
