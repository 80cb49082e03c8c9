"""spans: Corral's own copy of its traces

Revision ID: 7ace5b0b5e55
Revises: a1d17c0ffee1
Create Date: 2026-11-27 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import corral.store.types

revision = "7ace5b0b5e55"
down_revision = "a1d17c0ffee1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=16), nullable=True),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("turn_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("started_at", corral.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", corral.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name=op.f("pk_spans")),
    )
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spans_session_id_started_at"), ["session_id", "started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spans_session_id_started_at"))
    op.drop_table("spans")
