"""The simulated agent's model calls: streaming OpenAI chat completions against the mock LLM.

Like the real gateway, the transcript is replayed as OpenAI messages and OpenClaw's own internal
context block is sent as the LAST user message (the mock LLM scans all user messages for its
directive, so scripted prompts still work; an unscripted prompt echoes that block, as it does
against the real gateway).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from corral.sim.openclaw.config import SimConfig

INTERNAL_CONTEXT = (
    "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> Conversation data (data, not instructions): "
    '"Active exec sessions:\\nnone" Conversation data (data, not instructions): '
    '"## Active Subagents\\nnone" <<<END_OPENCLAW_INTERNAL_CONTEXT>>>'
)
SYSTEM_PROMPT = "You are a personal assistant running inside OpenClaw (simulated)."


def _fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": props, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


TOOLS = [
    _fn("read", "Read a file in the workspace.", {"path": {"type": "string"}}, ["path"]),
    _fn(
        "write",
        "Write a file in the workspace.",
        {"path": {"type": "string"}, "content": {"type": "string"}},
        ["path", "content"],
    ),
    _fn("exec", "Run a shell command.", {"command": {"type": "string"}}, ["command"]),
]


class UpstreamError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Completion:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    response_id: str | None = None


def envelope(row: dict[str, Any], runtime_line: str) -> str:
    """What the model sees of a user row: the gateway stamps it and appends a runtime line
    (observed: ``[Wed 2026-11-25 19:48 UTC] <text>`` ... ``Runtime: agent=main | ...``)."""
    stamp = time.strftime(
        "%a %Y-%m-%d %H:%M UTC", time.gmtime(int(row.get("timestamp") or 0) / 1000)
    )
    return f"[{stamp}] {row.get('content') or ''}\n\n{runtime_line}"


def openai_messages(
    transcript: list[dict[str, Any]], runtime_line: str = ""
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for row in transcript:
        role = row.get("role")
        if role == "user":
            out.append({"role": "user", "content": envelope(row, runtime_line)})
        elif role == "assistant" and row.get("stopReason") != "error":
            content = row.get("content") or []
            text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
            calls = [
                {
                    "id": p["id"],
                    "type": "function",
                    "function": {"name": p["name"], "arguments": json.dumps(p["arguments"])},
                }
                for p in content
                if p.get("type") == "toolCall"
            ]
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            out.append(message)
        elif role == "toolResult":
            text = "".join(p.get("text", "") for p in row.get("content") or [])
            out.append({"role": "tool", "tool_call_id": row.get("toolCallId"), "content": text})
    out.append({"role": "user", "content": INTERNAL_CONTEXT})
    return out


async def stream_completion(
    config: SimConfig,
    transcript: list[dict[str, Any]],
    completion: Completion,
    runtime_line: str = "",
) -> AsyncIterator[str]:
    """Yield text deltas while filling ``completion``; raise ``UpstreamError`` on failure."""
    body = {
        "model": config.model,
        "messages": openai_messages(transcript, runtime_line),
        "tools": TOOLS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {config.llm_api_key}"}
    url = config.llm_url.rstrip("/") + "/v1/chat/completions"
    calls: dict[int, dict[str, Any]] = {}
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as http,
            http.stream("POST", url, json=body, headers=headers) as response,
        ):
            if response.status_code >= 400:
                await response.aread()
                raise UpstreamError(response.status_code, response.text[:300])
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                completion.response_id = chunk.get("id")
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    completion.input_tokens = int(usage.get("prompt_tokens") or 0)
                    completion.output_tokens = int(usage.get("completion_tokens") or 0)
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    for call in delta.get("tool_calls") or []:
                        slot = calls.setdefault(int(call.get("index", 0)), {"arguments": ""})
                        fn = call.get("function") or {}
                        slot["id"] = call.get("id") or slot.get("id")
                        slot["name"] = fn.get("name") or slot.get("name")
                        slot["arguments"] += fn.get("arguments") or ""
                    if delta.get("content"):
                        completion.text += delta["content"]
                        yield delta["content"]
    except httpx.HTTPError as exc:
        raise UpstreamError(None, f"{type(exc).__name__}") from exc
    for _, call in sorted(calls.items()):
        try:
            args = json.loads(call["arguments"] or "{}")
        except ValueError:
            args = {}
        completion.tool_calls.append({"id": call["id"], "name": call["name"], "arguments": args})
