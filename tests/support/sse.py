"""Read Corral's SSE stream in tests: frames until a predicate holds, with a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    id: int | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


async def read_stream(
    client: httpx.AsyncClient,
    session_id: str,
    *,
    until: Callable[[Frame], bool],
    last_event_id: int | None = None,
    timeout: float = 20.0,
) -> list[Frame]:
    """Collect frames (comments included) until ``until(frame)`` is true for one of them."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    frames: list[Frame] = []

    async def run() -> None:
        async with client.stream(
            "GET", f"/v1/sessions/{session_id}/stream", headers=headers, timeout=None
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    frames.append(Frame(None, None, None, comment=line[1:].strip()))
                    if until(frames[-1]):
                        return
                    continue
                if line == "":
                    if "data" in fields:
                        frame = Frame(
                            int(fields["id"]) if "id" in fields else None,
                            fields.get("event"),
                            json.loads(fields["data"]),
                        )
                        frames.append(frame)
                        if until(frame):
                            return
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value

    await asyncio.wait_for(run(), timeout)
    return frames


def turn_done(frame: Frame) -> bool:
    return frame.event == "turn.completed"


def events_of(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event is not None]
