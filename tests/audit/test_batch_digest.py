"""The digest sealing a batch of call rows: the fast encoder writes exactly the canonical bytes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from corral.audit import batches
from corral.audit.canonical import canonical
from corral.domain.gateway import CallOutcome


def _row(i: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(batches.SEALED)
    row |= {"id": f"call_{i:04d}", "org_id": "org_a", "api": "openai.chat", "model": "gpt",
            "stream": i % 2 == 0, "status": 200, "outcome": CallOutcome.OK, "input_tokens": i,
            "output_tokens": 2 * i, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "cost_micros": 7 * i, "estimated": False, "trace_id": f"{i:032x}",
            "started_at": datetime(2026, 11, 26, 4, 0, i % 60, 123456, tzinfo=UTC)}  # fmt: skip
    return row | changes


def _reference(rows: list[dict[str, Any]]) -> str:
    """The general path only: every value through ``clean``, then the JCS encoder."""
    ordered = sorted(rows, key=lambda r: r["id"])
    body = [[batches._value(r[name]) for name in batches.SEALED] for r in ordered]
    return hashlib.sha256(canonical(body)).hexdigest()


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"model": "modèle-é"},  # non-ASCII: still the C encoder, UTF-8 bytes
        {"code": "bad \ud800 surrogate"},  # a lone surrogate: the general path replaces it
        {"cost_micros": 2**60},  # beyond JSON's safe integers: written as a string
        {"outcome": "ok"},  # a plain string where an enum is usual (rows read back)
        {"started_at": datetime(2026, 11, 26, 5, 0, tzinfo=timezone(timedelta(hours=1)))},
        {"code": 'quote " and \\ and \n control \x01'},
    ],
)
def test_the_digest_is_the_canonical_one(odd: dict[str, Any]) -> None:
    rows = [_row(i) for i in range(30, 0, -1)] + [_row(99, **odd)]
    expected = _reference(rows)
    assert batches.digest(rows) == expected
    assert batches.digest_of([SimpleNamespace(**r) for r in rows]) == expected


def test_any_change_changes_the_digest() -> None:
    rows = [_row(i) for i in range(5)]
    sealed = batches.digest(rows)
    assert batches.digest(list(reversed(rows))) == sealed  # order of arrival does not matter
    for name in ("cost_micros", "model", "trace_id", "estimated"):
        changed = [*rows[:2], _row(2, **{name: rows[2][name] or 1}), *rows[3:]]
        if changed[2][name] == rows[2][name]:
            changed[2][name] = "x"
        assert batches.digest(changed) != sealed, name
    assert batches.digest(rows[:-1]) != sealed
