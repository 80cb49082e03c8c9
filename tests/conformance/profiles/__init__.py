"""Runtime profiles: what the shared conformance suite needs to know about each runtime.

Every module in this package defines ``PROFILES: list[Profile]``; the suite
(``tests/conformance/test_conformance.py``) discovers them and runs every scenario against every
profile, skipping (with the reason) what a runtime's capability flags say it cannot do. A
profile names a pytest fixture (defined in a ``tests/plugins/<kind>.py`` module, which the root
conftest loads automatically) that yields the :class:`Runtime` to register, so starting a real
server or a simulator stays with the runtime that needs it.

The runtime's model is always the mock LLM (:mod:`corral.sim.mock_llm`, fixture
``mock_llm_url``): prompts script it, so the same scenario means the same thing everywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Runtime:
    """What the suite registers with ``POST /v1/runtimes`` (``base_url`` may be rewritten to
    go through a fault-injecting proxy)."""

    kind: str
    base_url: str
    config: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, Any] | None = None


@dataclass(frozen=True)
class Prompts:
    """Prompts that make the runtime do one thing each (mock LLM directives, or the test
    agent's own conventions where the runtime is an agent we wrote, like the A2A test agent)."""

    text: str  # a plain reply, streamed in several deltas
    text_reply: str  # a substring the final message.completed text must contain
    tool: str  # one tool call that runs without asking anyone and succeeds
    tool_name: str  # that tool's name as tool.call reports it
    slow: str  # a reply that streams for >= 4 s (cancel mid-turn, dropped stream)
    error: str  # the turn fails (the model call answers 400)
    approval: str | None = None  # a tool call the runtime asks a human about; None: no approvals
    approval_tool: str | None = None
    client_input: str | None = None  # the turn waits for the caller (input.requested)
    slow_reply: str = ""  # a substring of the slow prompt's final text ("" = any text)


@dataclass(frozen=True)
class Profile:
    id: str  # e.g. "opencode-sim", "hermes-real": the pytest parameter id
    kind: str  # the runtime kind registered with Corral
    oracle: str  # what the suite ran against, for the docs table: "real hermes-agent 0.19.0"
    fixture: str  # name of a pytest fixture yielding a Runtime
    prompts: Prompts
    agent: dict[str, Any] = field(default_factory=dict)  # extra POST /v1/agents fields
    #: Streams go through an HTTP proxy that can drop them and inject garbage frames; False
    #: for runtimes whose event stream is not plain HTTP (then the adapter's own tests cover it).
    proxied_faults: bool = True
    slow: bool = False  # real server too heavy for `make test`: runs in `make test-slow`


def all_profiles() -> list[Profile]:
    found: list[Profile] = []
    for module in pkgutil.iter_modules(__path__):
        found.extend(importlib.import_module(f"{__name__}.{module.name}").PROFILES)
    return sorted(found, key=lambda p: p.id)
