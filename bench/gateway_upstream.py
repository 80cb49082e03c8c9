"""A fast mock LLM upstream for the ``gateway`` scenario: OpenAI chat and Anthropic messages.

A raw asyncio protocol (uvloop when installed, httptools to parse requests), HTTP/1.1 keep-alive,
no framework, so that it is never what limits a proxy in front of it. It serves:

* ``POST /v1/chat/completions``: a ``chat.completion``; with ``"stream": true`` a 20-chunk SSE
  stream (a role chunk, 18 content chunks, a finish chunk), then a usage chunk when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``;
* ``POST /v1/messages``: an Anthropic ``message``; streamed, ``message_start``,
  ``content_block_start``, 20 ``text_delta`` s, ``content_block_stop``, ``message_delta`` (stop
  reason and usage) and ``message_stop``;
* ``GET /v1/models``: the model list (Anthropic's shape when ``anthropic-version`` is sent).

Usage is realistic: prompt tokens from the request's text (about 4 characters a token, plus the
chat template's overhead), one completion token per content chunk. Each reply is built once per
shape (model, stream or not, usage chunk or not, prompt size) and then only gets a fresh id, and
goes out in one write. No delay unless ``--delay-ms`` (then before the reply and between chunks).

``python -m bench.gateway_upstream --port N [--host H] [--delay-ms D]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any, cast

import httptools

OPENAI_CHUNKS = 18  # content chunks: with the role and finish chunks, 20
ANTHROPIC_DELTAS = 20
WORDS = (
    "Sure", "!", " Here", " is", " a", " short", " answer", " to", " your", " question",
    ":", " the", " gateway", " forwards", " every", " request", " upstream", " quickly",
    " and", " safely", ".",
)  # fmt: skip
MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "claude-haiku-4-5", "claude-sonnet-4-5")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _words(n: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(n)]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """About 4 characters a token, plus a few per message for the chat template."""
    chars = len(_text_of(body.get("system")))
    messages = body.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            chars += len(_text_of(message.get("content")))
    return max(1, chars // 4) + 3 * len(messages) + 4


# -- OpenAI ----------------------------------------------------------------------------------


def _openai_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _rid() -> str:
    return os.urandom(12).hex()


def openai_json(body: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{rid or _rid()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(_words(OPENAI_CHUNKS)),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(prompt_tokens(body), OPENAI_CHUNKS),
        "service_tier": "default",
        "system_fingerprint": "fp_mock0001",
    }


def openai_events(body: dict[str, Any], rid: str | None = None) -> list[bytes]:
    """The SSE events of a streamed chat completion, ``[DONE]`` included."""
    options = body.get("stream_options") or {}
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    head = {
        "id": f"chatcmpl-{rid or _rid()}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": str(body.get("model") or "gpt-4o-mini"),
        "service_tier": "default",
        "system_fingerprint": "fp_mock0001",
    }
    tail = {"usage": None} if usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = {**head, "choices": [choice], **tail}
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": word}) for word in _words(OPENAI_CHUNKS)]
    events.append(chunk({}, "stop"))
    if usage:
        data = {**head, "choices": [], "usage": _openai_usage(prompt_tokens(body), OPENAI_CHUNKS)}
        events.append(b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


# -- Anthropic -------------------------------------------------------------------------------


def _anthropic_usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }


def anthropic_json(body: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    return {
        "id": f"msg_{rid or _rid()}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or "claude-haiku-4-5"),
        "content": [{"type": "text", "text": "".join(_words(ANTHROPIC_DELTAS))}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(prompt_tokens(body), ANTHROPIC_DELTAS),
    }


def anthropic_events(body: dict[str, Any], rid: str | None = None) -> list[bytes]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        payload = json.dumps({"type": name, **data}, separators=(",", ":")).encode()
        return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"

    start = anthropic_json(body, rid)
    final = {**start["usage"]}
    del final["service_tier"]
    start["content"], start["stop_reason"] = [], None
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events = [
        event("message_start", {"message": start}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    for word in _words(ANTHROPIC_DELTAS):
        events.append(
            event(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}}
            )
        )
    stop = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": final}
    events += [
        event("content_block_stop", {"index": 0}),
        event("message_delta", stop),
        event("message_stop", {}),
    ]
    return events


def models_json(anthropic: bool) -> dict[str, Any]:
    data: list[dict[str, Any]]
    if anthropic:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-10-01T00:00:00Z"}
            for m in MODELS
        ]
        return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    data = [
        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "mock"} for m in MODELS
    ]
    return {"object": "list", "data": data}


# -- HTTP ------------------------------------------------------------------------------------


def _head(status: int, content_type: str, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}", f"content-type: {content_type}"]
    if length is None:
        lines += ["transfer-encoding: chunked", "cache-control: no-cache"]
    else:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


_PLACEHOLDER = "@" * 24  # as long as a real id's random part, so lengths stay right
_TEMPLATES: dict[tuple[Any, ...], bytes] = {}


def reply_bytes(chat: bool, body: dict[str, Any]) -> bytes:
    """The whole HTTP response to a model call (JSON or a chunked SSE stream), built once per
    shape and reused with a fresh id: the mock spends microseconds per reply."""
    options = body.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    stream = bool(body.get("stream"))
    key = (chat, stream, usage, str(body.get("model")), prompt_tokens(body))
    template = _TEMPLATES.get(key)
    if template is None:
        if len(_TEMPLATES) > 1_000:
            _TEMPLATES.clear()
        if not stream:
            payload = (openai_json if chat else anthropic_json)(body, _PLACEHOLDER)
            data = json.dumps(payload, separators=(",", ":")).encode()
            template = _head(200, "application/json", len(data)) + data
        else:
            events = (openai_events if chat else anthropic_events)(body, _PLACEHOLDER)
            template = b"".join(
                [_head(200, "text/event-stream; charset=utf-8", None)]
                + [_chunk(e) for e in events]
                + [b"0\r\n\r\n"]
            )
        _TEMPLATES[key] = template
    return template.replace(_PLACEHOLDER.encode(), _rid().encode())


class UpstreamProtocol(asyncio.Protocol):
    """One connection: parse requests with httptools, answer each in order."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.anthropic_version = False
        self.keep = True
        self.tail: asyncio.Future[None] | None = None  # responses in flight (with a delay)

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, {"error": {"message": "bad request"}}, close=True)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body, self.anthropic_version = b"", [], False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"anthropic-version":
            self.anthropic_version = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_headers_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        request = (self.parser.get_method(), self.url.split(b"?", 1)[0], self.keep,
                   b"".join(self.body), self.anthropic_version)  # fmt: skip
        if not self.delay:
            self._respond(*request)
            return
        # With a delay, replies go out in order, one coroutine after the other.
        task = asyncio.ensure_future(self._later(self.tail, request))
        self.tail = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        if self.tail is task:
            self.tail = None

    async def _later(self, previous: asyncio.Future[None] | None, request: tuple[Any, ...]) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        await asyncio.sleep(self.delay)
        method, path, keep, raw, anthropic = request
        events = self._respond(method, path, keep, raw, anthropic, delayed=True)
        if events is None or self.transport is None:
            return
        self.transport.write(_head(200, "text/event-stream; charset=utf-8", None))
        for i, event in enumerate(events):
            if i:
                await asyncio.sleep(self.delay)
            if self.transport is None:
                return
            self.transport.write(_chunk(event))
        self._end(keep)

    def _respond(
        self, method: bytes, path: bytes, keep: bool, raw: bytes, anthropic: bool,
        delayed: bool = False,
    ) -> list[bytes] | None:  # fmt: skip
        """Send the reply and return None; ``delayed``: return a stream's events instead."""
        if path == b"/v1/models" and method == b"GET":
            self._send(200, models_json(anthropic), close=not keep)
            return None
        if path not in (b"/v1/chat/completions", b"/v1/messages"):
            self._send(404, {"error": {"message": f"no route {path.decode(errors='replace')}"}})
            return None
        if method != b"POST":
            self._send(405, {"error": {"message": "POST only"}}, close=not keep)
            return None
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(400, {"error": {"message": "the body is not a JSON object"}}, close=not keep)
            return None
        chat = path == b"/v1/chat/completions"
        if delayed and body.get("stream"):
            return openai_events(body) if chat else anthropic_events(body)
        if self.transport is not None:
            self.transport.write(reply_bytes(chat, body))
            if not keep:
                self.transport.close()
        return None

    def _end(self, keep: bool) -> None:
        if self.transport is not None:
            self.transport.write(b"0\r\n\r\n")
            if not keep:
                self.transport.close()

    def _send(self, status: int, payload: dict[str, Any], close: bool = False) -> None:
        if self.transport is None:
            return
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.transport.write(_head(status, "application/json", len(data)) + data)
        if close:
            self.transport.close()


async def serve(host: str, port: int, delay_ms: float = 0.0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: UpstreamProtocol(delay_ms / 1000.0), host, port, reuse_address=True, backlog=4096
    )


async def _main(args: argparse.Namespace) -> None:
    server = await serve(args.host, args.port, args.delay_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{args.host}:{args.port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="before a reply, per chunk")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args))
    else:
        uvloop.run(_main(args))


if __name__ == "__main__":
    main()
