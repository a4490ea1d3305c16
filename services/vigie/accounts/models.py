"""Tables of accounts, console sessions and the audit outbox (SQLAlchemy 2, on :class:`vigie.core.db.Base`).

Times are seconds since the Unix epoch (UTC) as floats, the same on SQLite and PostgreSQL.
Roles and stations are JSON lists of short names. A session row keeps only the SHA-256 of
its token (hex), never the token itself: a copy of the database does not open a console.
The schema is created by migration ``0002`` (:mod:`vigie.migrations`).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vigie.core.db import Base

#: Every role an account may hold.
ROLES = ("operator", "supervisor", "auditor", "admin")
#: Roles that see incidents and their images (of the stations assigned).
VIEWING_ROLES = frozenset({"operator", "supervisor"})
#: Longest user name.
MAX_NAME = 64


class User(Base):
    """One person's account: ``name`` (unique), argon2id ``password_hash``, ``roles``, ``stations``, lockout state."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON)
    stations: Mapped[list[str]] = mapped_column(JSON)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ConsoleSession(Base):
    """A logged-in console: SHA-256 (hex) of the cookie's token, its CSRF token, when it began and was last used."""

    __tablename__ = "console_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)


class OutboxEntry(Base):
    """An audit entry written in the same transaction as the change it records, waiting to be published."""

    __tablename__ = "audit_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(32), unique=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
