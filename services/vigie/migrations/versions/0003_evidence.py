"""The evidence catalogue: stored items, legal holds, transmissions to judicial authorities.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``evidence_items``, ``legal_holds`` and ``evidence_transmissions`` (see :mod:`vigie.evidence.models`)."""
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("camera_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("due_ns", sa.BigInteger(), nullable=False),
        sa.Column("authorisation", sa.String(63), nullable=False),
        sa.Column("destroyed_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_items"),
    )
    for column in ("incident_id", "camera_id", "due_ns", "destroyed_ns"):
        op.create_index(f"ix_evidence_items_{column}", "evidence_items", [column])
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("requisition", sa.String(200), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("camera_id", sa.String(255), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("placed_by", sa.String(64), nullable=False),
        sa.Column("placed_ns", sa.BigInteger(), nullable=False),
        sa.Column("released_by", sa.String(64), nullable=False),
        sa.Column("released_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
    )
    op.create_index("ix_legal_holds_released_ns", "legal_holds", ["released_ns"])
    op.create_table(
        "evidence_transmissions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("requisition", sa.String(200), nullable=False),
        sa.Column("authority", sa.String(200), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("made_by", sa.String(64), nullable=False),
        sa.Column("made_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_transmissions"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("evidence_transmissions")
    op.drop_index("ix_legal_holds_released_ns", table_name="legal_holds")
    op.drop_table("legal_holds")
    for column in ("incident_id", "camera_id", "due_ns", "destroyed_ns"):
        op.drop_index(f"ix_evidence_items_{column}", table_name="evidence_items")
    op.drop_table("evidence_items")
