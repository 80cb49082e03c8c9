"""The simulated Hermes agent loop: model call, ``terminal`` tool, dangerous-command guard.

Like Hermes, each run streams the model's text as ``message.delta`` (later text segments start
with a blank line), reports the model's content again as ``reasoning.available`` (first 500
characters), reports tools without call ids or arguments (``tool.started {tool, preview}``,
``tool.completed {tool, duration, error}``), and blocks a dangerous ``terminal`` command until
the run's approval endpoint answers. Commands are never executed: ``echo X`` prints X, anything
else prints nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

#: Patterns of Hermes' dangerous-command guard that the simulator knows (key, regex).
DANGEROUS = [
    ("delete in root path", re.compile(r"\brm\s+-[a-zA-Z]*[rf][a-zA-Z]*\s+/")),
    ("recursive delete", re.compile(r"\brm\s+-[a-zA-Z]*r")),
]
TERMINAL_TOOL = {
    "type": "function",
    "function": {
        "name": "terminal",
        "description": "Run a shell command",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}
#: Hermes' words to the model when a human denies a command (0.19.0).
DENIED = (
    "BLOCKED: Command denied by user. The user has NOT consented to this action. Do NOT retry "
    "this command, do NOT rephrase it, and do NOT attempt the same outcome via a different "
    "command. Stop the current workflow and wait for the user to respond before taking any "
    "further destructive or irreversible action."
)
Emit = Callable[[dict[str, Any]], None]


class UpstreamError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")


class Interrupted(Exception):
    """The run was stopped (``POST /v1/runs/{id}/stop``)."""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        total = self.input_tokens + self.output_tokens
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": total,
        }


def dangerous(command: str) -> str | None:
    for key, pattern in DANGEROUS:
        if pattern.search(command):
            return key
    return None


def run_terminal(command: str) -> dict[str, Any]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    output = " ".join(words[1:]) if words[:1] == ["echo"] else ""
    return {"output": output, "exit_code": 0, "error": None}


async def _stream_chat(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    on_text: Callable[[str], None],
    usage: Usage,
) -> dict[str, Any]:
    """One streamed chat completion: text through ``on_text``; returns the assistant message."""
    content = ""
    calls: dict[int, dict[str, str]] = {}
    async with http.stream("POST", url, json=body) as response:
        if response.status_code >= 400:
            raw = await response.aread()
            try:
                message = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace")[:200]
            raise UpstreamError(response.status_code, str(message))
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if isinstance(chunk.get("usage"), dict):
                usage.input_tokens += int(chunk["usage"].get("prompt_tokens") or 0)
                usage.output_tokens += int(chunk["usage"].get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    content += delta["content"]
                    on_text(delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(
                        call.get("index", 0), {"id": "", "name": "", "arguments": ""}
                    )
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function") or {}
                    slot["name"] = function.get("name") or slot["name"]
                    slot["arguments"] += function.get("arguments") or ""
    reply: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        reply["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls.values()
        ]
    return reply


@dataclass
class AgentRun:
    """One run's loop; the server wires ``emit`` to the run's event queue."""

    llm_url: str
    messages: list[dict[str, Any]]
    emit: Emit
    ask: Callable[[dict[str, Any]], Awaitable[str]]  # dangerous command -> choice
    stopping: asyncio.Event
    usage: Usage = field(default_factory=Usage)
    max_steps: int = 8

    async def run(self) -> str:
        segments = 0
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as http:
            for _ in range(self.max_steps):
                prefix = ["\n\n"] if segments else []
                message = await self._model(http, prefix)
                self.messages.append(message)
                if message["content"]:
                    segments += 1
                    self._event("reasoning.available", text=message["content"].strip()[:500])
                if not message.get("tool_calls"):
                    return str(message["content"])
                for call in message["tool_calls"]:
                    self.messages.append(await self._tool(call))
                segments += 1  # text after a tool call starts a new paragraph
        return ""

    def _event(self, kind: str, **fields: Any) -> None:
        self.emit({"event": kind, "timestamp": time.time(), **fields})

    async def _model(self, http: httpx.AsyncClient, prefix: list[str]) -> dict[str, Any]:
        def on_text(text: str) -> None:
            if self.stopping.is_set():
                raise Interrupted
            self._event("message.delta", delta=prefix.pop() + text if prefix else text)

        body = {
            "model": "mock-model",
            "messages": self.messages,
            "tools": [TERMINAL_TOOL],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        model = asyncio.ensure_future(
            _stream_chat(
                http, self.llm_url.rstrip("/") + "/v1/chat/completions", body, on_text, self.usage
            )
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({model, stop}, return_when=asyncio.FIRST_COMPLETED)
        if model not in done:
            model.cancel()
            raise Interrupted
        stop.cancel()
        reply: dict[str, Any] = model.result()
        return reply

    async def _tool(self, call: dict[str, Any]) -> dict[str, Any]:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            args = {}
        command = str(args.get("command") or "") if isinstance(args, dict) else ""
        started = time.monotonic()
        self._event("tool.started", tool=name, preview=command or None)
        if name != "terminal":
            result: dict[str, Any] = {"error": f"Unknown tool: {name}"}
        elif (key := dangerous(command)) is not None:
            choice = await self.ask({"command": command, "pattern_key": key})
            if choice == "deny" or self.stopping.is_set():
                result = {"output": "", "exit_code": -1, "error": DENIED, "status": "blocked"}
            else:
                result = run_terminal(command)
                result["approval"] = (
                    f"Command required approval ({key}) and was approved by the user."
                )
        else:
            result = run_terminal(command)
        is_error = bool(result.get("error"))
        duration = round(time.monotonic() - started, 3)
        self._event("tool.completed", tool=name, duration=duration, error=is_error)
        if self.stopping.is_set():  # a stop while waiting for approval blocks the command
            raise Interrupted
        return {"role": "tool", "tool_call_id": call.get("id"), "content": json.dumps(result)}
