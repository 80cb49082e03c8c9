"""Opaque, prefixed, time-sortable identifiers (``agt_...``, ``ses_...``).

An id is ``<prefix>_`` followed by 26 Crockford base32 characters: 48 bits of milliseconds since the
epoch, then 80 random bits. Sorting ids sorts by creation time, which keeps index locality and lets
cursor pagination break ties deterministically.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

PREFIXES = {
    "org": "org",
    "team": "team",
    "user": "usr",
    "key": "key",
    "runtime": "rt",
    "agent": "agt",
    "session": "ses",
    "turn": "trn",
    "input": "inp",
    "approval": "apr",
    "secret": "sec",
    "policy": "pol",
    "budget": "bud",
    "hold": "hld",
    "reservation": "rsv",
    "upstream": "ups",
    "model": "mdl",
    "call": "call",
    "batch": "bat",
}


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: str) -> str:
    """Return a fresh id for ``kind`` (a key of :data:`PREFIXES`)."""
    prefix = PREFIXES[kind]
    millis = int(time.time() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode((millis << 80) | rand, 26)}"


def has_prefix(value: str, kind: str) -> bool:
    return value.startswith(PREFIXES[kind] + "_")
