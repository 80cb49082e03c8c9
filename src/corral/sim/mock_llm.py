"""A scripted, OpenAI-compatible mock LLM for driving real and simulated agent runtimes.

Real runtimes (OpenCode, Hermes, LangGraph, ...) only need an OpenAI-compatible upstream to
run offline. This server is that upstream: the *user's prompt* scripts what the "model"
answers, so a test can make a real runtime call a tool, hit an upstream error or stream
slowly, just by choosing the prompt text.

Endpoints
---------
* ``GET /v1/models`` and ``GET /v1/models/{id}`` (one model, ``mock-model``; unknown ids get a
  404 OpenAI error envelope);
* ``POST /v1/chat/completions``, streaming (SSE ``data: {chunk}`` frames, then
  ``data: [DONE]``; ``stream_options.include_usage`` adds a final chunk with ``usage`` and
  empty ``choices``) and non-streaming. Any ``Authorization`` header, or none, is accepted.

Every parsed request body is appended to ``app.state.requests`` (and a client disconnect
during a streamed reply increments ``app.state.disconnects``) so tests can assert what a
runtime sent and that it hung up.

Script grammar (a contract other tests rely on)
-----------------------------------------------
Which text is the prompt: runtimes wrap or append their own user messages, so the server
scans *all* ``user`` messages and picks the last one containing a well-formed directive;
without any directive it takes the last user message. Content may be a string or a list of
parts (only ``{"type": "text", "text"}`` parts are read). The *prompt text* is that message's
text with directive markup removed and whitespace collapsed. Directives may appear anywhere
in the text and combine with ordinary words and with each other:

``(no directive)``
    Reply ``Echo: <prompt text>``, streamed one word per chunk (so a multi-word prompt
    gives >= 3 content deltas); ``finish_reason: "stop"``.

``[[tool:NAME {json object}]]``  (the JSON is optional and defaults to ``{}``)
    e.g. ``[[tool:bash {"command":"echo hi","description":"say hi"}]]``.

    * Request has non-empty ``tools`` and no ``tool``-role message follows the user message
      holding the directive: reply with exactly one tool call to NAME with those arguments
      (streamed the OpenAI way: a first delta with ``id``, ``type: "function"``,
      ``function.name`` and empty arguments, then argument fragments);
      ``finish_reason: "tool_calls"``. The call id is ``call_`` + 24 hex digits derived
      from the message position, NAME and arguments (stable across runs).
    * A ``tool`` message follows it: reply ``Tool done: <first 80 chars of the last such
      tool message's content>``; ``finish_reason: "stop"``.
    * Request has no ``tools`` (e.g. OpenCode's session-title call): reply
      ``Scripted session``.

``[[error:STATUS]]``  e.g. ``[[error:400]]``, ``[[error:500]]``
    Only when the request has non-empty ``tools`` (so title calls still succeed; without
    tools the reply is ``Scripted session``): answer HTTP STATUS with
    ``{"error": {"message": "mock upstream error STATUS", "type": T, "param": null,
    "code": C}}`` where T is ``invalid_request_error`` for 4xx and ``server_error``
    otherwise, and C is a fixed code per status (``bad_request``, ``invalid_api_key``,
    ``permission_denied``, ``not_found``, ``rate_limit_exceeded``, ``server_error`` ...).
    Takes precedence over ``tool``.

``[[slow:SECONDS]]``  e.g. ``[[slow:5]]``, ``[[slow:0.5]]``
    Any *text* reply (echo, ``Tool done``) is streamed as
    ``N = min(len(text), max(words, ceil(SECONDS / 0.1)))`` chunks (words when there are
    enough, else even character slices) sent evenly over SECONDS, the first immediately.
    Applies with or without ``tools``. A client disconnect stops the stream at once.
    Non-streaming requests simply wait SECONDS.

Usage: ``prompt_tokens`` is the total number of whitespace-separated words in the text of
all request messages, ``completion_tokens`` the number of content or argument chunks,
``total_tokens`` their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["MODEL_ID", "TITLE_TEXT", "Script", "create_app", "find_script", "main"]

MODEL_ID = "mock-model"
TITLE_TEXT = "Scripted session"
_SLOW_TICK_S = 0.1  # target spacing of slow chunks
_DISCONNECT_POLL_S = 0.05  # how often a slow stream checks whether the client left
_TOOL_RESULT_PREVIEW = 80

_MODEL_OBJECT: dict[str, Any] = {
    "id": MODEL_ID,
    "object": "model",
    "created": 1_700_000_000,
    "owned_by": "corral-sim",
}

_ERROR_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    409: "conflict",
    422: "unprocessable_entity",
    429: "rate_limit_exceeded",
}

# ---------------------------------------------------------------------------
# Script parsing
# ---------------------------------------------------------------------------

_DIRECTIVE_START = re.compile(r"\[\[(tool|error|slow):")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_ERROR_BODY = re.compile(r"\s*(\d{3})\s*\]\]")
_SLOW_BODY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*\]\]")
_CLOSE = re.compile(r"\s*\]\]")
_JSON = json.JSONDecoder()


@dataclass
class Script:
    """What one user message asks the mock to do."""

    text: str = ""  # prompt text without directive markup, whitespace collapsed
    tool: tuple[str, dict[str, Any]] | None = None
    error: int | None = None
    slow: float | None = None
    has_directive: bool = False


def _parse_tool(text: str, pos: int) -> tuple[tuple[str, dict[str, Any]], int] | None:
    """Parse ``NAME [json]]]`` starting at ``pos``; return (tool, end) or None."""
    name_m = _TOOL_NAME.match(text, pos)
    if name_m is None:
        return None
    pos = name_m.end()
    args: dict[str, Any] = {}
    rest = text[pos:].lstrip()
    if rest.startswith("{"):
        start = len(text) - len(rest)
        try:
            value, end = _JSON.raw_decode(text, start)
        except json.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        args, pos = value, end
    close = _CLOSE.match(text, pos)
    if close is None:
        return None
    return (name_m.group(0), args), close.end()


def parse_script(text: str) -> Script:
    """Extract directives from one message text; malformed markup stays as plain text."""
    script = Script()
    kept: list[str] = []
    pos = 0
    for m in _DIRECTIVE_START.finditer(text):
        if m.start() < pos:  # inside a directive already consumed
            continue
        kind, body = m.group(1), m.end()
        end: int | None = None
        if kind == "tool":
            parsed = _parse_tool(text, body)
            if parsed is not None:
                script.tool, end = parsed
        elif kind == "error":
            em = _ERROR_BODY.match(text, body)
            if em is not None:
                script.error, end = int(em.group(1)), em.end()
        else:
            sm = _SLOW_BODY.match(text, body)
            if sm is not None:
                script.slow, end = float(sm.group(1)), sm.end()
        if end is None:
            continue
        script.has_directive = True
        kept.append(text[pos : m.start()])
        pos = end
    kept.append(text[pos:])
    script.text = " ".join("".join(kept).split())
    return script


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a parts list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text")
        ]
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def find_script(messages: Sequence[Any]) -> tuple[Script, int]:
    """Pick the scripting user message; return its script and index (-1 if none)."""
    fallback: tuple[Script, int] = (Script(), -1)
    for index in range(len(messages) - 1, -1, -1):
        msg = messages[index]
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        script = parse_script(content_text(msg.get("content")))
        if script.has_directive:
            return script, index
        if fallback[1] == -1:
            fallback = (script, index)
    return fallback


# ---------------------------------------------------------------------------
# Reply planning
# ---------------------------------------------------------------------------


@dataclass
class Reply:
    """The planned answer: text chunks or one tool call, plus pacing."""

    chunks: list[str] = field(default_factory=list)
    tool_call: tuple[str, str, list[str]] | None = None  # (call id, name, argument fragments)
    interval: float = 0.0  # seconds between chunks

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"

    @property
    def completion_tokens(self) -> int:
        return len(self.tool_call[2]) if self.tool_call else len(self.chunks)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def split_words(text: str) -> list[str]:
    """Split so that ``"".join(result) == text`` and each piece holds one word."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def _slow_chunks(text: str, seconds: float) -> list[str]:
    words = split_words(text)
    wanted = min(len(text), max(len(words), math.ceil(seconds / _SLOW_TICK_S)))
    if wanted <= len(words) or not text:
        return words
    size = len(text) / wanted
    return [text[round(i * size) : round((i + 1) * size)] for i in range(wanted)]


