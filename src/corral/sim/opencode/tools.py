"""The 11 tools OpenCode offers the model, and their simulated (harmless) execution.

Nothing here touches the file system or runs a process: each tool returns a deterministic
string derived from its input, so recorded traces and assertions stay stable. The
schemas are minimal but valid JSON Schema, enough for a model (or the mock LLM) to call
the tools by the names OpenCode uses.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from corral.sim.opencode.config import SimConfig

__all__ = ["TOOL_NAMES", "ToolResult", "permission_request", "run_tool", "tool_specs"]

Json = dict[str, Any]


def _obj(required: list[str], **props: str) -> Json:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in props.items()},
        "required": required,
        "additionalProperties": False,
    }


# name -> (description, parameters), alphabetical like the real request.
_TOOLS: dict[str, tuple[str, Json]] = {
    "bash": (
        "Executes a given bash command in a persistent shell session.",
        _obj(["command", "description"], command="string", timeout="number", description="string"),
    ),
    "edit": (
        "Performs exact string replacements in files.",
        _obj(
            ["filePath", "oldString", "newString"],
            filePath="string",
            oldString="string",
            newString="string",
            replaceAll="boolean",
        ),
    ),
    "glob": (
        "Fast file pattern matching tool.",
        _obj(["pattern"], pattern="string", path="string"),
    ),
    "grep": (
        "Fast content search tool.",
        _obj(["pattern"], pattern="string", path="string", include="string"),
    ),
    "question": ("Ask the user a question.", _obj(["questions"], questions="array")),
    "read": (
        "Reads a file from the local filesystem.",
        _obj(["filePath"], filePath="string", offset="number", limit="number"),
    ),
    "skill": ("Load a skill by name.", _obj(["name"], name="string")),
    "task": (
        "Launch a new agent to handle a complex, multistep task autonomously.",
        _obj(
            ["description", "prompt", "subagent_type"],
            description="string",
            prompt="string",
            subagent_type="string",
        ),
    ),
    "todowrite": ("Create and manage a structured task list.", _obj(["todos"], todos="array")),
    "webfetch": (
        "Fetches content from a specified URL.",
        _obj(["url", "format"], url="string", format="string", timeout="number"),
    ),
    "write": (
        "Writes a file to the local filesystem.",
        _obj(["content", "filePath"], content="string", filePath="string"),
    ),
}

TOOL_NAMES = tuple(_TOOLS)

# Edit-type tools share one permission key in OpenCode's rules.
_PERMISSION_KEY = {"edit": "edit", "write": "edit", "patch": "edit", "multiedit": "edit"}


def tool_specs(enabled: dict[str, bool] | None = None) -> list[Json]:
    """The ``tools`` array of an upstream chat-completions request.

    ``enabled`` is the prompt's ``tools`` map; a tool set to false is withheld.
    """
    enabled = enabled or {}
    return [
        {"type": "function", "function": {"name": name, "description": desc, "parameters": params}}
        for name, (desc, params) in _TOOLS.items()
        if enabled.get(name, True)
    ]


@dataclass(frozen=True)
class PermissionAsk:
    """What a tool call would ask for: the permission key, patterns and "always" patterns."""

    permission: str
    patterns: list[str]
    always: list[str]
    metadata: Json


def permission_request(tool: str, args: Json) -> PermissionAsk:
    key = _PERMISSION_KEY.get(tool, tool)
    if tool == "bash":
        command = str(args.get("command", ""))
        # OpenCode offers "always" for the command's first word plus a wildcard.
        words = command.split()
        head = words[0] if words else command
        return PermissionAsk(key, [command], [f"{head} *"], {"command": command})
    target = str(args.get("filePath") or args.get("url") or args.get("pattern") or "*")
    return PermissionAsk(key, [target], ["*"], {"input": args})


@dataclass(frozen=True)
class ToolResult:
    output: str
    title: str
    metadata: Json
    error: str | None = None  # set for a failed call (the part ends in state "error")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def _meta(output: str, **extra: Any) -> Json:
    return {"output": output, "exit": 0, "truncated": False, **extra}


def _bash(args: Json) -> ToolResult:
    command = str(args.get("command", ""))
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if words and words[0] == "echo":
        output = " ".join(words[1:]) + "\n"
    else:
        output = f"simulated: {command}\n"
    # The real completed part is titled with the command, not the model's description.
    return ToolResult(output, command, _meta(output))


def _read(args: Json, config: SimConfig) -> ToolResult:
    raw = str(args.get("filePath", ""))
    if not raw:
        return ToolResult("", raw, {}, error="The filePath parameter is required")
    path = str(PurePosixPath(config.directory, raw))  # absolute paths stay absolute
    if config.files is None:
        text = f"simulated content of {raw}"
    elif raw in config.files or path in config.files:
        text = config.files.get(raw, config.files.get(path, ""))
    else:
        return ToolResult("", raw, {}, error=f"File not found: {path}")
    lines = text.splitlines() or [""]
    text = "\n".join(lines)  # previews drop the trailing newline
    numbered = "\n".join(f"{n}: {line}" for n, line in enumerate(lines, 1))
    output = (
        f"<path>{path}</path>\n<type>file</type>\n<content>\n{numbered}\n\n"
        f"(End of file - total {len(lines)} lines)\n</content>"
    )
    display = {
        "type": "file",
        "path": path,
        "text": text,
        "lineStart": 1,
        "lineEnd": len(lines),
        "totalLines": len(lines),
        "truncated": False,
    }
    meta = {"preview": text, "truncated": False, "loaded": [], "display": display}
    # Titles are paths relative to the worktree root, which is "/" outside git.
    return ToolResult(output, path.lstrip("/"), meta)


def run_tool(tool: str, args: Json, config: SimConfig) -> ToolResult:
    """Run a tool, deterministically and without side effects."""
    if tool in config.tool_errors:
        return ToolResult("", tool, {}, error=config.tool_errors[tool])
    if tool == "bash":
        return _bash(args)
    if tool == "read":
        return _read(args, config)
    if tool == "glob":
        output = "No files found"
        return ToolResult(output, str(args.get("pattern", "")), _meta(output, count=0))
    if tool in _TOOLS:
        output = f"simulated {tool} result ({_digest(args)})"
        return ToolResult(output, tool, _meta(output))
    return ToolResult("", tool, {}, error=f"Model tried to call unavailable tool '{tool}'.")
