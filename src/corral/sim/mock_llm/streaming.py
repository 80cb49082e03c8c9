"""HTTP plumbing shared by the mock LLM's endpoints: body parsing, SSE frames and pacing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from corral.sim.mock_llm.script import Reply

_DISCONNECT_POLL_S = 0.05  # how often a slow stream checks whether the client left


class ClientGone(Exception):
    """Raised inside a stream once the client has hung up."""


async def read_json(request: Request) -> Any:
    """Parse the body (``ValueError`` if it is not JSON) and log it for tests.

    The body goes to ``app.state.requests`` and ``(path, body)`` to ``app.state.calls``.
    """
    body = await request.json()
    request.app.state.requests.append(body)
    request.app.state.calls.append((request.url.path, body))
    return body


def dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def sse_data(payload: dict[str, Any] | str) -> bytes:
    """A ``data:``-only frame (chat completions)."""
    data = payload if isinstance(payload, str) else dumps(payload)
    return f"data: {data}\n\n".encode()


def sse_event(event: str, payload: dict[str, Any]) -> bytes:
    """A named ``event:`` + ``data:`` frame (Responses and Anthropic Messages)."""
    return f"event: {event}\ndata: {dumps(payload)}\n\n".encode()


async def pause(request: Request, seconds: float) -> bool:
    """Sleep ``seconds`` in small steps; return False as soon as the client has gone."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, _DISCONNECT_POLL_S))
        if await request.is_disconnected():
            return False
    return True


async def pace(request: Request, reply: Reply) -> None:
    """Wait a slow reply's chunk interval; raise :class:`ClientGone` if the client left."""
    if reply.interval and not await pause(request, reply.interval):
        raise ClientGone


async def wait_whole_reply(reply: Reply) -> None:
    """A non-streamed slow reply simply takes as long as its stream would."""
    if reply.interval:
        await asyncio.sleep(reply.interval * len(reply.chunks))


async def _count_disconnects(
    request: Request, frames: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """Relay ``frames``; a stream that does not run to its end counts as a disconnect.

    Ending early on purpose (``[[cut]]``) is a normal end of ``frames``; the client leaving
    shows up as :class:`ClientGone` from :func:`pace` or as Starlette cancelling us.
    """
    finished = False
    try:
        async with aclosing(frames) as source:
            async for frame in source:
                yield frame
        finished = True
    except ClientGone:
        pass
    finally:
        if not finished:
            request.app.state.disconnects += 1


def sse_response(request: Request, frames: AsyncGenerator[bytes, None]) -> StreamingResponse:
    """Stream SSE ``frames``, counting client disconnects in ``app.state.disconnects``."""
    return StreamingResponse(
        _count_disconnects(request, frames),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
