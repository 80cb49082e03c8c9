"""The simulator's side of the OpenAI-compatible upstream: request building and stream parsing.

OpenCode (through ``@ai-sdk/openai-compatible``) streams ``/v1/chat/completions`` with
``stream_options.include_usage`` and the full conversation on every step. This module
turns the upstream SSE into a few typed events; ``engine`` maps those onto OpenCode's own
bus events. Keeping the HTTP here lets the engine be read as pure sequencing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "Finish",
    "ReasoningDelta",
    "Started",
    "TextDelta",
    "ToolCall",
    "ToolCallStart",
    "UpstreamBroken",
    "UpstreamEvent",
    "UpstreamHTTPError",
    "UpstreamUnreachable",
    "parse_chunks",
    "parse_lines",
    "stream_chat",
]

Json = dict[str, Any]


@dataclass(frozen=True)
class Started:
    """The upstream accepted the request (2xx); OpenCode opens the step here."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStart:
    call_id: str
    name: str


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: Json


@dataclass(frozen=True)
class Finish:
    reason: str
    usage: Json = field(default_factory=dict)


UpstreamEvent = Started | TextDelta | ReasoningDelta | ToolCallStart | ToolCall | Finish


class UpstreamHTTPError(Exception):
    """The upstream answered with a non-2xx status (OpenCode's ``APIError``)."""

    def __init__(self, status: int, body: str, url: str, headers: dict[str, str]) -> None:
        super().__init__(f"upstream HTTP {status}")
        self.status = status
        self.body = body
        self.url = url
        self.headers = headers

    @property
    def message(self) -> str:
        # The AI SDK surfaces the provider's own error message when the body has one.
        try:
            data = json.loads(self.body)
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
            if isinstance(error, str):
                return error
        except ValueError:
            pass
        return self.body or f"HTTP {self.status}"

    @property
    def retryable(self) -> bool:
        # Same rule as the AI SDK: 408, 409, 429 and 5xx are worth another attempt.
        return self.status in (408, 409, 429) or self.status >= 500


class UpstreamUnreachable(Exception):
    """The upstream could not be reached at all (connection refused, timeout)."""


class UpstreamBroken(Exception):
    """The stream broke (dropped connection, unparsable chunk) after it had started."""


@dataclass
class _PendingCall:
    call_id: str
    name: str
    arguments: str = ""
    done: bool = False


def _parse_args(raw: str) -> Json | None:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def stream_chat(
    client: httpx.AsyncClient, url: str, api_key: str, body: Json
) -> AsyncIterator[UpstreamEvent]:
    """POST a streaming chat completion and yield its events; raise the two errors above."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    started = False
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode(errors="replace")
                headers = {k.lower(): v for k, v in response.headers.items()}
                raise UpstreamHTTPError(response.status_code, text, url, headers)
            started = True
            yield Started()
            async for event in parse_lines(response.aiter_lines()):
                yield event
    except (httpx.TransportError, ValueError) as exc:
        if started:
            # Output already went out: retrying would repeat it, so the turn fails.
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
        # Bun's wording, which the AI SDK wraps; clients may show it verbatim.
        raise UpstreamUnreachable(
            "Cannot connect to API: Unable to connect. Is the computer able to access the url?"
        ) from exc


async def parse_lines(lines: AsyncIterator[str]) -> AsyncIterator[UpstreamEvent]:
    """A chat completion's SSE lines as the few events the engine needs."""
    async for event in parse_chunks(_payloads(lines)):
        yield event


async def _payloads(lines: AsyncIterator[str]) -> AsyncIterator[Json]:
    async for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


async def parse_chunks(chunks: AsyncIterator[Json]) -> AsyncIterator[UpstreamEvent]:
    """A chat completion's decoded chunks (up to, without, ``[DONE]``) as engine events."""
    calls: dict[int, _PendingCall] = {}
    finish_reason = "stop"
    usage: Json = {}
    async for chunk in chunks:
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                yield ReasoningDelta(str(reasoning))
            if delta.get("content") is not None:
                # An empty first chunk still opens the text part (no delta is sent for it).
                yield TextDelta(str(delta["content"]))
            for event in _tool_deltas(calls, delta.get("tool_calls") or []):
                yield event
            if choice.get("finish_reason"):
                finish_reason = str(choice["finish_reason"])
    # Calls whose arguments never became valid JSON are flushed at the end, as the SDK does.
    for call in calls.values():
        if not call.done:
            yield ToolCall(call.call_id, call.name, _parse_args(call.arguments) or {})
    yield Finish(_finish_reason(finish_reason, bool(calls)), usage)


def _tool_deltas(calls: dict[int, _PendingCall], deltas: list[Json]) -> list[UpstreamEvent]:
    events: list[UpstreamEvent] = []
    for delta in deltas:
        index = int(delta.get("index", len(calls)))
        function = delta.get("function") or {}
        call = calls.get(index)
        if call is None:
            call = _PendingCall(str(delta.get("id") or f"call_{index}"), str(function.get("name")))
            calls[index] = call
            events.append(ToolCallStart(call.call_id, call.name))
        call.arguments += str(function.get("arguments") or "")
        # A call is complete as soon as its arguments parse, before the stream ends.
        parsed = _parse_args(call.arguments) if call.arguments else None
        if parsed is not None and not call.done:
            call.done = True
            events.append(ToolCall(call.call_id, call.name, parsed))
    return events


def _finish_reason(raw: str, had_calls: bool) -> str:
    # OpenCode records the AI SDK's unified reasons, not OpenAI's spelling.
    mapping = {"stop": "stop", "length": "length", "tool_calls": "tool-calls"}
    reason = mapping.get(raw, "other" if raw != "content_filter" else "content-filter")
    return "tool-calls" if had_calls and reason == "stop" else reason
