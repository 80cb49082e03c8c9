"""Settings of the simulated ``opencode serve``.

The defaults describe the profile observed on the real OpenCode 1.18.33 (see
``research/real-peers.md``): heartbeat every 10 s, ``bash`` asks for permission, prices
of 1.0/2.0 USD per million tokens. Tests shorten the timers; nothing else should need to
change for an adapter written against the real server to work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["OPENCODE_VERSION", "Price", "SimConfig"]

OPENCODE_VERSION = "1.18.33"


@dataclass(frozen=True)
class Price:
    """USD per million tokens, as in ``opencode.json`` ``models.<id>.cost``."""

    input: float = 1.0
    output: float = 2.0
    cache_read: float = 0.0
    cache_write: float = 0.0


def _default_permission() -> dict[str, str]:
    # The conformance profile: the real server was configured with exactly this rule.
    return {"bash": "ask"}


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator can be told; all fields have test-friendly defaults."""

    # Base URL of the OpenAI-compatible upstream, without the ``/v1`` suffix.
    llm_url: str = "http://127.0.0.1:4010"
    llm_api_key: str = "sim-key"
    provider_id: str = "mock"
    model_id: str = "mock-model"
    # HTTP Basic auth is enabled only when a password is set, as with
    # OPENCODE_SERVER_PASSWORD / OPENCODE_SERVER_USERNAME.
    password: str | None = None
    username: str = "opencode"
    version: str = OPENCODE_VERSION
    directory: str = "/tmp/opencode-sim"
    heartbeat_interval: float = 10.0
    cost: Price = field(default_factory=Price)
    # Tool name (or permission name such as ``edit``) -> "allow" | "ask" | "deny".
    permission: dict[str, str] = field(default_factory=_default_permission)
    # Retry of an unreachable upstream: the real server waits ~2.4, 4.6, 8.8, 19 s...
    retry_initial_delay: float = 2.0
    retry_factor: float = 2.0
    max_retries: int = 4
    llm_timeout: float = 60.0
    # A session created without a title gets one from an extra tool-less LLM call.
    generate_titles: bool = True
    # The first prompt of a process emits a burst of instance-wide frames (plugins, catalog).
    startup_burst: bool = True
    # A virtual file system for ``read``: relative paths resolve against ``directory``.
    # None means any path reads as deterministic synthetic content.
    files: dict[str, str] | None = None
    # Tool name -> error message, to reproduce a tool failing in the real environment
    # (the recorded ``glob`` failed with "ripgrep execution failed": no ripgrep offline).
    tool_errors: dict[str, str] = field(default_factory=dict)
    # Quirk switch: publish no turn-ending frames (no idle status, no session.idle, no
    # completed message) so clients have to fall back on an inactivity watchdog.
    silence: bool = False
    # Crash-test knob (not an observed quirk): ``POST /session/{id}/prompt_async`` answers its
    # 204 only after this many seconds, so a client can die between sending a prompt and
    # hearing it was accepted. ``prompt_accept`` says when the prompt is taken: "before" the
    # delay (the turn starts at once, only the answer is late), or "after" it, and then only
    # if the client is still connected (a client that hung up during the delay sent nothing).
    prompt_delay: float = 0.0
    prompt_accept: Literal["before", "after"] = "before"
