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
import json
import operator
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from corral.audit.canonical import SAFE_INT, canonical, clean

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


_SEALED_VALUES = operator.itemgetter(*SEALED)
_SEALED_ATTRS = operator.attrgetter(*SEALED)
_STARTED_AT = SEALED.index("started_at")
_OUTCOME = SEALED.index("outcome")
_COUNTS = tuple(SEALED.index(name) for name in (
    "status", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cost_micros"))  # fmt: skip
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the rows' sealed columns, in id order, as canonical JSON."""
    ordered = sorted(rows, key=lambda r: str(r["id"]))
    data = _plain_json([_SEALED_VALUES(row) for row in ordered])
    if data is None:
        data = canonical([[_value(row[name]) for name in SEALED] for row in ordered])
    return hashlib.sha256(data).hexdigest()


def digest_of(records: Iterable[Any]) -> str:
    """:func:`digest` of objects with the sealed columns as attributes (the gateway's call
    records, before they are rows), without making each one a dict first."""
    ordered = sorted(records, key=lambda r: str(r.id))
    data = _plain_json([_SEALED_ATTRS(r) for r in ordered])
    if data is None:
        return digest([dict(zip(SEALED, _SEALED_ATTRS(r), strict=True)) for r in ordered])
    return hashlib.sha256(data).hexdigest()


def _plain_json(rows: list[tuple[Any, ...]]) -> bytes | None:
    """The canonical bytes when every value is a string, safe integer, boolean or null (as call
    rows are): the C encoder then writes exactly the JCS bytes, several times faster than the
    general path. None when any value needs that path."""
    body = []
    for row in rows:
        values = list(row)
        if values[_STARTED_AT] is not None:
            values[_STARTED_AT] = _value(values[_STARTED_AT])
        if isinstance(values[_OUTCOME], Enum):
            values[_OUTCOME] = values[_OUTCOME].value
        if not _PLAIN_TYPES.issuperset(map(type, values)):
            return None
        for i in _COUNTS:  # the integer columns; JSON has no safe form for huge ones
            value = values[i]
            if type(value) is int and not -SAFE_INT <= value <= SAFE_INT:
                return None
        body.append(values)
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: the general path replaces it
        return None
