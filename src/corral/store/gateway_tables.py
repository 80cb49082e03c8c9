"""Gateway tables: upstreams (where model calls go), model routes, and one row per model call."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.metadata import Id, metadata
from corral.store.types import JSONDoc, UTCDateTime

# An upstream's API key is sealed like a runtime credential (envelope encryption under the
# master key); the row holds only ciphertext.
gateway_upstreams = sa.Table(
    "gateway_upstreams",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("base_url", sa.String(2000), nullable=False),
    sa.Column("timeout_seconds", sa.Float, nullable=False),
    sa.Column("headers", JSONDoc, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=True),
    sa.Column("nonce", sa.LargeBinary, nullable=True),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=True),
    sa.Column("kek_version", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

# A model name callers use, the ordered upstream targets it goes to (the first that answers
# without 429/5xx/timeout wins), and the other names it answers to.
gateway_models = sa.Table(
    "gateway_models",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("targets", JSONDoc, nullable=False),
    sa.Column("aliases", JSONDoc, nullable=False),
    sa.Column("max_output_tokens", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

# One row per model call through the gateway, written in batches off the response path.
gateway_calls = sa.Table(
    "gateway_calls",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("org_id", Id, nullable=False),
    sa.Column("team_id", Id, nullable=True),
    sa.Column("agent_id", Id, nullable=True),
    sa.Column("user_id", Id, nullable=True),
    sa.Column("key_id", Id, nullable=True),
    sa.Column("session_id", Id, nullable=True),
    sa.Column("api", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("upstream_id", Id, nullable=True),
    sa.Column("upstream_model", sa.String(200), nullable=True),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("code", sa.String(60), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_micros", sa.BigInteger, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=True),
    # The commit that wrote the row; its ``model.calls`` audit record seals the batch.
    sa.Column("batch_id", sa.String(40), nullable=True),
    # The call's ``chat {model}`` span is built from its row when a trace is read.
    sa.Column("span_id", sa.String(16), nullable=True),
    sa.Column("parent_span_id", sa.String(16), nullable=True),
    sa.Column("max_tokens", sa.Integer, nullable=True),
    sa.Index(None, "org_id", "started_at"),
    sa.Index(None, "batch_id"),
    sa.Index(None, "session_id", "started_at"),
    sa.Index(None, "key_id", "started_at"),
)
