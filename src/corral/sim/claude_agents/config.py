"""Settings of the simulated Claude Managed Agents API.

The defaults describe the service as the official ``anthropic`` SDK (2.14.0 and 1.17) talks to
it; tests shorten the retry timers. The model of every agent is the mock LLM at ``llm_url``
(OpenAI chat completions), whatever model name the agent was created with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BETA", "Price", "SimConfig"]

#: The beta every Managed Agents request must name in ``anthropic-beta``.
BETA = "managed-agents-2026-04-01"


@dataclass(frozen=True)
class Price:
    """USD per million tokens, used for ``session.usage.list_cost`` (minor units, cents)."""

    input: float = 3.0
    output: float = 15.0


@dataclass(frozen=True)
class SimConfig:
    # Base URL of the OpenAI-compatible upstream, without the ``/v1`` suffix.
    llm_url: str = "http://127.0.0.1:4010"
    llm_api_key: str = "sim-key"
    llm_model: str = "mock-model"
    llm_timeout: float = 60.0
    #: API keys the simulator accepts (``x-api-key`` or ``Authorization: Bearer``); None or
    #: empty accepts any non-empty key, but a request without one is still a 401.
    api_keys: frozenset[str] | None = None
    price: Price = field(default_factory=Price)
    #: Retryable upstream failures (429, 5xx, unreachable) are retried this many times, with a
    #: ``session.error`` carrying ``retry_status: retrying`` before each retry.
    max_retries: int = 2
    retry_delay: float = 0.5
    #: Seconds between ``event: ping`` keepalives on an idle stream.
    ping_interval: float = 15.0
    #: Files the built-in ``read``/``glob``/``grep`` tools see (relative paths); other paths
    #: read as deterministic synthetic content. Nothing touches the real file system.
    files: dict[str, str] = field(default_factory=dict)
