"""Rebuilding a run's events for ``history()`` from the only record Cursor offers: its stream.

Within the retention window (``X-Cursor-Stream-Retention-Seconds``) a run's stream can be read
again from the start, so the replay yields the very frames, and ids, the live stream had. The
replay of a running run stops at the newest frame this process has already seen live (the
live follower has the rest) or after a short quiet spell. Past retention (410
``stream_expired``) only ``GET …/runs/{id}`` is left: its status and final text become a
``result`` event, preceded by a gap event so the loss is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from corral.domain.errors import RuntimeRejected
from corral.runtimes.base import NativeEvent
from corral.runtimes.cursor.client import CursorClient
from corral.runtimes.cursor.mapping import GAP, native
from corral.runtimes.sse import json_object

__all__ = ["replay_run"]

_QUIET_S = 0.5  # a live run's replay ends after this long without a frame
_MAX_S = 10.0
_FIRST_S = 5.0


async def replay_run(
    client: CursorClient, agent_id: str, run: dict[str, Any], last_seen: str | None
) -> list[NativeEvent]:
    run_id = str(run["id"])
    events: list[NativeEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _MAX_S
    try:
        # The first frame may take a connection's time; after it, quiet means caught up.
        async with (
            asyncio.timeout(_FIRST_S) as quiet,
            contextlib.aclosing(client.stream(agent_id, run_id, None)) as frames,
        ):
            async for frame in frames:
                quiet.reschedule(min(loop.time() + _QUIET_S, deadline))
                data = json_object(frame, "cursor")
                if data is None or frame.event == "heartbeat":
                    continue
                events.append(native(agent_id, frame.event, run_id, frame.id, data))
                if frame.event in ("result", "done") or (last_seen and frame.id == last_seen):
                    break
    except TimeoutError:
        pass
    except RuntimeRejected as exc:
        if exc.extra.get("http_status") not in (404, 410):
            raise
        return _from_run(agent_id, run)
    return events


def _from_run(agent_id: str, run: dict[str, Any]) -> list[NativeEvent]:
    run_id = str(run["id"])
    events = [native(agent_id, GAP, run_id, None, {"reason": "stream_expired"})]
    status = run.get("status")
    if status in ("FINISHED", "ERROR", "CANCELLED", "EXPIRED"):
        data: dict[str, Any] = {"runId": run_id, "status": status}
        if isinstance(run.get("result"), str):
            data["text"] = run["result"]
        if isinstance(run.get("error"), dict):
            data["error"] = run["error"]
        events.append(native(agent_id, "result", run_id, None, data))
    return events
