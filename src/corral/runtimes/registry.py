"""Runtime kinds -> adapter factories, imported lazily: one runtime's SDK never loads another's."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from corral.domain.errors import InvalidRequest
from corral.runtimes.base import Capabilities, RuntimeAdapter, RuntimeTarget

#: kind -> "module:factory". The factory takes a RuntimeTarget and returns a RuntimeAdapter.
_FACTORIES: dict[str, str] = {
    "opencode": "corral.runtimes.opencode.adapter:OpenCodeAdapter",
    "a2a": "corral.runtimes.a2a.adapter:A2AAdapter",
    "langgraph": "corral.runtimes.langgraph.adapter:LangGraphAdapter",
    "hermes": "corral.runtimes.hermes.adapter:HermesAdapter",
    "claude_agents": "corral.runtimes.claude_agents.adapter:ClaudeAgentsAdapter",
    "cursor": "corral.runtimes.cursor.adapter:CursorAdapter",
    "openclaw": "corral.runtimes.openclaw.adapter:OpenClawAdapter",
}


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def _factory(kind: str) -> Callable[[RuntimeTarget], RuntimeAdapter]:
    try:
        spec = _FACTORIES[kind]
    except KeyError:
        raise InvalidRequest(
            f"unknown runtime kind {kind!r}; known kinds: {', '.join(kinds())}",
            code="unknown_runtime_kind",
        ) from None
    module_name, attr = spec.split(":")
    factory: Callable[[RuntimeTarget], RuntimeAdapter] = getattr(
        importlib.import_module(module_name), attr
    )
    return factory


def check_kind(kind: str) -> None:
    _factory(kind)


def build(target: RuntimeTarget) -> RuntimeAdapter:
    return _factory(target.kind)(target)


def capabilities(kind: str) -> Capabilities:
    caps: Capabilities = getattr(_factory(kind), "capabilities")  # noqa: B009 - class attribute
    return caps
