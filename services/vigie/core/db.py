"""The database behind accounts, sessions and the register: one URL, SQLAlchemy 2 (async), Alembic migrations.

The embedded default is a SQLite file (``sqlite:///var/vigie.db``: nothing to install); a city
in production gives a PostgreSQL URL (``postgresql://user@host/vigie``). The URL comes from
``--database`` or ``VIGIE_DATABASE_URL``; its password may instead come from a file named by
``VIGIE_DATABASE_PASSWORD_FILE`` (a Kubernetes Secret), and it is never logged: every message
shows :meth:`DatabaseSettings.redacted`.

SQLite runs in WAL mode with ``synchronous=FULL``: an append acknowledged by a commit survives a
power cut. The schema is created and upgraded by :func:`migrate` (Alembic, scripts in
:mod:`vigie.migrations`); every service that uses the database calls it at start-up, serialised
on PostgreSQL by an advisory lock so that two services starting together do not race.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from vigie.core.errors import ConfigError, DatabaseUnavailable
from vigie.core.settings import StrictModel

DEFAULT_URL = "sqlite:///var/vigie.db"
__all__ = ["Base", "DatabaseSettings", "DatabaseUnavailable", "check_reachable", "current_revision",
           "describe_db_error", "make_engine", "migrate"]
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
#: Advisory lock id that serialises migrations on PostgreSQL ("vigie" in ASCII).
_MIGRATION_LOCK = 0x7669676965


class Base(DeclarativeBase):
    """Declarative base of every table (accounts, sessions, register); constraint names are stable."""

    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    })


class DatabaseSettings(StrictModel):
    """Where the database is."""

    url: str = Field(default_factory=lambda: os.environ.get("VIGIE_DATABASE_URL", DEFAULT_URL),
                     title="Database URL",
                     description="sqlite:///path/to/file.db (default sqlite:///var/vigie.db) or "
                     "postgresql://user[:password]@host[:port]/dbname (env VIGIE_DATABASE_URL).")
    password_file: str = Field(default_factory=lambda: os.environ.get("VIGIE_DATABASE_PASSWORD_FILE", ""),
                               title="Password file",
                               description="File holding the database password, e.g. a mounted Kubernetes Secret "
                               "(env VIGIE_DATABASE_PASSWORD_FILE); overrides a password in the URL.")
    connect_timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before a connection attempt fails.")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL: expected sqlite:///file.db or postgresql://user@host/db") from None
        if url.get_backend_name() not in _DRIVERS:
            raise ValueError(f"database {url.get_backend_name()!r} is not supported: use sqlite or postgresql")
        return value

    def sqlalchemy_url(self) -> URL:
        """The URL with its async driver (aiosqlite, asyncpg) and the password of ``password_file``.

        Raises ConfigError when the password file cannot be read (naming it).
        """
        url = make_url(self.url)
        url = url.set(drivername=_DRIVERS[url.get_backend_name()])
        if self.password_file:
            try:
                url = url.set(password=Path(self.password_file).read_text().strip())
            except OSError as exc:
                raise ConfigError(f"database password file {self.password_file}: {exc.strerror}") from None
        return url

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite file."""
        return make_url(self.url).get_backend_name() == "sqlite"

    def redacted(self) -> str:
        """The URL fit for logs, errors and ``/healthz``: its password replaced by ``***``."""
        return make_url(self.url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(settings: DatabaseSettings, **options: Any) -> AsyncEngine:
    """An async engine for ``settings`` (creates the SQLite file's folder). Connects lazily.

    Raises ConfigError for an unreadable password file.
    """
    url = settings.sqlalchemy_url()
    if settings.is_sqlite:
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": settings.connect_timeout_s}, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # asyncpg prepares every statement and PostgreSQL may then keep a generic plan made while a table was
    # nearly empty (a sequential scan): the register's id lookups grew linear in its size (1,200 entries/s
    # appended at 100,000 entries instead of 20,000). A plan per execution keeps them on their index.
    server_settings = {"plan_cache_mode": "force_custom_plan", "application_name": "vigie"}
    return create_async_engine(url, pool_pre_ping=True, connect_args={"timeout": settings.connect_timeout_s,
                                                                      "server_settings": server_settings}, **options)


def describe_db_error(settings: DatabaseSettings, exc: BaseException) -> str:
    """One line for a database error: the redacted URL and the driver's own reason, no secret, no SQL."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text_ = " ".join(str(reason).split()) or type(reason).__name__
    return f"database {settings.redacted()}: {type(reason).__name__}: {text_[:300]}"


async def check_reachable(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    """Open a connection and run ``SELECT 1``. Raises DatabaseUnavailable naming the database."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, OperationalError, DBAPIError, asyncio.TimeoutError) as exc:
        raise DatabaseUnavailable(describe_db_error(settings, exc)) from None


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine, settings: DatabaseSettings, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (Alembic), in one transaction.

    Raises DatabaseUnavailable when the database cannot be reached or written.
    """
    from alembic import command

    def upgrade(connection: Any) -> None:
        command.upgrade(_alembic_config(connection), revision)

    try:
        async with engine.begin() as connection:
            if not settings.is_sqlite:
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            await connection.run_sync(upgrade)
    except (OSError, OperationalError, DBAPIError, asyncio.TimeoutError) as exc:
        raise DatabaseUnavailable(describe_db_error(settings, exc)) from None


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's Alembic revision, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
