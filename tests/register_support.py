"""Helpers of the register's tests: databases (SQLite file, PostgreSQL), audit entries, counts."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy import func, select, text

from vigie.contracts.v1 import AuditEntry, RecordRef
from vigie.core import audit
from vigie.core.db import DatabaseSettings, make_engine, migrate
from vigie.register.models import entries
from vigie.register.store import append, entry_fields

KINDS = [AuditEntry.KIND_VIEW, AuditEntry.KIND_ACTION, AuditEntry.KIND_LOGIN, AuditEntry.KIND_LOGIN_FAILED,
         AuditEntry.KIND_ACCOUNT_CHANGE, AuditEntry.KIND_CAMERA_STARTED]


def database_url(kind: str, tmp_path, request) -> str:  # noqa: ANN001
    """A fresh, empty database of ``kind`` ("sqlite": a file in tmp_path; "postgresql": a new database)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'register.db'}"
    server = request.getfixturevalue("postgres")
    return server.create_db(f"reg_{uuid.uuid4().hex[:10]}")


def sample(n: int, at_ns: int | None = None, start: int = 0, kinds: list[int] = KINDS) -> list[AuditEntry]:
    """``n`` audit entries of ``kinds`` in turn, varied users and cameras (the i-th names record frames/0/i)."""
    out = []
    for i in range(start, start + n):
        out.append(audit.entry(kinds[i % len(kinds)], service="station", user=f"user-{i % 3}",
                               camera_id=f"cam-{i % 4}", station="main", incident_id=f"inc-{i}",
                               detail=f"entry {i} – é", client="10.0.0.7", subject="bob" if i % 6 == 4 else "",
                               record=RecordRef(topic="frames", partition=0, offset=i), at_ns=at_ns))
    return out


def keep_log_handlers():  # noqa: ANN201
    """Fixture body: the root logger's handlers and level as they were (``vigie.cli.main`` replaces them)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(coro):  # noqa: ANN001, ANN201
    """Run ``coro`` on a new event loop."""
    return asyncio.run(coro)


async def seed(url: str, messages: list[AuditEntry], batch: int = 500) -> Any:
    """Migrate the database of ``url`` and append ``messages``; returns the last AppendResult."""
    settings = DatabaseSettings(url=url)
    engine = make_engine(settings)
    try:
        await migrate(engine, settings)
        result = None
        for start in range(0, len(messages), batch):
            result = await append(engine, [entry_fields(m) for m in messages[start:start + batch]])
        return result
    finally:
        await engine.dispose()


async def sql(url: str, *statements: str, **params: Any) -> list[Any]:
    """Run ``statements`` in one transaction; returns the rows of the last one (if it returns rows)."""
    engine = make_engine(DatabaseSettings(url=url))
    try:
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


async def counts(url: str, kind: str | None = None) -> tuple[int, int]:
    """(entries, distinct entry ids) in the register, of ``kind`` only when given."""
    engine = make_engine(DatabaseSettings(url=url))
    try:
        query = select(func.count(), func.count(entries.c.entry_id.distinct()))
        if kind:
            query = query.where(entries.c.kind == kind)
        async with engine.connect() as connection:
            return tuple((await connection.execute(query)).one())
    finally:
        await engine.dispose()
