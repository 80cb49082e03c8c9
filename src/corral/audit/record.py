"""What an audit record holds, and how an entry becomes a sealed (hashed, linked) record.

A record is a flat JSON object (the form that is hashed, exported and verified)::

    seq, ts, org_id, team_id,                    where and when; team_id scopes who may read it
    actor_type, key_id, user_id, role,           who: a key, an agent acting for one, or Corral
    action, resource_type, resource_id,          what, on which resource
    decision, policy_id, policy_version,         the governance decision, if one was made
    outcome, request_id, trace_id, details,      what came of it, correlation, the specifics
    prev_hash, hash                              the chain

Stored rows have the same columns; only ``ts`` (a timestamp column) and ``details`` (canonical
JSON text, so the database never rewrites it) change form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from corral.audit import context
from corral.audit.canonical import canonical, clean, format_ts, parse_ts, record_hash
from corral.audit.context import Actor


class ActorType(StrEnum):
    KEY = "key"  # a caller with an API key
    AGENT = "agent"  # an agent in a session, acting for the key that started it
    SYSTEM = "system"  # Corral itself: bootstrap, expiry, answers a policy gave


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    PENDING = "pending"  # a human was asked
    ERROR = "error"


#: Column sizes (tables.py); longer values are cut before hashing, so stored == hashed.
_SIZES = {
    "org_id": 40, "team_id": 40, "actor_type": 20, "key_id": 40, "user_id": 40, "role": 20,
    "action": 40, "resource_type": 40, "resource_id": 200, "decision": 10, "policy_id": 40,
    "outcome": 20, "request_id": 100, "trace_id": 64,
}  # fmt: skip
FIELDS = (
    "seq", "ts", "org_id", "team_id", "actor_type", "key_id", "user_id", "role", "action",
    "resource_type", "resource_id", "decision", "policy_id", "policy_version", "outcome",
    "request_id", "trace_id", "details", "prev_hash", "hash",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing to record; the log gives it its place in the chain."""

    action: str
    resource_type: str
    resource_id: str | None
    org_id: str | None
    team_id: str | None = None
    actor_type: str = ActorType.SYSTEM.value
    key_id: str | None = None
    user_id: str | None = None
    role: str | None = None
    decision: str | None = None
    policy_id: str | None = None
    policy_version: int | None = None
    outcome: str = AuditOutcome.SUCCESS.value
    details: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    trace_id: str | None = None


def entry(
    action: str,
    resource: tuple[str, str | None],
    *,
    actor: Actor | None,
    org_id: str | None,
    team_id: str | None = None,
    actor_type: ActorType | None = None,
    decision: str | None = None,
    policy: tuple[str | None, int | None] = (None, None),
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """An entry by ``actor`` (``None``: Corral itself) in the current request's context."""
    kind = actor_type or (ActorType.SYSTEM if actor is None else ActorType.KEY)
    return AuditEntry(
        action=action, resource_type=resource[0], resource_id=resource[1], org_id=org_id,
        team_id=team_id, actor_type=kind.value,
        key_id=actor.key_id if actor else None, user_id=actor.user_id if actor else None,
        role=str(actor.role) if actor and actor.role else None,
        decision=decision, policy_id=policy[0], policy_version=policy[1], outcome=outcome.value,
        details=details or {}, request_id=context.request_id(), trace_id=context.trace_id(),
    )  # fmt: skip


def _column(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text: str = clean(value).replace("\x00", "\ufffd")  # PostgreSQL text refuses NUL
    return text[: _SIZES.get(name, len(text))]


def seal(item: AuditEntry, seq: int, prev_hash: str, at: datetime) -> dict[str, Any]:
    """The record ``item`` becomes at position ``seq`` after ``prev_hash``, hash included."""
    record: dict[str, Any] = {"seq": seq, "ts": format_ts(at)}
    for name in FIELDS[2:-3]:
        record[name] = _column(name, getattr(item, name))
    record["details"] = clean(dict(item.details))
    record["prev_hash"] = prev_hash
    record["hash"] = record_hash(record)
    return record


def to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(record)
    row["ts"] = parse_ts(record["ts"])
    row["details"] = canonical(record["details"]).decode()
    return row


def from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    record = {name: row[name] for name in FIELDS}
    record["ts"] = format_ts(row["ts"])
    try:
        record["details"] = json.loads(row["details"])
    except ValueError:  # edited by hand: kept as text, so the hash check reports it
        record["details"] = row["details"]
    return record
