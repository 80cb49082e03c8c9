"""All tables, as SQLAlchemy Core metadata. Alembic migrations are written against this."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.types import JSONDoc, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.String(40)

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "email"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("team_id", Id, nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("prefix", sa.String(40), nullable=False, unique=True),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("rotated_from", Id, nullable=True),
    sa.Index(None, "org_id", "created_at"),
)

runtimes = sa.Table(
    "runtimes",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("base_url", sa.String(2000), nullable=False),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

# Envelope-encrypted credentials. ``scope_type`` is org, team or agent; the narrowest wins.
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("runtime_id", Id, sa.ForeignKey("runtimes.id"), nullable=False),
    sa.Column("scope_type", sa.String(10), nullable=False),
    sa.Column("scope_id", Id, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
    sa.Column("kek_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("runtime_id", "scope_type", "scope_id"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("runtime_id", Id, sa.ForeignKey("runtimes.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", Id, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    # A name is unique among a team's live agents; a deleted agent frees its name.
    sa.Index(
        "uq_agents_team_live_name",
        "team_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

agent_versions = sa.Table(
    "agent_versions",
    metadata,
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("runtime_id", Id, nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("instructions", sa.Text, nullable=True),
    sa.Column("tools", JSONDoc, nullable=False),
    sa.Column("metadata", JSONDoc, nullable=False),
    sa.Column("created_by", Id, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("team_id", Id, nullable=False),
    sa.Column("agent_id", Id, sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("agent_version", sa.Integer, nullable=False),
    sa.Column("runtime_id", Id, nullable=False),
    sa.Column("user_id", Id, nullable=True),
    sa.Column("key_id", Id, nullable=True),
    sa.Column("native_session_id", sa.String(200), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("stop_reason", sa.String(40), nullable=True),
    sa.Column("title", sa.String(500), nullable=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("turns", sa.Integer, nullable=False, default=0),
    sa.Column("current_turn_id", Id, nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cost_micros", sa.BigInteger, nullable=False, default=0),
    sa.Column("error", JSONDoc, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_activity_at", UTCDateTime, nullable=False),
    # The fleet query: newest first within the org, optionally narrowed by one column.
    # Every equality column leads, so SQLite picks the narrow index even without statistics.
    sa.Index(None, "org_id", "created_at", "id"),
    sa.Index(None, "org_id", "team_id", "created_at", "id"),
    sa.Index(None, "org_id", "agent_id", "created_at", "id"),
    sa.Index(None, "org_id", "state", "created_at", "id"),
    sa.Index(None, "runtime_id", "native_session_id"),
)

turns = sa.Table(
    "turns",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("input_id", Id, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("stop_reason", sa.String(40), nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    # The lease: the one Corral instance that pumps this running turn, until it stops renewing.
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("session_id", "ordinal"),
    sa.Index(None, "status", "lease_expires_at"),
)

# The outbox: a user message is written here first and delivered to the runtime after.
inputs = sa.Table(
    "inputs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("turn_id", Id, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Index(None, "status"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("data", JSONDoc, nullable=False),
    sa.Column("native_id", sa.String(300), nullable=True),
    sa.Column("native_type", sa.String(100), nullable=True),
    sa.Column("turn_id", Id, nullable=True),
    sa.Column("trace_id", sa.String(64), nullable=True),
    # A redelivered native event is stored once.
    sa.UniqueConstraint("session_id", "native_id"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("session_id", Id, sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("turn_id", Id, nullable=True),
    sa.Column("native_id", sa.String(200), nullable=False),
    sa.Column("call_id", sa.String(200), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("input", JSONDoc, nullable=True),
    sa.Column("choices", JSONDoc, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("decision", sa.String(20), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("resolved_by", Id, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("decided_by", sa.String(20), nullable=True),
    sa.Column("policy_id", Id, nullable=True),
    sa.Column("policy_version", sa.Integer, nullable=True),
    sa.Column("approvers", JSONDoc, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("session_id", "native_id"),
    sa.Index(None, "status", "expires_at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key_id", Id, primary_key=True),
    sa.Column("scope", sa.String(100), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("resource_id", Id, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# -- governance ------------------------------------------------------------------------------

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("scope_kind", sa.String(20), nullable=False),
    sa.Column("scope_id", Id, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("created_by", Id, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "org_id", "created_at", "id"),
)

# Every version of every policy, append-only: a decision names (policy id, version), and this is
# where that exact rule can be read back after later edits.
policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("policy_id", Id, primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("body", JSONDoc, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("changed_by", Id, nullable=True),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("scope_kind", sa.String(20), nullable=False),
    sa.Column("scope_id", Id, nullable=False),
    sa.Column("limit_micros", sa.BigInteger, nullable=False),
    sa.Column("period", sa.String(20), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("soft_percent", sa.Integer, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_by", Id, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "scope_kind", "scope_id", "period"),
)

model_prices = sa.Table(
    "model_prices",
    metadata,
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("input_micros", sa.BigInteger, nullable=False),
    sa.Column("output_micros", sa.BigInteger, nullable=False),
    sa.Column("cache_read_micros", sa.BigInteger, nullable=True),
    sa.Column("cache_write_micros", sa.BigInteger, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# One row: bumped by every change that can alter a decision (policy, budget, price, key revoked,
# agent paused), so each replica knows its compiled snapshot is stale.
governance_epoch = sa.Table(
    "governance_epoch",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)

# The budget ledger: per account (a budget, or a key's request-rate counter) and window.
ledger_windows = sa.Table(
    "ledger_windows",
    metadata,
    sa.Column("account", sa.String(120), primary_key=True),
    sa.Column("window_start", UTCDateTime, primary_key=True),
    sa.Column("spent", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("soft_alerted", sa.Boolean, nullable=False),
)

# Slices of a window's room leased by one replica; expired holds are swept back into the window.
ledger_holds = sa.Table(
    "ledger_holds",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("account", sa.String(120), nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index(None, "holder"),
    sa.Index(None, "expires_at"),
)

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
