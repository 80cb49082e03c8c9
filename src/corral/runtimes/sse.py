"""Server-sent events as runtimes send them: one parser for every adapter.

Follows the WHATWG event-stream rules (``data:`` lines joined by newlines, ``event:``/``id:``/
``retry:`` fields, ``:`` comments ignored, a blank line ends a frame) so no adapter re-implements
them. Frames whose JSON cannot be read are logged and counted, never raised: one garbled frame
must not end a subscription that serves every session on a runtime.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("corral.runtimes")

#: Malformed native frames seen by this process, by runtime kind (exported as a metric later).
malformed_frames: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class SseFrame:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseFrame]:
    """The frames of a streaming response, in order; a frame without data is not dispatched."""
    event, frame_id, retry = "", None, None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseFrame(event or "message", "\n".join(data), frame_id, retry)
            event, data, retry = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            frame_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    if data:  # a stream cut mid-frame: the spec drops it, and so do we, but say so
        log.info("runtime stream ended inside a frame; dropped %d data line(s)", len(data))


def json_object(frame: SseFrame, kind: str) -> dict[str, Any] | None:
    """The frame's data as a JSON object, or None (logged and counted) when it is not one."""
    try:
        value = json.loads(frame.data)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    malformed_frames[kind] += 1
    log.warning(
        "malformed %s event skipped (event=%r, %d bytes): %r",
        kind,
        frame.event,
        len(frame.data),
        frame.data[:120],
    )
    return None
