"""The mock LLM's HTTP layer: OpenAI-compatible chat completions (JSON and SSE) and models."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.sim.mock_llm.script import MODEL_ID, Reply, error_body, plan_reply, prompt_tokens

_DISCONNECT_POLL_S = 0.05  # how often a slow stream checks whether the client left

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
