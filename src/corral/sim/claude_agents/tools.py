"""The agent toolset (``agent_toolset_20260401``) and custom tools, as the simulated agent sees
them: OpenAI function specs for the mock LLM, permission policies, and fake execution.

Built-in tools never touch the machine: ``bash`` understands ``echo`` (and answers anything
else with a fixed line), ``read``/``glob``/``grep`` look at ``SimConfig.files`` (other paths
read as synthetic text), ``write``/``edit`` update that in-memory copy, ``web_fetch``/
``web_search`` return canned text. Results are deterministic, so recorded traces are stable.
"""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

BUILTIN_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")


def _obj(required: list[str], **props: str) -> Json:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in props.items()},
        "required": required,
    }


_SPECS: dict[str, tuple[str, Json]] = {
    "bash": ("Run a bash command.", _obj([], command="string", restart="boolean")),
    "edit": (
        "Replace a string in a file.",
        _obj(
            ["file_path", "old_string", "new_string"],
            file_path="string",
            old_string="string",
            new_string="string",
            replace_all="boolean",
        ),
    ),
    "read": ("Read a file.", _obj(["file_path"], file_path="string", view_range="array")),
    "write": (
        "Write a file.",
        _obj(["file_path", "content"], file_path="string", content="string"),
    ),
    "glob": ("Find files by pattern.", _obj(["pattern"], pattern="string", path="string")),
    "grep": ("Search file contents.", _obj(["pattern"], pattern="string", path="string")),
    "web_fetch": ("Fetch a URL.", _obj(["url"], url="string")),
    "web_search": ("Search the web.", _obj(["query"], query="string")),
}


@dataclass(frozen=True)
class AgentTool:
    name: str
    kind: str  # "builtin" | "custom"
    policy: str  # "always_allow" | "always_ask" (custom tools: unused)
    description: str
    parameters: Json


def _policy(config: Any, fallback: str) -> str:
    if isinstance(config, dict):
        policy = config.get("permission_policy")
        if isinstance(policy, dict) and isinstance(policy.get("type"), str):
            return str(policy["type"])
    return fallback


def resolve_tools(tools: list[Json]) -> list[AgentTool]:
    """The tools an agent definition enables, with their effective permission policy."""
    out: list[AgentTool] = []
    for entry in tools:
        if entry.get("type") == "agent_toolset_20260401":
            default = entry.get("default_config") or {}
            enabled_default = default.get("enabled") is not False
            policy_default = _policy(default, "always_allow")
            overrides = {
                str(c.get("name") or c.get("type")): c
                for c in entry.get("configs") or []
                if isinstance(c, dict)
            }
            for name in BUILTIN_TOOLS:
                override = overrides.get(name, {})
                enabled = override.get("enabled")
                if not (enabled_default if enabled is None else enabled):
                    continue
                description, parameters = _SPECS[name]
                policy = _policy(override, policy_default)
                out.append(AgentTool(name, "builtin", policy, description, parameters))
        elif entry.get("type") == "custom":
            schema = entry.get("input_schema") or {"type": "object", "properties": {}}
            description = str(entry.get("description") or "")
            out.append(AgentTool(str(entry.get("name")), "custom", "", description, schema))
    return out


def openai_tools(tools: list[AgentTool]) -> list[Json]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def normalize_toolset(entry: Json) -> Json:
    """A toolset entry as the API returns it: every field present, defaults filled in."""
    default = entry.get("default_config") or {}
    return {
        "type": "agent_toolset_20260401",
        "default_config": {
            "enabled": default.get("enabled") is not False,
            "permission_policy": {"type": _policy(default, "always_allow")},
        },
        "configs": [
            {
                "name": c.get("name") or c.get("type"),
                "type": c.get("name") or c.get("type"),
                "enabled": c.get("enabled") is not False,
                "permission_policy": {"type": _policy(c, _policy(default, "always_allow"))},
            }
            for c in entry.get("configs") or []
            if isinstance(c, dict)
        ],
    }


def run_builtin(name: str, args: Json, files: dict[str, str]) -> tuple[str, bool]:
    """Execute a built-in tool harmlessly; returns (output text, is_error)."""
    if name == "bash":
        return _bash(str(args.get("command") or ""))
    path = str(args.get("file_path") or args.get("path") or "")
    if name == "read":
        if path in files:
            return files[path], False
        return f"Contents of {path}: synthetic file for the simulator.\n", False
    if name == "write":
        files[path] = str(args.get("content") or "")
        return f"Wrote {len(files[path])} bytes to {path}", False
    if name == "edit":
        text = files.get(path)
        old = str(args.get("old_string") or "")
        if text is None or old not in text:
            return f"old_string not found in {path}", True
        files[path] = text.replace(old, str(args.get("new_string") or ""))
        return f"Edited {path}", False
    if name == "glob":
        pattern = str(args.get("pattern") or "*")
        return "\n".join(sorted(p for p in files if fnmatch.fnmatch(p, pattern))), False
    if name == "grep":
        pattern = str(args.get("pattern") or "")
        hits = [
            f"{p}:{i + 1}:{line}"
            for p, text in sorted(files.items())
            for i, line in enumerate(text.splitlines())
            if pattern in line
        ]
        return "\n".join(hits), False
    if name == "web_fetch":
        return f"Fetched {args.get('url')}: (simulated page)", False
    if name == "web_search":
        return f"No results for {args.get('query')!r} (simulated search)", False
    return f"unknown tool {name}", True


def _bash(command: str) -> tuple[str, bool]:
    try:
        words = shlex.split(command)
    except ValueError:
        return "bash: syntax error", True
    if words[:1] == ["echo"]:
        return " ".join(words[1:]) + "\n", False
    if words[:1] == ["false"]:
        return "", True
    return f"(simulated) ran: {command}\n", False
