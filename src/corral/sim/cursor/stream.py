"""``GET /v1/agents/{id}/runs/{runId}/stream``: one run's events as server-sent events.

Quirks kept from the real API: the leading ``status`` frame has no id and is sent again on
every (re)connection; other frames carry opaque ids and ``Last-Event-ID`` resumes after one
(an unknown id is a 400 ``invalid_last_event_id``); ``heartbeat`` frames keep the connection
alive; the stream ends after ``done``; a run finished longer ago than the retention window
answers 410 ``stream_expired``. Each frame is written ``id: ``/``event: ``/``data: `` with one
space, which is the only spelling the SDK's parser reads.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from corral.sim.cursor.common import ApiError, authorize, state_of
from corral.sim.cursor.store import Frame, Run

__all__ = ["stream_run"]


def render(frame: Frame) -> str:
    head = f"id: {frame.id}\n" if frame.id is not None else ""
    return f"{head}event: {frame.event}\ndata: {json.dumps(frame.data)}\n\n"


def _start_index(run: Run, last_event_id: str | None) -> int:
    if not last_event_id:
        return 0
    for index, frame in enumerate(run.frames):
        if frame.id == last_event_id:
            return index + 1
    raise ApiError(400, "invalid_last_event_id", f"Unknown Last-Event-ID {last_event_id!r}")


async def stream_run(request: Request) -> StreamingResponse:
    authorize(request)
    state = state_of(request)
    agent = state.store.agents.get(request.path_params["agent_id"])
    run = state.store.find_run(request.path_params["run_id"])
    if agent is None or run is None or run.agent_id != agent.id:
        raise ApiError(404, "not_found", "Run not found")
    retention = state.config.stream_retention_s
    if run.finished_mono is not None and time.monotonic() - run.finished_mono > retention:
        raise ApiError(410, "stream_expired", "The run's stream is no longer retained")
    index = _start_index(run, request.headers.get("last-event-id"))
    generation = state.store.drop_generation
    heartbeat = state.config.heartbeat_interval

    async def frames() -> AsyncIterator[str]:
        nonlocal index
        yield render(Frame(None, "status", {"runId": run.id, "status": run.status}))
        while True:
            if state.store.drop_generation != generation:
                return  # fault hook: cut without ``done``, as a dropped connection would
            while index < len(run.frames):
                frame = run.frames[index]
                index += 1
                yield render(frame)
                if frame.event == "done":
                    return
            wake = run.wake
            try:
                await asyncio.wait_for(wake.wait(), heartbeat)
            except TimeoutError:
                yield render(Frame(None, "heartbeat", {}))

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Cursor-Stream-Retention-Seconds": str(int(retention)),
    }
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)
