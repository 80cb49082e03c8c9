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
    """The frames of a streaming response, in order; a frame without data is not dispatched.

    Parses bytes directly (one pump serves every session of a runtime, so this is on the hot
    path): CRLF and CR line ends are normalized, frames split on blank lines.
    """
    buffer = b""
    last_id: str | None = None  # the spec's "last event ID": it carries over to later frames
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            held = buffer.endswith(b"\r")
            body = buffer[:-1] if held else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        *complete, buffer = buffer.split(b"\n\n")
        for raw in complete:
            frame, last_id = _frame(raw.decode("utf-8", errors="replace"), last_id)
            if frame is not None:
                yield frame
    if buffer.strip():  # a stream cut mid-frame: the spec drops it, and so do we, but say so
        log.info("runtime stream ended inside a frame; dropped %d bytes", len(buffer))


def _frame(text: str, last_id: str | None) -> tuple[SseFrame | None, str | None]:
    """The frame (None when it has no data: not dispatched) and the last event ID after it."""
    event, frame_id, retry = "", last_id, None
    data: list[str] = []
    for line in text.split("\n"):
        if not line or line.startswith(":"):
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
    if not data:
        return None, frame_id
    return SseFrame(event or "message", "\n".join(data), frame_id, retry), frame_id


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
