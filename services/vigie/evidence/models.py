"""Tables of the evidence catalogue (schema created by the Alembic revision ``0003_evidence``).

``evidence_items``: one row per stored item (an incident's clip or snapshot): where it lies in the
evidence store, its SHA-256, camera, time range, and when it is due for destruction; a destroyed
item keeps its row (``destroyed_ns``), the file is gone. ``legal_holds``: holds placed for a
judicial requisition, on one incident's evidence or on a camera and a time range; a lifted hold
keeps its row (``released_ns``). ``evidence_transmissions``: what was handed to which authority.
Times are ns since the Unix epoch, UTC.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vigie.core.db import Base

#: Kinds of item.
CLIP, SNAPSHOT = "clip", "snapshot"


class EvidenceItem(Base):
    """One stored item. ``key``: its path inside the store; ``start_ns``/``end_ns``: first and last frame's
    capture time; ``due_ns``: when its retention ends (the camera's authorised retention after ``start_ns``)."""

    __tablename__ = "evidence_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(255), index=True)
    camera_id: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    frames: Mapped[int] = mapped_column(Integer)
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    due_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    authorisation: Mapped[str] = mapped_column(String(63))
    destroyed_ns: Mapped[int] = mapped_column(BigInteger, default=0, index=True)


class LegalHold(Base):
    """A hold for a judicial requisition: on ``incident_id``'s items, or on ``camera_id``'s items overlapping
    ``[start_ns, end_ns]``. Placed by ``placed_by`` (a supervisor); lifted when ``released_ns`` > 0."""

    __tablename__ = "legal_holds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requisition: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[str] = mapped_column(String(255), default="")
    camera_id: Mapped[str] = mapped_column(String(255), default="")
    start_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    end_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    placed_by: Mapped[str] = mapped_column(String(64))
    placed_ns: Mapped[int] = mapped_column(BigInteger)
    released_by: Mapped[str] = mapped_column(String(64), default="")
    released_ns: Mapped[int] = mapped_column(BigInteger, default=0, index=True)


class Transmission(Base):
    """Evidence handed to a judicial authority: the requisition, the authority, the items (JSON list of ids),
    the bundle's manifest SHA-256, who and when."""

    __tablename__ = "evidence_transmissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requisition: Mapped[str] = mapped_column(String(200))
    authority: Mapped[str] = mapped_column(String(200))
    items: Mapped[list[str]] = mapped_column(JSON)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    made_by: Mapped[str] = mapped_column(String(64))
    made_ns: Mapped[int] = mapped_column(BigInteger)
