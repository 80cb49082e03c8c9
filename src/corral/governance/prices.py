"""Model prices and cost math, in integer micro-dollars.

Prices are micro-USD per million tokens, so a cost is ``tokens * price / 1e6`` rounded *up*: a
budget never undercounts a call by a rounding error. Admins' prices (stored rows) override the
shipped table; a model found in neither is *unpriced*, which a budgeted caller is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str
    input_micros: int  # per million input tokens
    output_micros: int  # per million output tokens
    cache_read_micros: int | None = None
    cache_write_micros: int | None = None


def _p(model: str, inp: float, out: float, cache_read: float | None = None) -> ModelPrice:
    read = None if cache_read is None else round(cache_read * _MTOK)
    return ModelPrice(model, round(inp * _MTOK), round(out * _MTOK), read)


#: List prices (USD per million tokens) of common models; admins override or add through the API.
SHIPPED_PRICES: tuple[ModelPrice, ...] = (
    _p("gpt-4o", 2.50, 10.00, 1.25),
    _p("gpt-4o-mini", 0.15, 0.60, 0.075),
    _p("gpt-4.1", 2.00, 8.00, 0.50),
    _p("gpt-4.1-mini", 0.40, 1.60, 0.10),
    _p("gpt-4.1-nano", 0.10, 0.40, 0.025),
    _p("gpt-5", 1.25, 10.00, 0.125),
    _p("gpt-5-mini", 0.25, 2.00, 0.025),
    _p("gpt-5-nano", 0.05, 0.40, 0.005),
    _p("o3", 2.00, 8.00, 0.50),
    _p("o4-mini", 1.10, 4.40, 0.275),
    _p("claude-opus-4-1", 15.00, 75.00, 1.50),
    _p("claude-opus-4", 15.00, 75.00, 1.50),
    _p("claude-sonnet-4-5", 3.00, 15.00, 0.30),
    _p("claude-sonnet-4", 3.00, 15.00, 0.30),
    _p("claude-haiku-4-5", 1.00, 5.00, 0.10),
    _p("claude-3-5-haiku", 0.80, 4.00, 0.08),
    _p("gemini-2.5-pro", 1.25, 10.00, 0.31),
    _p("gemini-2.5-flash", 0.30, 2.50, 0.075),
)

# "anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "gpt-4o-2024-08-06", "...-latest"
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def candidates(model: str) -> list[str]:
    """Names to try, most specific first: as given, without provider prefix, without snapshot."""
    names = [model]
    bare = model.rsplit("/", 1)[-1]
    for name in (bare, _SNAPSHOT_SUFFIX.sub("", bare)):
        if name not in names:
            names.append(name)
    return names


class PriceTable:
    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        self._by_model = {p.model: p for p in prices}

    def __len__(self) -> int:
        return len(self._by_model)

    def lookup(self, model: str) -> ModelPrice | None:
        for name in candidates(model):
            price = self._by_model.get(name)
            if price is not None:
                return price
        return None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cost_micros(
    price: ModelPrice,
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> int:
    """What a call cost; cached tokens at their own price where one is set, else as input."""
    read_price = price.input_micros if price.cache_read_micros is None else price.cache_read_micros
    write_price = (
        price.input_micros if price.cache_write_micros is None else price.cache_write_micros
    )
    total = (
        input_tokens * price.input_micros
        + output_tokens * price.output_micros
        + cache_read_tokens * read_price
        + cache_write_tokens * write_price
    )
    return _ceil_div(total, _MTOK)


def worst_case_micros(price: ModelPrice, prompt_tokens: int, max_output_tokens: int) -> int:
    """The most a call can cost: every prompt token uncached, every allowed output token used."""
    return cost_micros(price, prompt_tokens, max_output_tokens)
