"""Settings of the simulated OpenClaw Gateway.

Defaults describe what was observed on openclaw 2026.9.6 configured as in
``tests/plugins/openclaw.py`` (see ``research/real-peers.md``): protocol 4, token auth, agent
``main``, ``tools.exec.mode = "ask"`` (every exec asks a human), model ``mock/mock-model``
priced 1.0/2.0 USD per million tokens. Tests shorten the timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OPENCLAW_VERSION", "PROTOCOL_VERSION", "SimConfig"]

OPENCLAW_VERSION = "2026.9.6"
PROTOCOL_VERSION = 4


def _default_files() -> dict[str, str]:
    return {"hello.txt": "hello from the corral fixture\n"}


@dataclass(frozen=True)
class SimConfig:
    # Base URL of the OpenAI-compatible upstream, without the ``/v1`` suffix.
    llm_url: str = "http://127.0.0.1:4010"
    llm_api_key: str = "sim-key"
    provider: str = "mock"
    model: str = "mock-model"
    # Shared gateway token (``gateway.auth.mode = "token"``); None means ``auth.mode = "none"``.
    token: str | None = "sim-token"
    agents: tuple[str, ...] = ("main",)
    version: str = OPENCLAW_VERSION
    workspace: str = "/tmp/openclaw-sim/workspace"
    # USD per million tokens.
    price_input: float = 1.0
    price_output: float = 2.0
    # ``tools.exec.mode = "ask"``: every exec waits for an operator with approval rights; with
    # no such client connected the gateway denies it at once ("Headless runs cannot wait").
    exec_ask: bool = True
    approval_ttl_s: float = 1800.0
    # The real gateway retries a failed model call (even a 400) 8 times over ~60 s before the
    # run fails; tests keep the count and delays small.
    model_retries: int = 8
    retry_delay_s: float = 1.0
    # Chat deltas are coalesced: at most one ``chat`` delta per this many seconds.
    delta_throttle_s: float = 0.15
    tick_interval_s: float = 30.0
    # The OpenAI-compatible HTTP endpoints are disabled by default (404), as on the real one.
    http_chat_completions: bool = False
    files: dict[str, str] = field(default_factory=_default_files)
