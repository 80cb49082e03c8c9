"""gateway calls carry their span: span id, parent span id, requested output bound

A model call's ``chat {model}`` span is built from its call row when a trace is read, instead of
being written a second time into ``spans``.

Revision ID: 3f1c2a7be905
Revises: 9c6ae688d454
Create Date: 2026-11-26 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3f1c2a7be905"
down_revision = "9c6ae688d454"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gateway_calls", sa.Column("span_id", sa.String(length=16), nullable=True))
    op.add_column("gateway_calls", sa.Column("parent_span_id", sa.String(length=16), nullable=True))
    op.add_column("gateway_calls", sa.Column("max_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_calls") as batch_op:
        batch_op.drop_column("max_tokens")
        batch_op.drop_column("parent_span_id")
        batch_op.drop_column("span_id")
