"""The audit outbox: entries written in the same transaction as an account change, published afterwards.

:func:`flush_outbox` sends the waiting entries to the ``audit`` topic, oldest first, and deletes
each one once the broker acknowledged it. Two flushers running at once may both send an entry:
the register appends each entry id once, so a duplicate is harmless; an entry is never lost.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from vigie.accounts.models import OutboxEntry
from vigie.contracts.v1 import AuditEntry
from vigie.core.audit import AuditLog

#: Entries read from the outbox at a time.
BATCH = 200


async def flush_outbox(engine: AsyncEngine, audit_log: AuditLog) -> int:
    """Publish every waiting entry with ``audit_log`` and delete it once acknowledged; returns how many.

    Raises the producer's ``KafkaError`` when the broker does not take an entry (that entry and the
    later ones stay in the outbox for the next flush), and SQLAlchemy's errors for the database.
    """
    sessions = async_sessionmaker(engine)
    published = 0
    while True:
        async with sessions() as session:
            rows = (await session.execute(select(OutboxEntry.id, OutboxEntry.payload).order_by(OutboxEntry.id)
                                          .limit(BATCH))).all()
        if not rows:
            return published
        for row_id, payload in rows:
            await audit_log.write(AuditEntry.FromString(payload))
            async with sessions.begin() as session:
                await session.execute(delete(OutboxEntry).where(OutboxEntry.id == row_id))
            published += 1


async def pending(engine: AsyncEngine) -> int:
    """How many entries wait in the outbox."""
    async with async_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEntry)) or 0)
