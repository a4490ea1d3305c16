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

import logging
import time
import uuid

from aiokafka import AIOKafkaProducer

from vigie.contracts.v1 import AuditEntry, RecordRef
from vigie.core.secrets import redact
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
