"""A record's one byte form and its hash: RFC 8785 (JCS) canonical JSON, then SHA-256.

Whatever produced a record (this process, another replica, a SIEM that parsed and re-serialized
an export) hashes it to the same value, because JCS fixes key order, number formatting and string
escaping. :func:`clean` first turns any value a caller hands over into JSON that JCS accepts, so an
odd input (a lone surrogate, a NaN, a huge integer) can never make an append fail.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import rfc8785

#: The ``prev_hash`` of the first record.
GENESIS = "0" * 64
#: JSON numbers are IEEE doubles: integers beyond this lose precision, so they become strings.
SAFE_INT = 2**53 - 1
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical(value: Any) -> bytes:
    """The RFC 8785 serialization of a (clean) JSON value.

    Most records hold only ASCII-keyed objects, strings, integers, booleans and nulls; for those
    the C ``json`` encoder with sorted keys writes exactly the JCS bytes (same key order, same
    minimal escapes), several times faster than the pure-Python JCS encoder, which serves the
    rest (floats, non-ASCII keys).
    """
    if _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -SAFE_INT <= value <= SAFE_INT
    if isinstance(value, str):
        return value.isascii() or _utf8(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False  # floats (JCS number formatting), anything else


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical record without its own ``hash`` (``prev_hash`` included)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def digest(value: Any) -> str:
    """SHA-256 (hex) of any clean JSON value, e.g. a policy body a record refers to."""
    return hashlib.sha256(canonical(clean(value))).hexdigest()


def format_ts(at: datetime) -> str:
    """UTC, always with microseconds: the same instant is always the same string."""
    return at.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(text: str) -> datetime:
    # fromisoformat reads exactly what format_ts writes (and is C, unlike strptime).
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _text(value: str) -> str:
    # A lone surrogate is not UTF-8 (JCS refuses it); a valid pair is joined, the rest replaced.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def clean(value: Any) -> Any:
    """``value`` as JSON that JCS accepts and that survives a round trip unchanged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return clean(value.value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return value if -SAFE_INT <= value <= SAFE_INT else str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or (value.is_integer() and abs(value) > SAFE_INT):
            # JCS writes a big integral double as digits, which would parse back as an
            # integer out of range: keep the text instead.
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime):
        return format_ts(value) if value.tzinfo else value.isoformat()
    if isinstance(value, Mapping):
        return {_text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [clean(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return _text(str(value))
