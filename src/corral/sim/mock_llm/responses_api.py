"""``POST /v1/responses``: the OpenAI Responses API, scripted like chat completions.

The request's ``instructions`` and ``input`` items are translated to chat-shaped messages
so the script grammar, the reply planning and the token counting are the chat ones.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from corral.sim.mock_llm.script import (
    MODEL_ID,
    Reply,
    content_text,
    error_body,
    plan,
    prompt_tokens,
)
from corral.sim.mock_llm.streaming import (
    pace,
    read_json,
    sse_event,
    sse_response,
    wait_whole_reply,
)

_TEXT_PARTS = ("input_text", "output_text", "text")


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat-shaped messages for a Responses request.

    ``instructions`` becomes a system message; an ``input`` string one user message; input
    messages keep their role with the text of their ``input_text``/``output_text`` parts;
    ``function_call`` items become assistant tool calls and ``function_call_output`` items
    tool results. Other item types (reasoning, images, ...) are ignored.
    """
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and isinstance(item.get("role"), str):
            text = content_text(item.get("content"), _TEXT_PARTS)
            messages.append({"role": item["role"], "content": text})
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments")}
            call = {"id": item.get("call_id"), "type": "function", "function": function}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            text = content_text(item.get("output"), _TEXT_PARTS)
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
    return messages


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    """The ``response`` object's fields that do not depend on the answer."""
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body.get("model") or MODEL_ID,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None) -> dict[str, Any]:
    """The assistant message item: in progress and empty while ``text`` is None."""
    return {
        "type": "message",
        "id": item_id,
        "status": "in_progress" if text is None else "completed",
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def _call_item(item_id: str, reply: Reply, done: bool) -> dict[str, Any]:
    assert reply.tool_call is not None
    call_id, name, fragments = reply.tool_call
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": "".join(fragments) if done else "",
        "status": "completed" if done else "in_progress",
    }


async def _stream(
    request: Request, reply: Reply, envelope: dict[str, Any], usage: dict[str, Any]
) -> AsyncGenerator[bytes, None]:
    counter = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return sse_event(kind, {"type": kind, "sequence_number": next(counter), **fields})

    pending = {**envelope, "status": "in_progress"}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    at = {"output_index": 0}
    if reply.tool_call is not None:
        item_id = f"fc_{uuid.uuid4().hex}"
        yield event("response.output_item.added", item=_call_item(item_id, reply, False), **at)
        _, name, fragments = reply.tool_call
        for frag in fragments:
            yield event("response.function_call_arguments.delta", item_id=item_id, delta=frag, **at)
            if reply.cut:
                return
        arguments = "".join(fragments)
        yield event(
            "response.function_call_arguments.done",
            item_id=item_id,
            name=name,
            arguments=arguments,
            **at,
        )
        item = _call_item(item_id, reply, True)
    else:
        item_id = f"msg_{uuid.uuid4().hex}"
        yield event("response.output_item.added", item=_message_item(item_id, None), **at)
        part_at = {"item_id": item_id, **at, "content_index": 0}
        yield event("response.content_part.added", part=_text_part(""), **part_at)
        for piece in reply.chunks:
            yield event("response.output_text.delta", delta=piece, logprobs=[], **part_at)
            if reply.cut:
                return
            await pace(request, reply)
        yield event("response.output_text.done", text=reply.text, logprobs=[], **part_at)
        yield event("response.content_part.done", part=_text_part(reply.text), **part_at)
        item = _message_item(item_id, reply.text)
    yield event("response.output_item.done", item=item, **at)
    yield event("response.completed", response={**envelope, "output": [item], "usage": usage})


async def responses(request: Request) -> Response:
    """``POST /v1/responses``."""
    try:
        body = await read_json(request)
    except ValueError:
        return JSONResponse(error_body(400, "request body is not valid JSON"), status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("input"), str | list):
        err = error_body(400, "'input' must be a string or a list of input items")
        err["error"]["param"] = "input"
        return JSONResponse(err, status_code=400)

    messages = to_messages(body)
    planned = plan(messages, has_tools=bool(body.get("tools")), error_needs_tools=False)
    if isinstance(planned, int):
        return JSONResponse(
            error_body(planned, f"mock upstream error {planned}"), status_code=planned
        )
    reply = planned
    usage = _usage(*reply.token_counts(prompt_tokens(messages)))
    envelope = _envelope(body)

    if body.get("stream"):
        return sse_response(request, _stream(request, reply, envelope, usage))

    await wait_whole_reply(reply)
    if reply.tool_call is not None:
        item = _call_item(f"fc_{uuid.uuid4().hex}", reply, True)
    else:
        item = _message_item(f"msg_{uuid.uuid4().hex}", reply.text)
    return JSONResponse({**envelope, "output": [item], "usage": usage})
