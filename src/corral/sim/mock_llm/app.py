"""The mock LLM's HTTP layer: chat completions (JSON and SSE), models, and the app itself.

The Responses and Anthropic Messages endpoints live in their own modules.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.sim.mock_llm.anthropic_api import anthropic_messages
from corral.sim.mock_llm.responses_api import responses
from corral.sim.mock_llm.script import MODEL_ID, Reply, error_body, plan_reply, prompt_tokens
from corral.sim.mock_llm.streaming import pace, read_json, sse_data, sse_response, wait_whole_reply

_MODEL_OBJECT: dict[str, Any] = {
    "id": MODEL_ID,
    "object": "model",
    "created": 1_700_000_000,
    "owned_by": "corral-sim",
}


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


async def chat_chunks(
    reply: Reply,
    base: dict[str, Any],
    usage: dict[str, int] | None,
    pace: Callable[[], Awaitable[None]],
) -> AsyncGenerator[dict[str, Any] | str, None]:
    """The payloads of a streamed chat completion (each one ``data:`` frame; the last is
    ``"[DONE]"``); ``pace`` is awaited between text chunks.

    Shared by the HTTP endpoint (through :func:`chat_frames`) and the OpenCode simulator's
    in-process upstream, which takes the payloads as they are rather than encoding and
    parsing them again."""
    with_usage = usage is not None
    if reply.tool_call is not None:
        call_id, name, fragments = reply.tool_call
        first = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        delta: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [first]}
        yield _chunk(base, delta, None, with_usage)
        for frag in fragments:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}
            yield _chunk(base, delta, None, with_usage)
            if reply.cut:
                return
    else:
        yield _chunk(base, {"role": "assistant", "content": ""}, None, with_usage)
        for piece in reply.chunks:
            yield _chunk(base, {"content": piece}, None, with_usage)
            if reply.cut:
                return
            await pace()
    yield _chunk(base, {}, reply.finish_reason, with_usage)
    if usage is not None:
        yield {**base, "choices": [], "usage": usage}
    yield "[DONE]"


async def chat_frames(
    reply: Reply,
    base: dict[str, Any],
    usage: dict[str, int] | None,
    pace: Callable[[], Awaitable[None]],
) -> AsyncGenerator[bytes, None]:
    """The SSE frames of a streamed chat completion (see :func:`chat_chunks`)."""
    async for payload in chat_chunks(reply, base, usage, pace):
        yield sse_data(payload)


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    p_tokens, c_tokens = reply.token_counts(prompt_tokens(body["messages"]))
    return {
        "prompt_tokens": p_tokens,
        "completion_tokens": c_tokens,
        "total_tokens": p_tokens + c_tokens,
    }


def stream_header(
    body: dict[str, Any], reply: Reply
) -> tuple[dict[str, Any], dict[str, int] | None]:
    """What every chunk of a streamed completion repeats, and the usage its last chunk carries
    (None unless ``stream_options.include_usage``)."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_ID,
        "system_fingerprint": None,
    }
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return base, _usage(body, reply) if include_usage else None


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    try:
        body = await read_json(request)
    except ValueError:
        return JSONResponse(error_body(400, "request body is not valid JSON"), status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return JSONResponse(error_body(400, "'messages' must be a list"), status_code=400)

    planned = plan_reply(body)
    if isinstance(planned, tuple):
        status, err = planned
        return JSONResponse(err, status_code=status)
    reply = planned

    created = int(time.time())
    model = body.get("model") or MODEL_ID
    usage = _usage(body, reply)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    if body.get("stream"):
        base, streamed_usage = stream_header(body, reply)
        frames = chat_frames(reply, base, streamed_usage, lambda: pace(request, reply))
        return sse_response(request, frames)

    await wait_whole_reply(reply)
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
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
        ]
    )
    app.state.requests = []
    app.state.calls = []  # (path, body) of every POST with a JSON body
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
