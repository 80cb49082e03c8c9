"""The audit trail's tables and the stored trace spans."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.metadata import Id, metadata
from corral.store.types import JSONDoc, UTCDateTime

# -- audit -----------------------------------------------------------------------------------

# The audit trail: append-only and hash-chained (see corral/audit/record.py for the columns).
# On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE of records and checkpoints.
audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("org_id", Id, nullable=True),
    sa.Column("team_id", Id, nullable=True),
    sa.Column("actor_type", sa.String(20), nullable=False),
    sa.Column("key_id", Id, nullable=True),
    sa.Column("user_id", Id, nullable=True),
    sa.Column("role", sa.String(20), nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("resource_id", sa.String(200), nullable=True),
    sa.Column("decision", sa.String(10), nullable=True),
    sa.Column("policy_id", Id, nullable=True),
    sa.Column("policy_version", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("request_id", sa.String(100), nullable=True),
    sa.Column("trace_id", sa.String(64), nullable=True),
    # Canonical JSON text, not JSONB: stored exactly as hashed.
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(None, "org_id", "seq"),
    sa.Index(None, "org_id", "team_id", "seq"),
    sa.Index(None, "org_id", "user_id", "seq"),
    sa.Index(None, "org_id", "resource_type", "resource_id", "seq"),
)

# Signed (seq, hash) checkpoints: each pins every record up to its seq.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),
)

# One row: the chain's last (seq, hash). Appends lock it, so the chain stays linear across
# replicas; it also says when the last checkpoint was made.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("checkpoint_seq", sa.BigInteger, nullable=False),
    sa.Column("checkpoint_at", UTCDateTime, nullable=True),
)

# Checkpoint signing keys (Ed25519): the private key sealed by the vault's master key.
audit_keys = sa.Table(
    "audit_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
    sa.Column("kek_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# -- telemetry -------------------------------------------------------------------------------

# Corral's own copy of its traces (also exported over OTLP when a collector is configured), so
# a session's trace can be read without any other system. Ids are lowercase hex.
spans = sa.Table(
    "spans",
    metadata,
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("span_id", sa.String(16), primary_key=True),
    sa.Column("parent_id", sa.String(16), nullable=True),
    sa.Column("session_id", Id, nullable=True),
    sa.Column("turn_id", Id, nullable=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attributes", JSONDoc, nullable=False),
    sa.Index(None, "session_id", "started_at"),
)
