"""OpenAI Responses (``POST /v1/responses``).

A stream is typed events (``event: response.output_text.delta`` + ``data: {"type": ...}``). It
always ends with one that carries the whole response, usage included: ``response.completed``,
``response.incomplete`` (cut short by a bound; still a normal end) or ``response.failed``. Errors
outside a response arrive as an ``error`` event.
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
    require_model,
    require_stream,
)
from corral.gateway.wire.stream import (
    StreamMeter,
    event_bounds,
    event_json,
    find_event,
)

_ENDS = (b"response.completed", b"response.incomplete", b"response.failed")
_RESPONSE = b'"response":'
# Without `input`, a request can still be whole: a stored prompt, or a conversation to continue.
_INPUT_SOURCES = ("prompt", "previous_response_id", "conversation")


def _usage(usage: Any) -> Usage:
    return openai_common.split_usage(usage, "input_tokens", "output_tokens", "input_tokens_details")


def _has_output(region: bytes) -> bool:
    # Every generated-content event is a `response.*.delta` (output text, function call
    # arguments, reasoning, refusal, audio): its name ends an `event:` line or a `type` string.
    pos = region.find(b".delta")
    while pos >= 0:
        after = region[pos + 6 : pos + 7]
        if after in (b"\n", b"\r"):
            return True
        if after == b'"':
            # ... and only as the value of "type": `"type":"response.output_text.delta"`.
            key = region.rfind(b'"type":', max(0, pos - 64), pos)
            value = region[key + 7 : pos].lstrip(b" ")
            if key >= 0 and value[:1] == b'"' and value.count(b'"') == 1:
                return True
        pos = region.find(b".delta", pos + 6)
    return False


def _is_end(head: bytes) -> bool:
    """Whether an event whose bytes before ``"response":`` are ``head`` is a terminal one."""
    if any(find_event(head, name) >= 0 for name in _ENDS):
        return True
    # A server that puts "response" before "type" and sends no `event:` line: look at the JSON.
    return b"event:" not in head and b'"type"' not in head


class ResponsesMeter(StreamMeter):
    __slots__ = ()

    def _meter(self, region: bytes) -> bytes:
        if not self.saw_output and _has_output(region):
            self.saw_output = True
        # Only events that carry the whole response have this key; their type is at their head.
        pos = region.find(_RESPONSE)
        while pos >= 0:
            start, end = event_bounds(region, pos)
            if _is_end(region[start:pos]):
                # The one full parse of the stream: the terminal event holds the whole response.
                event = event_json(region, start, end)
                if isinstance(event, dict) and event.get("type", "").encode() in _ENDS:
                    self._end(event)
            pos = region.find(_RESPONSE, end)
        pos = find_event(region, b"error")
        if pos >= 0:
            event = event_json(region, *event_bounds(region, pos))
            if isinstance(event, dict) and event.get("type") == "error":
                # The API reference puts code/message on the event; the live API nests them in
                # "error" (see sse_error). Read either.
                nested = event.get("error")
                self._error(nested if isinstance(nested, dict) else event)
        return region

    def _end(self, event: dict[str, Any]) -> None:
        self.complete = True
        response = event.get("response")
        if not isinstance(response, dict):
            return
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage)
        if event.get("type") == "response.failed":
            self._error(response.get("error"))


class OpenAIResponses(Wire):
    name = "openai.responses"
    family = "openai"
    path = "/v1/responses"
    upstream_path = "/responses"

    def prepare(self, body: Body, default_max_output: int, body_len: int | None = None) -> Prepared:
        size = body_length(body, body_len)
        model = require_model(body)
        given = body.get("input")
        if given is None:
            if not any(body.get(key) for key in _INPUT_SOURCES):
                raise WireError("invalid_body", "'input' is required (a string or a list).")
        elif not isinstance(given, str | list):
            raise WireError("invalid_body", "'input' must be a string or a list.")
        stream = require_stream(body)
        limit = bound(body, "max_output_tokens")
        injected = limit is None
        if limit is None:
            limit = body["max_output_tokens"] = default_max_output
        # Streams always end with the full response, usage included: nothing to turn on.
        return Prepared(model, stream, limit, injected, False, size)

    def usage_of(self, usage: dict[str, Any]) -> Usage:
        return _usage(usage)

    def meter(self, injected_usage: bool) -> StreamMeter:
        return ResponsesMeter()

    def error_body(self, status: int, code: str, message: str) -> bytes:
        return openai_common.error_body(status, code, message)

    def is_error_body(self, raw: bytes) -> bool:
        return openai_common.is_error_body(raw)

    def sse_error(self, status: int, code: str, message: str) -> bytes:
        # The reference documents code/message/param on the event itself (ResponseErrorEvent);
        # the live API nests them in "error", which is also what makes the Python SDK raise
        # instead of yielding the event. Both, so either kind of client sees the failure.
        error = openai_common.error_object(status, code, message)
        event = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": 0,
            "error": error,
        }
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
