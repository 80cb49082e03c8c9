"""Model calls are audited in batches: one chained record seals many call rows.

A gateway handles thousands of calls a second; hash-chaining each one serially would make the
audit trail its bottleneck. Instead each call is a row in ``gateway_calls`` (who, which model,
outcome, tokens, cost, time, trace), and every batch the gateway commits is sealed by one
``model.calls`` audit record, in the same transaction, whose ``digest`` is the SHA-256 of the
batch's rows in canonical form. Editing, deleting or adding a call row changes its batch's
digest, so ``corral audit verify`` finds it and names the sealing record. Refused calls are
also audited one by one, as governance decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from corral.audit.canonical import canonical, clean

ACTION = "model.calls"
RESOURCE = "gateway_batch"

#: The columns of a call row that its batch digest covers (the row as the gateway wrote it).
SEALED = ("id", "org_id", "team_id", "agent_id", "user_id", "key_id", "session_id", "api",
          "model", "upstream_id", "upstream_model", "stream", "status", "outcome", "code",
          "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
          "cost_micros", "estimated", "started_at", "trace_id")  # fmt: skip


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    return clean(value)


def digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the rows' sealed columns, in id order, as canonical JSON."""
    ordered = sorted(rows, key=lambda r: str(r["id"]))
    body = [[_value(row[name]) for name in SEALED] for row in ordered]
    return hashlib.sha256(canonical(body)).hexdigest()
