"""``POST /v1/messages``: the Anthropic Messages API, scripted like chat completions.

The request's ``system`` and ``messages`` are translated to chat-shaped messages so the
script grammar, the reply planning and the token counting are the chat ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from corral.sim.mock_llm.script import MODEL_ID, Reply, content_text, plan, prompt_tokens
from corral.sim.mock_llm.streaming import (
    dumps,
    pace,
    read_json,
    sse_event,
    sse_response,
    wait_whole_reply,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_response(status: int, message: str) -> JSONResponse:
    """Anthropic's error shape; ``error.type`` follows the status."""
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}},
        status_code=status,
        headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"},
    )


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat-shaped messages for a Messages request.

    ``system`` (a string or text blocks) becomes a system message; each message keeps its
    role with the text of its ``text`` blocks; an assistant's ``tool_use`` blocks become
    tool calls and a user's ``tool_result`` blocks tool results (ahead of its text, as
    Anthropic orders them). Other block types (images, thinking, ...) are ignored.
    """
    messages: list[dict[str, Any]] = []
    system = content_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role, content = msg.get("role"), msg.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for result in results:
            text = content_text(result.get("content"))
            messages.append(
                {"role": "tool", "tool_call_id": result.get("tool_use_id"), "content": text}
            )
        entry: dict[str, Any] = {"role": role, "content": content_text(content)}
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        if role == "assistant" and uses:
            entry["tool_calls"] = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": dumps(b.get("input") or {})},
                }
                for b in uses
            ]
        if entry["content"] or entry.get("tool_calls") or not results:
            messages.append(entry)
    return messages


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _tool_use_id(call_id: str) -> str:
    """``toolu_`` + the chat call id's stable digest."""
    return "toolu_" + call_id.removeprefix("call_")


def _content(reply: Reply) -> dict[str, Any]:
    """The reply's one content block, complete."""
    if reply.tool_call is None:
        return {"type": "text", "text": reply.text}
    call_id, name, fragments = reply.tool_call
    arguments = json.loads("".join(fragments))
    return {"type": "tool_use", "id": _tool_use_id(call_id), "name": name, "input": arguments}


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_call is not None else "end_turn"


async def _stream(
    request: Request, reply: Reply, message: dict[str, Any], output_tokens: int
) -> AsyncGenerator[bytes, None]:
    def event(kind: str, **fields: Any) -> bytes:
        return sse_event(kind, {"type": kind, **fields})

    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    yield event("message_start", message=start)
    at = {"index": 0}
    if reply.tool_call is not None:
        block = {**_content(reply), "input": {}}
        yield event("content_block_start", content_block=block, **at)
        yield event("ping")
        for frag in reply.tool_call[2]:
            delta = {"type": "input_json_delta", "partial_json": frag}
            yield event("content_block_delta", delta=delta, **at)
            if reply.cut:
                return
    else:
        yield event("content_block_start", content_block={"type": "text", "text": ""}, **at)
        yield event("ping")
        for piece in reply.chunks:
            yield event("content_block_delta", delta={"type": "text_delta", "text": piece}, **at)
            if reply.cut:
                return
            await pace(request, reply)
    yield event("content_block_stop", **at)
    yield event(
        "message_delta",
        delta={"stop_reason": _stop_reason(reply), "stop_sequence": None},
        usage={"output_tokens": output_tokens},
    )
    yield event("message_stop")


async def anthropic_messages(request: Request) -> Response:
    """``POST /v1/messages``; any ``x-api-key`` (or none) is accepted."""
    try:
        body = await read_json(request)
    except ValueError:
        return error_response(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        return error_response(400, "request body must be a JSON object")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return error_response(400, "max_tokens: Field required")
    if not isinstance(body.get("messages"), list):
        return error_response(400, "messages: Field required")

    messages = to_messages(body)
    planned = plan(messages, has_tools=bool(body.get("tools")), error_needs_tools=False)
    if isinstance(planned, int):
        return error_response(planned, f"mock upstream error {planned}")
    reply = planned
    input_tokens, output_tokens = reply.token_counts(prompt_tokens(messages))
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or MODEL_ID,
        "content": [],
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _usage(input_tokens, output_tokens),
    }

    if body.get("stream"):
        return sse_response(request, _stream(request, reply, message, output_tokens))

    await wait_whole_reply(reply)
    return JSONResponse({**message, "content": [_content(reply)]})
