"""OpenAI Chat Completions (``POST /v1/chat/completions``), as OpenAI-compatible servers speak it.

A stream is ``data: {chunk}`` events ended by ``data: [DONE]``. Usage comes only when the caller
sets ``stream_options.include_usage``, in one last chunk with ``"choices": []``; the gateway turns
it on when the caller did not, and then hides that chunk so the caller's stream is unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.gateway.wire import openai_common
from corral.gateway.wire.base import (
    Body,
    Prepared,
    Usage,
    Wire,
    WireError,
    body_length,
    bound,
    parse_json,
    require_model,
    require_stream,
)
from corral.gateway.wire.stream import (
    StreamMeter,
    describe_error,
    event_bounds,
    event_json,
    find_data,
    last_boundary,
)

# A usage or error key; only an object after it counts (the injected-usage stream has
# `"usage":null` in every chunk). OpenAI sends compact JSON, some compatible servers json.dumps'
# default spacing, hence the optional space.
_USAGE = b'"usage":'
_ERROR = b'"error":'
_BRACE = ord("{")
# Generated content: a non-empty string after these keys (which also match "reasoning_content"),
# a non-empty tool call list. OpenAI's opening chunk, `{"role":"assistant","content":"",
# "refusal":null}`, carries none, so it does not count as output.
_OUTPUT = (
    (b'content":"', b'"'),
    (b'content": "', b'"'),
    (b'"tool_calls":[', b"]"),
    (b'"tool_calls": [', b"]"),
    (b'"refusal":"', b'"'),
    (b'"refusal": "', b'"'),
)


def _has_output(region: bytes) -> bool:
    for key, empty in _OUTPUT:
        pos = region.find(key)
        while pos >= 0:
            pos += len(key)
            if region[pos : pos + 1] != empty:
                return True
            pos = region.find(key, pos)
    return False


def _usage(usage: Any) -> Usage:
    return openai_common.split_usage(
        usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details"
    )


class ChatMeter(StreamMeter):
    """Meters a chat stream whose chunks all pass through unchanged."""

    __slots__ = ("_cuts", "_strip")

    def __init__(self) -> None:
        super().__init__()
        self._strip = False
        self._cuts: list[tuple[int, int]] = []

    def _scan(self, region: bytes) -> None:
        if not self.saw_output and _has_output(region):
            self.saw_output = True
        pos = region.find(_USAGE)
        while pos >= 0:
            after = pos + 8
            if region[after] == _BRACE or region[after : after + 2] == b" {":
                start, end = event_bounds(region, pos)
                chunk = event_json(region, start, end)
                if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                    self.usage = _usage(chunk["usage"])
                    # Only the usage-only chunk goes: some servers put usage on a content chunk.
                    if self._strip and not chunk.get("choices"):
                        self._cuts.append((start, end))
                after = end
            pos = region.find(_USAGE, after)
        pos = region.find(_ERROR)
        while pos >= 0:
            after = pos + 8
            if region[after] == _BRACE or region[after : after + 2] == b" {":
                start, after = event_bounds(region, pos)
                chunk = event_json(region, start, after)
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    self.error = describe_error(chunk["error"])
            pos = region.find(_ERROR, after)
        # [DONE] is the last event, so a region ending in a JSON event cannot hold it: this skips
        # the search on every chunk but the last.
        if not region.endswith((b"}\n\n", b"}\r\n\r\n")) and find_data(region, b"[DONE]") >= 0:
            self.complete = True


class StrippingChatMeter(ChatMeter):
    """Meters a stream whose usage the gateway injected, and removes the usage-only chunk.

    To cut an event out it must hold the event whole, so this meter forwards complete events only
    and keeps an unfinished one until its end arrives; clients cannot act on half an event anyway.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._strip = True

    def feed(self, chunk: bytes) -> bytes:
        tail = self._tail
        if self.complete:
            if tail is None:
                return chunk
            self._tail = None
            return bytes(tail) + chunk
        if tail is None:
            data: bytes | bytearray = chunk
            start = 0
        else:
            start = max(0, len(tail) - 2)
            tail += chunk
            data = tail
        end = len(data) if data.endswith(b"\n\n") else last_boundary(data, start)
        if end < 0:
            if tail is None:
                self._tail = bytearray(chunk)
            return b""
        region = data if end == len(data) and data is chunk else bytes(data[:end])
        self._tail = bytearray(data[end:]) if end < len(data) else None
        self._scan(region)
        if not self._cuts:
            return region
        out = bytearray()
        last = 0
        for start, end in sorted(self._cuts):
            out += region[last:start]
            last = end
        out += region[last:]
        self._cuts.clear()
        return bytes(out)

    def flush(self) -> bytes:
        tail, self._tail = self._tail, None
        return bytes(tail) if tail else b""


class OpenAIChat(Wire):
    name = "openai.chat"
    family = "openai"
    path = "/v1/chat/completions"
    upstream_path = "/chat/completions"

    def prepare(self, body: Body, default_max_output: int, body_len: int | None = None) -> Prepared:
        size = body_length(body, body_len)
        model = require_model(body)
        if not isinstance(body.get("messages"), list):
            raise WireError("invalid_body", "'messages' must be a list.")
        stream = require_stream(body)
        # max_tokens is deprecated (and refused by reasoning models) but still what many callers
        # send; max_completion_tokens wins when both are set, as OpenAI documents.
        limit = bound(body, "max_completion_tokens") or bound(body, "max_tokens")
        injected = limit is None
        if limit is None:
            limit = body["max_completion_tokens"] = default_max_output
        n = body.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n > 1:
            limit *= n
        injected_usage = False
        if stream:
            options = body.get("stream_options")
            if options is None:
                body["stream_options"] = {"include_usage": True}
                injected_usage = True
            elif not isinstance(options, dict):
                raise WireError("invalid_body", "'stream_options' must be an object.")
            elif options.get("include_usage") is not True:
                options["include_usage"] = True
                injected_usage = True
        return Prepared(model, stream, limit, injected, injected_usage, size)

    def usage_from_body(self, raw: bytes) -> Usage | None:
        body = parse_json(raw)
        usage = body.get("usage") if isinstance(body, dict) else None
        return _usage(usage) if isinstance(usage, dict) else None

    def meter(self, injected_usage: bool) -> StreamMeter:
        return StrippingChatMeter() if injected_usage else ChatMeter()

    def error_body(self, status: int, code: str, message: str) -> bytes:
        return openai_common.error_body(status, code, message)

    def is_error_body(self, raw: bytes) -> bool:
        return openai_common.is_error_body(raw)

    def sse_error(self, status: int, code: str, message: str) -> bytes:
        # What OpenAI sends when a stream fails midway; the SDK raises APIError from it.
        error = openai_common.error_object(status, code, message)
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"
