"""Money is kept as integer micro-dollars so sums never drift; USD floats only at the edges."""

from __future__ import annotations

MICROS_PER_USD = 1_000_000


def usd_to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def micros_to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD
