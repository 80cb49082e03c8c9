"""Canonical JSON (RFC 8785) and record hashing: the same record always hashes the same."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest

from corral.audit.canonical import GENESIS, canonical, clean, format_ts, parse_ts, record_hash
from corral.audit.record import AuditEntry, from_row, seal, to_row


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Numbers as ECMAScript prints them (RFC 8785 §3.2.2.3 and Appendix B).
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e-7, "1e-7"),
        (1e21, "1e+21"),
        (1e30, "1e+30"),
        (333333333.3333333, "333333333.3333333"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53) + 1, "-9007199254740991"),
        (5e-324, "5e-324"),
        # Strings: UTF-8 as is, only the mandatory escapes, control characters as \u00xx.
        ("\u20ac$\u000f\nA'\u0042\u0022\u005c\\\"/", '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'),
        ("日本語", '"日本語"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\u2028\u2029", '"\u2028\u2029"'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        # Literals and structure: no whitespace.
        ([None, True, False], "[null,true,false]"),
        ({"b": [], "a": {}}, '{"a":{},"b":[]}'),
    ],
)
def test_canonical_form(value: Any, expected: str) -> None:
    assert canonical(value).decode() == expected


def test_keys_sort_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3's example: the emoji (a surrogate pair, 0xD83D...) sorts before U+FB33.
    value = {
        "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet",
        "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }  # fmt: skip
    keys = list(json.loads(canonical(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


class Color(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ok", "ok"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("pair \ud83d\ude00", "pair \U0001f600"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (2**53, str(2**53)),
        (-(2**60), str(-(2**60))),
        (1e20, "1e+20"),  # integral but beyond 2**53: kept as text, not as wrong digits
        (3.0, 3),
        (True, True),
        (Color.RED, "red"),
        ((1, "a"), [1, "a"]),
        ({1: {2: (3,)}}, {"1": {"2": [3]}}),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (object, str(object)),
    ],
)
def test_clean_makes_anything_canonicalizable(value: Any, expected: Any) -> None:
    cleaned = clean(value)
    assert cleaned == expected
    canonical(cleaned)  # never raises


def test_clean_values_survive_a_json_round_trip() -> None:
    value = clean({"f": 0.1, "big": 2**70, "huge": 1e300, "tiny": 1e-300, "s": "\ud800", "n": -0.0})
    assert canonical(json.loads(canonical(value))) == canonical(value)


def test_timestamps_are_fixed_width_utc() -> None:
    at = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    text = format_ts(at)
    assert text == "2026-05-01T10:00:00.000000Z"
    assert parse_ts(text) == at


def _entry(**overrides: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "action": "key.revoke", "resource_type": "key", "resource_id": "key_1",
        "org_id": "org_1", "actor_type": "key", "key_id": "key_0", "user_id": "usr_0",
        "role": "admin", "details": {"owner": "usr_1", "note": "é \ud800"},
    }  # fmt: skip
    return AuditEntry(**{**values, **overrides})


def test_record_hash_covers_everything_but_itself() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    record = seal(_entry(), 1, GENESIS, at)
    body = {k: v for k, v in record.items() if k != "hash"}
    assert record["hash"] == hashlib.sha256(canonical(body)).hexdigest() == record_hash(record)
    assert record["details"]["note"] == "é \ufffd"  # cleaned before hashing
    for field in ("prev_hash", "seq", "ts", "action", "details", "role", "trace_id"):
        changed = {**record, field: "x"}
        assert record_hash(changed) != record["hash"], field


def test_columns_are_cut_to_size_before_hashing() -> None:
    record = seal(_entry(resource_id="r" * 500, action="a\x00b"), 1, GENESIS, datetime.now(UTC))
    assert len(record["resource_id"]) == 200
    assert record["action"] == "a\ufffdb"
    assert record_hash(record) == record["hash"]


def test_rows_round_trip_to_the_same_record() -> None:
    record = seal(_entry(details={"x": 1.5, "y": [1, "two"]}), 7, "ab" * 32, datetime.now(UTC))
    row = to_row(record)
    assert isinstance(row["details"], str) and isinstance(row["ts"], datetime)
    assert from_row(row) == record