def _split_arguments(arguments: str) -> list[str]:
    """Cut the JSON arguments into (up to) three fragments, like a streaming model."""
    if len(arguments) < 3:
        return [arguments]
    third = math.ceil(len(arguments) / 3)
    return [arguments[i : i + third] for i in range(0, len(arguments), third)]


def _text_reply(text: str, slow: float | None) -> Reply:
    if slow and slow > 0:
        chunks = _slow_chunks(text, slow)
        return Reply(chunks=chunks, interval=slow / max(len(chunks), 1))
    return Reply(chunks=split_words(text))


def plan_reply(body: dict[str, Any]) -> Reply | tuple[int, dict[str, Any]]:
    """Decide the answer for a chat request: a :class:`Reply` or (status, error body)."""
    messages = body.get("messages") or []
    script, index = find_script(messages)
    has_tools = bool(body.get("tools"))

    if script.error is not None and has_tools:
        return script.error, error_body(script.error, f"mock upstream error {script.error}")

    if script.tool is not None or script.error is not None:
        if not has_tools:
            return _text_reply(TITLE_TEXT, None)
        results = [
            m for m in messages[index + 1 :] if isinstance(m, dict) and m.get("role") == "tool"
        ]
        if results:
            preview = content_text(results[-1].get("content"))[:_TOOL_RESULT_PREVIEW]
            return _text_reply(f"Tool done: {preview}", script.slow)
        assert script.tool is not None
        name, args = script.tool
        arguments = json.dumps(args, separators=(",", ":"))
        digest = hashlib.sha256(f"{index}:{name}:{arguments}".encode()).hexdigest()
        return Reply(tool_call=(f"call_{digest[:24]}", name, _split_arguments(arguments)))

    return _text_reply(f"Echo: {script.text}", script.slow)


