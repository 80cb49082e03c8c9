"""All tables, as SQLAlchemy Core metadata. Alembic migrations are written against this.

The core tables are here; governance and observability tables live in their own modules,
registered on the same metadata and re-exported below, so ``corral.store.tables`` names them all.
"""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.gateway_tables import gateway_calls, gateway_models, gateway_upstreams
from corral.store.governance_tables import (
    budgets,
    governance_epoch,
    ledger_holds,
    ledger_windows,
    model_prices,
    policies,
    policy_versions,
)
from corral.store.metadata import Id, metadata
from corral.store.observability_tables import (
    audit_checkpoints,
    audit_head,
    audit_keys,
    audit_records,
    spans,
)
from corral.store.types import JSONDoc, UTCDateTime

__all__ = [
    "Id",
    "agent_versions",
    "agents",
    "api_keys",
    "approvals",
    "audit_checkpoints",
    "audit_head",
    "audit_keys",
    "audit_records",
    "budgets",
    "events",
    "gateway_calls",
    "gateway_models",
    "gateway_upstreams",
    "governance_epoch",
    "idempotency_keys",
    "inputs",
    "ledger_holds",
    "ledger_windows",
    "metadata",
    "model_prices",
    "orgs",
    "policies",
    "policy_versions",
    "runtimes",
    "secrets",
    "sessions",
    "spans",
    "teams",
    "turns",
    "users",
]  # fmt: skip

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
    # A key Corral minted for one session (handed to its runtime for gateway calls): every
    # model call made with it is attributed to that session and agent.
    sa.Column("session_id", Id, nullable=True),
    sa.Column("agent_id", Id, nullable=True),
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
