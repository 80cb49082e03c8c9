"""Governance tables: policies and their versions, budgets, prices, the epoch, the ledger."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.metadata import Id, metadata
from corral.store.types import JSONDoc, UTCDateTime

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