def prompt_tokens(messages: Sequence[Any]) -> int:
    """Deterministic stand-in for a tokenizer: words across all message texts."""
    return sum(len(content_text(m.get("content")).split()) for m in messages if isinstance(m, dict))


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if 400 <= status < 500 else "server_error",
            "param": None,
            "code": _ERROR_CODES.get(status, "server_error" if status >= 500 else str(status)),
        }
    }


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------


def _chunk(
    base: dict[str, Any], delta: dict[str, Any], finish: str | None, with_usage: bool
) -> dict[str, Any]:
    chunk = {
        **base,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage:
        chunk["usage"] = None  # OpenAI sends null usage on every chunk but the last
    return chunk


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def _pause(request: Request, seconds: float) -> bool:
    """Sleep ``seconds`` in small steps; return False as soon as the client has gone."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, _DISCONNECT_POLL_S))
        if await request.is_disconnected():
            return False
    return True


async def _stream(
    request: Request, reply: Reply, base: dict[str, Any], usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    with_usage = usage is not None
    completed = False
    try:
        if reply.tool_call is not None:
            call_id, name, fragments = reply.tool_call
            first = {
                "index": 0,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            yield _sse(
                _chunk(
                    base,
                    {"role": "assistant", "content": None, "tool_calls": [first]},
                    None,
                    with_usage,
                )
            )
            for frag in fragments:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}
                yield _sse(_chunk(base, delta, None, with_usage))
        else:
            yield _sse(_chunk(base, {"role": "assistant", "content": ""}, None, with_usage))
            for piece in reply.chunks:
                yield _sse(_chunk(base, {"content": piece}, None, with_usage))
                if reply.interval and not await _pause(request, reply.interval):
                    return
        yield _sse(_chunk(base, {}, reply.finish_reason, with_usage))
        if usage is not None:
            yield _sse({**base, "choices": [], "usage": usage})
        yield _sse("[DONE]")
        completed = True
    finally:
        # Either we noticed the disconnect ourselves or Starlette cancelled us.
        if not completed:
            request.app.state.disconnects += 1


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse(error_body(400, "request body is not valid JSON"), status_code=400)
    request.app.state.requests.append(body)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return JSONResponse(error_body(400, "'messages' must be a list"), status_code=400)

    planned = plan_reply(body)
    if isinstance(planned, tuple):
        status, err = planned
        return JSONResponse(err, status_code=status)
    reply = planned

    created = int(time.time())
    model = body.get("model") or MODEL_ID
    p_tokens = prompt_tokens(body["messages"])
    usage = {
        "prompt_tokens": p_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": p_tokens + reply.completion_tokens,
    }
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    if body.get("stream"):
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return StreamingResponse(
            _stream(request, reply, base, usage if include_usage else None),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    if reply.interval:
        await asyncio.sleep(reply.interval * len(reply.chunks))
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if reply.tool_call is not None:
        call_id, name, fragments = reply.tool_call
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": "".join(fragments)},
            }
        ]
    else:
        message["content"] = reply.text
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage,
        }
    )


async def list_models(request: Request) -> Response:
    """``GET /v1/models``."""
    return JSONResponse({"object": "list", "data": [_MODEL_OBJECT]})


async def get_model(request: Request) -> Response:
    """``GET /v1/models/{id}``; some runtimes probe the configured model before using it."""
    model_id = request.path_params["model_id"]
    if model_id != MODEL_ID:
        body = error_body(404, f"The model '{model_id}' does not exist")
        body["error"]["code"] = "model_not_found"
        return JSONResponse(body, status_code=404)
    return JSONResponse(_MODEL_OBJECT)


def create_app() -> Starlette:
    """Build a fresh mock LLM app (its own request log)."""
    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        ]
    )
    app.state.requests = []
    app.state.disconnects = 0
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m corral.sim.mock_llm --port N``: serve until interrupted."""
    import uvicorn  # only the CLI needs it at import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
