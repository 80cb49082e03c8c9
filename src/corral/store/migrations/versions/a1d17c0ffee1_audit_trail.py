"""audit trail

Revision ID: a1d17c0ffee1
Revises: 469bc1e84bb0
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import corral.store.types

revision = "a1d17c0ffee1"
down_revision = "469bc1e84bb0"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("audit_records", "audit_checkpoints")

# PostgreSQL only: the server's role can neither change nor remove audit rows. (The table owner
# or a superuser can still disable the triggers; `corral audit verify` then catches the edit.)
_PG_GUARD = """
CREATE FUNCTION corral_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("ts", corral.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", corral.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer),
        sa.column("seq", sa.BigInteger),
        sa.column("hash", sa.String),
        sa.column("checkpoint_seq", sa.BigInteger),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64, "checkpoint_seq": 0}])
    op.create_table(
        "audit_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("created_at", corral.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_keys")),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", corral.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=True),
        sa.Column("team_id", sa.String(length=40), nullable=True),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=True),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("policy_id", sa.String(length=40), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("trace_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_records_org_id_seq"), ["org_id", "seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_org_id_team_id_seq"),
            ["org_id", "team_id", "seq"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_org_id_user_id_seq"),
            ["org_id", "user_id", "seq"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_org_id_resource_type_resource_id_seq"),
            ["org_id", "resource_type", "resource_id", "seq"],
            unique=False,
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
        for table in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION corral_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION corral_audit_append_only()"
            )
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC, CURRENT_USER")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS corral_audit_append_only()")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_org_id_resource_type_resource_id_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_org_id_user_id_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_org_id_team_id_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_org_id_seq"))

    op.drop_table("audit_records")
    op.drop_table("audit_keys")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
