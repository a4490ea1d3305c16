"""The register's tables (schema created by the Alembic revision ``0001_register``).

``register_entries`` holds one row per audit entry, in the order the register appended
them (``seq``: 1, 2, 3, ... with no gap), each chained to the one before by SHA-256
(:mod:`vigie.register.chain`). ``register_anchor`` holds one row (``id = 1``) with the
chain's two ends: where the remaining chain starts after retention removed its oldest
entries (``first_seq`` and the chain hash of the entry before it, ``prev_hash``), and
where it ends (``head_seq``, ``head_hash``: the last entry appended, so that removing the
newest entries is seen too). No image is ever stored: an entry names what was viewed
by its Kafka record reference.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigie.core.db import Base

#: Integer primary keys: 64-bit on PostgreSQL, SQLite's rowid (also 64-bit) on SQLite.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class RegisterEntry(Base):
    """One appended audit entry. Times are ns since the Unix epoch, UTC; hashes lowercase hex SHA-256."""

    __tablename__ = "register_entries"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    entry_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    at_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    appended_ns: Mapped[int] = mapped_column(BigInteger)
    user: Mapped[str] = mapped_column(String(255), index=True)
    station: Mapped[str] = mapped_column(String(255))
    camera_id: Mapped[str] = mapped_column(String(255), index=True)
    incident_id: Mapped[str] = mapped_column(String(255))
    record: Mapped[str] = mapped_column(String(512))
    service: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))


class RegisterAnchor(Base):
    """The chain's ends (one row, ``id = 1``): the retention anchor and the head.

    ``first_seq``/``prev_hash``: the first entry retention left and the chain hash it follows
    (1 and the genesis value before any prune); ``pruned``: entries removed by retention so
    far, ``pruned_at_ns`` when last; ``head_seq``/``head_hash``: the last entry appended
    (0 and the genesis value for an empty register).
    """

    __tablename__ = "register_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    pruned: Mapped[int] = mapped_column(BigInteger)
    pruned_at_ns: Mapped[int] = mapped_column(BigInteger)
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))


entries = RegisterEntry.__table__
anchor = RegisterAnchor.__table__
#: Columns of an entry in hash and export order (the names of the canonical content).
ENTRY_COLUMNS = tuple(c.name for c in entries.columns)
