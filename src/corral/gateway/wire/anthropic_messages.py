"""Anthropic Messages (``POST /v1/messages``).

A stream is named events: ``message_start`` (the message, with input and cache usage), content
blocks and their deltas, ``message_delta`` (stop reason and CUMULATIVE usage), ``message_stop``;
``ping`` anywhere and ``error`` when it fails midway. Anthropic's ``input_tokens`` excludes cache
reads and writes, which it reports apart.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.gateway.wire.base import (
    Body,
    Prepared,
    Usage,
    Wire,
    body_length,
    bound,
    count,
    parse_json,
    require_messages,
    require_model,
    require_stream,
)
from corral.gateway.wire.stream import (
    StreamMeter,
    event_bounds,
    event_json,
    find_event,
    is_type,
)

# Anthropic's documented status -> error.type table (docs "Errors"); other 4xx are
# invalid_request_error, other 5xx api_error, as the same page says.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",  # Corral's 503 means "retry elsewhere": capacity, like a 529
    504: "timeout_error",
    529: "overloaded_error",
}


def _error_type(status: int) -> str:
    return _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def _envelope(status: int, code: str, message: str) -> dict[str, Any]:
    # `details.error_code` is where Anthropic puts a stable cause code; the SDK exposes it as
    # `APIStatusError.error_code` and keeps the rest of `error` as it came.
    return {
        "type": "error",
        "error": {"type": _error_type(status), "message": message, "details": {"error_code": code}},
    }


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=count(usage, "input_tokens"),
        output_tokens=count(usage, "output_tokens"),
        cache_read_tokens=count(usage, "cache_read_input_tokens"),
        cache_write_tokens=count(usage, "cache_creation_input_tokens"),
    )


_MESSAGE_EVENTS = (b"message_start", b"message_delta")


class MessagesMeter(StreamMeter):
    __slots__ = ()

    def _meter(self, region: bytes) -> bytes:
        if not self.saw_output and find_event(region, b"content_block_delta") >= 0:
            self.saw_output = True
        # One search finds message_start, message_delta and message_stop, in stream order.
        pos = region.find(b"message_")
        while pos >= 0:
            name = region[pos : pos + 13]
            after = pos + 8
            if name in _MESSAGE_EVENTS and is_type(region, pos, 13):
                start, after = event_bounds(region, pos)
                event = event_json(region, start, after)
                if isinstance(event, dict):
                    self._message_event(name, event)
            elif name.startswith(b"message_stop") and is_type(region, pos, 12):
                self.complete = True
                break
            pos = region.find(b"message_", after)
        pos = find_event(region, b"error")
        if pos >= 0:
            event = event_json(region, *event_bounds(region, pos))
            if isinstance(event, dict) and event.get("type") == "error":
                self._error(event.get("error"))
        return region

    def _message_event(self, name: bytes, event: dict[str, Any]) -> None:
        if name == b"message_start":
            message = event.get("message")
            if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                self.usage = _usage(message["usage"])
        elif isinstance(event.get("usage"), dict):
            self._delta(event["usage"])

    def _delta(self, delta: dict[str, Any]) -> None:
        # Counts here are cumulative: the output count replaces the running one, and so do the
        # input and cache counts that newer API versions repeat here (they win when present).
        usage = self.usage or Usage()
        usage.output_tokens = count(delta, "output_tokens")
        for key, attr in (
            ("input_tokens", "input_tokens"),
            ("cache_read_input_tokens", "cache_read_tokens"),
            ("cache_creation_input_tokens", "cache_write_tokens"),
        ):
            value = delta.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(usage, attr, value)
        self.usage = usage


class AnthropicMessages(Wire):
    name = "anthropic.messages"
    family = "anthropic"
    path = "/v1/messages"
    upstream_path = "/v1/messages"

    def prepare(self, body: Body, default_max_output: int, body_len: int | None = None) -> Prepared:
        size = body_length(body, body_len)
        model = require_model(body)
        require_messages(body)
        stream = require_stream(body)
        limit = bound(body, "max_tokens")
        injected = limit is None
        if limit is None:
            limit = default_max_output
            # Extended thinking needs max_tokens above its budget; keep the default for the answer.
            thinking = body.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if isinstance(budget, int) and not isinstance(budget, bool) and budget >= limit:
                limit += budget
            body["max_tokens"] = limit
        # message_start and message_delta always carry usage: nothing to turn on.
        return Prepared(model, stream, limit, injected, False, size)

    def usage_of(self, usage: dict[str, Any]) -> Usage:
        return _usage(usage)

    def meter(self, injected_usage: bool) -> StreamMeter:
        return MessagesMeter()

    def error_body(self, status: int, code: str, message: str) -> bytes:
        return orjson.dumps(_envelope(status, code, message))

    def is_error_body(self, raw: bytes) -> bool:
        body = parse_json(raw) if raw.lstrip()[:1] == b"{" else None
        if not isinstance(body, dict) or body.get("type") != "error":
            return False
        error = body.get("error")
        return isinstance(error, dict) and isinstance(error.get("type"), str)

    def sse_error(self, status: int, code: str, message: str) -> bytes:
        # The SDK raises an APIStatusError from this event (status 200: the stream's own).
        return b"event: error\ndata: " + orjson.dumps(_envelope(status, code, message)) + b"\n\n"
