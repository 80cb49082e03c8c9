"""Runtime-side objects Corral needs before a session: one environment, one agent per version.

Both are found again after a Corral restart instead of being duplicated: the environment by
name (or taken from ``RuntimeTarget.config["environment_id"]``), an agent by the metadata Corral
stamps on it (``corral_agent_id`` + ``corral_agent_version``; the API cannot filter lists by
metadata, so the list is paged through once and the answer cached).

Agent settings come from the Corral agent: ``model`` (an ``anthropic/`` prefix is dropped),
``instructions`` -> ``system``, ``tools`` (names of built-in tools to enable; empty = the
whole toolset), and these ``metadata`` keys:

* ``claude_permission_policy``: ``always_allow`` (default) or ``always_ask`` for the toolset;
* ``claude_ask_tools``: built-in tool names that always ask (the rest follow the policy);
* ``claude_custom_tools``: ``[{name, description, input_schema}]`` client-side tools;
* ``claude_tools``: a raw ``tools`` array, used verbatim instead of all of the above.
"""

from __future__ import annotations

import asyncio
from typing import Any

from corral.runtimes.base import AgentSpec
from corral.runtimes.claude_agents.client import ClaudeAgentsClient

Json = dict[str, Any]

BUILTIN_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_ENVIRONMENT = "corral"


def _policy(name: str) -> Json:
    return {"type": name if name in ("always_allow", "always_ask") else "always_allow"}


def agent_tools(spec: AgentSpec, default_policy: str) -> list[Json]:
    meta = spec.metadata
    raw = meta.get("claude_tools")
    if isinstance(raw, list):
        return [t for t in raw if isinstance(t, dict)]
    policy = str(meta.get("claude_permission_policy") or default_policy)
    ask = {str(t) for t in meta.get("claude_ask_tools") or [] if isinstance(t, str)}
    enabled = [t for t in spec.tools if t in BUILTIN_TOOLS]
    configs: list[Json] = []
    for name in BUILTIN_TOOLS:
        config: Json = {"name": name}
        if spec.tools:
            config["enabled"] = name in enabled
        if name in ask:
            config["permission_policy"] = _policy("always_ask")
        if len(config) > 1:
            configs.append(config)
    toolset: Json = {
        "type": "agent_toolset_20260401",
        "default_config": {"enabled": not spec.tools, "permission_policy": _policy(policy)},
        "configs": configs,
    }
    tools = [toolset]
    for custom in meta.get("claude_custom_tools") or []:
        if isinstance(custom, dict) and isinstance(custom.get("name"), str):
            tools.append(
                {
                    "type": "custom",
                    "name": custom["name"],
                    "description": str(custom.get("description") or custom["name"]),
                    "input_schema": custom.get("input_schema")
                    or {"type": "object", "properties": {}},
                }
            )
    return tools


def agent_body(spec: AgentSpec, config: Json) -> Json:
    model = spec.model or config.get("default_model") or DEFAULT_MODEL
    body: Json = {
        "name": (spec.name or f"corral-{spec.agent_id}")[:200],
        "model": model.removeprefix("anthropic/"),
        "tools": agent_tools(spec, str(config.get("permission_policy") or "always_allow")),
        "metadata": {"corral_agent_id": spec.agent_id, "corral_agent_version": str(spec.version)},
    }
    if spec.instructions:
        body["system"] = spec.instructions
    return body


class Provisioner:
    def __init__(self, client: ClaudeAgentsClient, config: Json) -> None:
        self._client = client
        self._config = config
        self._lock = asyncio.Lock()
        self._environment: str | None = config.get("environment_id") or None
        self._agents: dict[tuple[str, int], Json] = {}

    async def environment(self) -> str:
        if self._environment is not None:
            return self._environment
        async with self._lock:
            if self._environment is None:
                name = str(self._config.get("environment_name") or DEFAULT_ENVIRONMENT)
                found = None
                async for env in self._client.pages("/v1/environments"):
                    if env.get("name") == name and not env.get("archived_at"):
                        found = env
                        break
                if found is None:
                    body = {
                        "name": name,
                        "config": {"type": "cloud", "networking": {"type": "unrestricted"}},
                        "metadata": {"created_by": "corral"},
                    }
                    found = await self._client.obj("POST", "/v1/environments", json_body=body)
                self._environment = str(found["id"])
            return self._environment

    def forget(self, spec: AgentSpec) -> None:
        """Drop cached ids (they were deleted on the service); the next call finds or creates."""
        self._agents.pop((spec.agent_id, spec.version), None)
        if not self._config.get("environment_id"):
            self._environment = None

    async def agent(self, spec: AgentSpec) -> Json:
        """The runtime agent for this Corral agent version: ``{"id", "version"}``."""
        key = (spec.agent_id, spec.version)
        if key in self._agents:
            return self._agents[key]
        async with self._lock:
            if key not in self._agents:
                self._agents[key] = await self._find_or_create(spec)
            return self._agents[key]

    async def _find_or_create(self, spec: AgentSpec) -> Json:
        wanted = {"corral_agent_id": spec.agent_id, "corral_agent_version": str(spec.version)}
        if spec.agent_id:
            async for agent in self._client.pages("/v1/agents"):
                meta = agent.get("metadata") or {}
                if all(meta.get(k) == v for k, v in wanted.items()):
                    return {"id": agent["id"], "version": agent.get("version")}
        created = await self._client.obj(
            "POST", "/v1/agents", json_body=agent_body(spec, self._config)
        )
        return {"id": created["id"], "version": created.get("version")}
