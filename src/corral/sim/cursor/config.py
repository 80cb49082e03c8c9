"""Settings of the simulated Cursor Cloud Agents API.

Defaults follow what ``@cursor/sdk`` 1.0.32 expects from ``api.cursor.com`` (see
``research/runtimes.md`` §3 and ``research/real-peers.md``). Tests shorten the timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SimConfig"]


def _default_models() -> list[dict[str, object]]:
    # ``GET /v1/models`` items; the SDK accepts an id or any alias of one.
    return [{"id": "mock-model", "aliases": ["default", "composer-1"]}]


@dataclass(frozen=True)
class SimConfig:
    # Base URL of the OpenAI-compatible upstream, without the ``/v1`` suffix.
    llm_url: str = "http://127.0.0.1:4010"
    llm_api_key: str = "sim-key"
    llm_model: str = "mock-model"
    llm_timeout: float = 60.0
    # Accepted API keys; None accepts any non-empty key (Bearer, or Basic with the key as user).
    api_keys: frozenset[str] | None = None
    models: list[dict[str, object]] = field(default_factory=_default_models)
    # Seconds a finished run's stream can still be read; then 410 ``stream_expired``.
    stream_retention_s: float = 300.0
    heartbeat_interval: float = 15.0
    # Seconds a new run stays CREATING before the agent starts (the VM boot, shortened).
    boot_delay_s: float = 0.05
    max_steps: int = 8
    system_prompt: str = "You are a Cursor cloud agent working in a repository."
    # The agent's virtual repository, read and written by its simulated tools.
    files: dict[str, str] = field(
        default_factory=lambda: {
            "README.md": "# scratch repository for the simulated Cursor agent\n",
            "hello.txt": "hello from the simulated cursor repo\n",
        }
    )
