"""What services tell the register: one typed writer of the ``audit`` topic.

Every service that sees or does something the register must record (an image viewed, an
operator action, a login, an account changed, a camera started, the service itself started
or stopped) builds an :class:`~vigie.contracts.v1.AuditEntry` with :func:`entry` and sends
it with :meth:`AuditLog.write`, which waits for the broker's acknowledgement (acks=all,
idempotent producer): once ``write`` returns, the entry is in the topic and the register
service (:mod:`vigie.register`) will append it, exactly once, by its id. Text fields go
through :func:`~vigie.core.secrets.redact`, so a camera password never reaches the register.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from vigie.contracts.v1 import AuditEntry, RecordRef
from vigie.core.secrets import redact
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topic

log = logging.getLogger(__name__)
#: Longest ``detail`` kept, characters.
MAX_DETAIL = 2000


def entry(kind: int, *, service: str, user: str = "", camera_id: str = "", station: str = "",
          incident_id: str = "", detail: str = "", client: str = "", subject: str = "",
          record: RecordRef | None = None, at_ns: int | None = None) -> AuditEntry:
    """A new audit entry with a fresh id and the current time (ns UTC) unless ``at_ns`` is given.

    ``kind`` is an ``AuditEntry.KIND_*`` value; ``user`` the person the entry is about (the
    logged-in user, or the name tried for a failed login). Secrets in ``detail`` are redacted
    and it is cut at :data:`MAX_DETAIL` characters. Raises ValueError for an unknown kind.
    """
    if kind not in AuditEntry.Kind.values() or kind == AuditEntry.KIND_UNSPECIFIED:
        raise ValueError(f"audit entry kind {kind!r}: expected one of AuditEntry.KIND_*")
    message = AuditEntry(
        id=uuid.uuid4().hex, kind=kind, service=service, operator=user, camera_id=camera_id, station=station,
        incident_id=incident_id, detail=redact(detail)[:MAX_DETAIL], client=client, subject=redact(subject),
        at_ns=time.time_ns() if at_ns is None else at_ns,
    )
    if record is not None:
        message.record.CopyFrom(record)
    return message


def kind_name(kind: int) -> str:
    """``AuditEntry.KIND_VIEW`` -> ``'view'``: the short name the register stores and shows."""
    return AuditEntry.Kind.Name(kind).removeprefix("KIND_").lower()


class AuditLog:
    """Writes entries to the ``audit`` topic through a started producer (the caller owns it).

    Args:
        producer: a started producer (``acks=all``, idempotent: :func:`vigie.core.kafka.make_producer`).
        topic: the ``audit`` topic of the service's namespace.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: Topic[AuditEntry]) -> None:
        self._producer = producer
        self._topic = topic

    async def write(self, message: AuditEntry) -> None:
        """Send ``message`` and wait until the broker holds it.

        Keyed by camera id, or by user for entries without a camera. Raises the producer's
        ``KafkaError`` when the broker does not take it (the caller decides: a view is refused
        rather than shown unrecorded).
        """
        key = message.camera_id or message.operator or message.service
        await self._producer.send_and_wait(self._topic.name, self._topic.encode(message), key=self._topic.key(key))
        log.debug("audit %s %s by %r", kind_name(message.kind), message.id, message.operator)


class AuditQueue:
    """Entries a service writes about its own work (started, stopped, cameras), sent in the background.

    :meth:`put` never blocks nor raises: the service's work goes on while the broker is away.
    :meth:`run` sends the entries in order, retrying with back-off until the broker takes each
    one; at most ``capacity`` entries wait in memory (the oldest dropped first, counted in
    ``dropped`` and logged). Entries an operator's request depends on (an image view) are not
    queued: they go through :meth:`AuditLog.write`, and the request fails when it fails.

    Entries may be queued before the broker answers (while the service starts); they are sent
    once :meth:`run` is given the :class:`AuditLog`.

    Args:
        capacity: entries kept while the broker is away.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._pending: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    def put(self, message: AuditEntry) -> None:
        """Queue ``message``; drops the oldest queued entry when ``capacity`` are already waiting."""
        if len(self._pending) >= self._capacity:
            lost = self._pending.pop(0)
            self.dropped += 1
            log.warning("audit queue full: dropped %s entry %s", kind_name(lost.kind), lost.id)
        self._pending.append(message)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, audit_log: AuditLog, stop: asyncio.Event, retry_s: float = 1.0,
                  retry_max_s: float = 10.0) -> None:
        """Send queued entries until ``stop`` is set (then returns; call :meth:`drain` to send the rest)."""
        delay = retry_s
        while not stop.is_set():
            if not self._pending:
                self._wake.clear()
                waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
                _, rest = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in rest:
                    task.cancel()
                continue
            if await self._send_one(audit_log):
                delay = retry_s
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, retry_max_s)

    async def drain(self, audit_log: AuditLog, timeout_s: float = 5.0) -> int:
        """Send what is queued, giving up after ``timeout_s`` seconds; returns the entries left unsent (logged)."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            if not await self._send_one(audit_log, timeout_s=max(0.1, deadline - time.monotonic())):
                await asyncio.sleep(0.2)
        if self._pending:
            log.warning("audit: %d entries not sent before stopping (the broker did not take them)",
                        len(self._pending))
        return len(self._pending)

    async def _send_one(self, audit_log: AuditLog, timeout_s: float = 30.0) -> bool:
        message = self._pending[0]
        try:
            await asyncio.wait_for(audit_log.write(message), timeout_s)
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.debug("audit entry %s not sent yet: %r", message.id, exc)
            return False
        if self._pending and self._pending[0] is message:
            self._pending.pop(0)
        self.sent += 1
        return True


async def send_once(kafka: KafkaSettings, message: AuditEntry, timeout_s: float = 10.0) -> bool:
    """Send one entry with a producer of its own (for processes without a running :class:`AuditQueue`).

    Returns False, logged, when the broker does not take it within ``timeout_s`` seconds.
    """
    from vigie.core.kafka import make_producer
    from vigie.core.topics import Topics

    producer = make_producer(kafka)
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
        await asyncio.wait_for(AuditLog(producer, Topics(kafka.namespace).audit).write(message), timeout_s)
        return True
    except (KafkaError, asyncio.TimeoutError, OSError) as exc:
        log.warning("audit entry %s (%s) not sent: %r", message.id, kind_name(message.kind), exc)
        return False
    finally:
        await producer.stop()
