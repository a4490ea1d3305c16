"""The register: hash-chained entries and the chain's anchor (see vigie.register.models).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The chain hash the first entry follows (vigie.register.chain.GENESIS).
GENESIS = "0" * 64
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "register_entries",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
        sa.Column("appended_ns", sa.BigInteger, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("station", sa.String(255), nullable=False),
        sa.Column("camera_id", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("record", sa.String(512), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_register_entries"),
        sa.UniqueConstraint("entry_id", name="uq_register_entries_entry_id"),
    )
    for column in ("kind", "at_ns", "user", "camera_id"):
        op.create_index(f"ix_register_entries_{column}", "register_entries", [column])
    anchor = op.create_table(
        "register_anchor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("pruned", sa.BigInteger, nullable=False),
        sa.Column("pruned_at_ns", sa.BigInteger, nullable=False),
        sa.Column("head_seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_register_anchor"),
    )
    op.bulk_insert(anchor, [{"id": 1, "first_seq": 1, "prev_hash": GENESIS, "pruned": 0, "pruned_at_ns": 0,
                             "head_seq": 0, "head_hash": GENESIS}])


def downgrade() -> None:
    op.drop_table("register_anchor")
    op.drop_table("register_entries")
