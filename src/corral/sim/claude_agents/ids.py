"""Anthropic-shaped identifiers (``sesn_011C…``, ``sevt_011C…``) and timestamps.

Ids sort in creation order within a process (a shared counter feeds them), which keeps event
listings and recorded traces readable; the tail is random so two simulators never collide.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from datetime import UTC, datetime

__all__ = ["new_id", "now_iso"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_counter = itertools.count(1)


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    with _lock:
        seq = next(_counter)
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{prefix}_011C{_base62(seq, 10)}{tail}"


def now_iso() -> str:
    """RFC 3339 with microseconds and ``Z``: lexical order is time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
