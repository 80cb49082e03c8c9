"""OpenCode-shaped identifiers: ``<prefix>_`` + 12 hex digits of time + 14 base62 chars.

The hex part encodes ``millis * 4096 + counter`` in 48 bits, so ids made in the same
millisecond still sort in creation order. Session ids invert those bits, which is why on
the real server a *newer* session id sorts *before* an older one (``GET /session`` can list
newest first by id); message, part, permission and event ids ascend.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["ascending", "descending", "now_ms"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MASK48 = (1 << 48) - 1


class _Clock:
    """Millisecond clock plus a per-millisecond counter, shared by all prefixes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # several simulators may share one process
        self._last = 0
        self._counter = 0

    def tick(self) -> int:
        with self._lock:
            millis = now_ms()
            if millis <= self._last:
                millis = self._last  # never go backwards, even if the wall clock does
            else:
                self._last, self._counter = millis, 0
            self._counter += 1
            return millis * 0x1000 + self._counter


_clock = _Clock()


def now_ms() -> int:
    """Epoch milliseconds, the unit of every ``time`` field in OpenCode."""
    return time.time_ns() // 1_000_000


def _suffix() -> str:
    # One read of the OS's randomness, not one per character: ids are made for every event a
    # simulator streams. (Taking each byte modulo 62 favours a few characters slightly;
    # 14 such characters still carry over 80 random bits.)
    return "".join(_BASE62[b % 62] for b in os.urandom(14))


def ascending(prefix: str) -> str:
    return f"{prefix}_{_clock.tick() & _MASK48:012x}{_suffix()}"


def descending(prefix: str) -> str:
    return f"{prefix}_{~_clock.tick() & _MASK48:012x}{_suffix()}"
