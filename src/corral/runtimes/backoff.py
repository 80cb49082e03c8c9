"""Reconnect pacing shared by adapters: exponential, capped, with jitter so replicas that lost
the same runtime at the same moment do not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.2, maximum: float = 5.0, factor: float = 2.0) -> None:
        self._initial, self._maximum, self._factor = initial, maximum, factor
        self._next = initial

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the one after."""
        delay = self._next
        self._next = min(self._next * self._factor, self._maximum)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        """After a success: the next failure starts over from the initial delay."""
        self._next = self._initial
