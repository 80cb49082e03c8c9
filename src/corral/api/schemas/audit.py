"""The audit trail: records as they were hashed (see docs/audit.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from corral.api.schemas.common import Output


class AuditRecord(Output):
    seq: int = Field(description="Position in the chain: 1, 2, 3 ... with no gaps.")
    ts: str = Field(description="UTC, with microseconds, exactly as hashed.")
    org_id: str | None
    team_id: str | None = Field(description="The team the resource belongs to, if any.")
    actor_type: str = Field(description="'key', 'agent' (acting for a key) or 'system'.")
    key_id: str | None
    user_id: str | None
    role: str | None
    action: str = Field(description="e.g. 'key.revoke', 'policy.update', 'tool.use'.")
    resource_type: str
    resource_id: str | None
    decision: str | None = Field(description="'allow', 'deny' or 'ask' when one was made.")
    policy_id: str | None
    policy_version: int | None
    outcome: str = Field(description="'success', 'denied', 'pending' or 'error'.")
    request_id: str | None
    trace_id: str | None
    details: dict[str, Any] | str
    prev_hash: str = Field(description="The previous record's hash (64 zeros for seq 1).")
    hash: str = Field(description="SHA-256 of the RFC 8785 canonical record without 'hash'.")
