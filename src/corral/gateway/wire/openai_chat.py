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
    require_messages,
    require_model,
    require_stream,
)
from corral.gateway.wire.stream import (
    StreamMeter,
    event_bounds,
    event_json,
    find_data,
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
    """Meters a chat stream. With ``strip`` (the gateway injected include_usage), it also cuts
    the usage-only chunk out of what is forwarded, so the caller's stream is the one it asked for.
    """

    __slots__ = ("_strip",)

    def __init__(self, strip: bool) -> None:
        super().__init__()
        self._strip = strip

    def _meter(self, region: bytes) -> bytes:
        if not self.saw_output and _has_output(region):
            self.saw_output = True
        cuts = []
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
                        cuts.append((start, end))
                after = end
            pos = region.find(_USAGE, after)
        pos = region.find(_ERROR)
        while pos >= 0:
            after = pos + 8
            if region[after] == _BRACE or region[after : after + 2] == b" {":
                start, after = event_bounds(region, pos)
                chunk = event_json(region, start, after)
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    self._error(chunk["error"])
            pos = region.find(_ERROR, after)
        # [DONE] is the last event, so a region ending in a JSON event cannot hold it: this skips
        # the search on every chunk but the last.
        if not region.endswith((b"}\n\n", b"}\r\n\r\n")) and find_data(region, b"[DONE]") >= 0:
            self.complete = True
        if not cuts:
            return region
        kept, last = [], 0
        for start, end in cuts:
            kept.append(region[last:start])
            last = end
        kept.append(region[last:])
        return b"".join(kept)


class OpenAIChat(Wire):
    name = "openai.chat"
    family = "openai"
    path = "/v1/chat/completions"
    upstream_path = "/chat/completions"

    def prepare(self, body: Body, default_max_output: int, body_len: int | None = None) -> Prepared:
        size = body_length(body, body_len)
        model = require_model(body)
        require_messages(body)
        stream = require_stream(body)
        # max_tokens is deprecated (and refused by reasoning models) but still what many callers
        # send; when both are set, the newer max_completion_tokens is taken as the one in force.
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

    def usage_of(self, usage: dict[str, Any]) -> Usage:
        return _usage(usage)

    def meter(self, injected_usage: bool) -> StreamMeter:
        return ChatMeter(strip=injected_usage)

    def error_body(self, status: int, code: str, message: str) -> bytes:
        return openai_common.error_body(status, code, message)

    def is_error_body(self, raw: bytes) -> bool:
        return openai_common.is_error_body(raw)

    def sse_error(self, status: int, code: str, message: str) -> bytes:
        # What OpenAI sends when a stream fails midway; the SDK raises APIError from it.
        error = openai_common.error_object(status, code, message)
        return b"data: " + orjson.dumps({"error": error}) + b"\n\n"
