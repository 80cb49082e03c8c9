"""The cloud agent's tools, simulated deterministically over the agent's virtual repository.

Cursor reports tool results as free-form JSON with no failure flag: a success is
``{"success": {...}}`` and a failure ``{"error": {...}}`` (research/runtimes.md §3). The names
are the ones the cloud agent's ``tool_call`` events carry.
"""

from __future__ import annotations

import shlex
from typing import Any

__all__ = ["TOOL_SPECS", "run_tool"]

Json = dict[str, Any]


def _spec(name: str, description: str, properties: Json, required: list[str]) -> Json:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_STR = {"type": "string"}
TOOL_SPECS: list[Json] = [
    _spec("read_file", "Read a file of the repository", {"path": _STR}, ["path"]),
    _spec("list_dir", "List the repository's files", {"path": _STR}, []),
    _spec("edit_file", "Write a file", {"path": _STR, "content": _STR}, ["path", "content"]),
    _spec("run_terminal_cmd", "Run a shell command", {"command": _STR}, ["command"]),
]


def _terminal(command: str) -> Json:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return {"error": {"message": f"cannot parse command: {exc}"}}
    if words[:1] == ["echo"]:
        return {
            "success": {
                "command": command,
                "exitCode": 0,
                "stdout": " ".join(words[1:]) + "\n",
                "stderr": "",
            }
        }
    if words[:1] in (["false"], ["exit"]):
        return {"error": {"command": command, "exitCode": 1, "stdout": "", "stderr": ""}}
    return {"success": {"command": command, "exitCode": 0, "stdout": "", "stderr": ""}}


def run_tool(name: str, args: Json, files: dict[str, str]) -> Json:
    """The tool's result; ``files`` is the agent's repository and may be written."""
    path = str(args.get("path") or "")
    if name == "read_file":
        if path not in files:
            return {"error": {"message": f"File not found: {path}"}}
        content = files[path]
        return {"success": {"path": path, "content": content, "totalLines": content.count("\n")}}
    if name == "list_dir":
        return {"success": {"entries": sorted(files)}}
    if name == "edit_file":
        content = str(args.get("content") or "")
        files[path] = content
        return {"success": {"path": path, "linesAdded": content.count("\n") + 1}}
    if name == "run_terminal_cmd":
        return _terminal(str(args.get("command") or ""))
    return {"error": {"message": f"Unknown tool: {name}"}}
