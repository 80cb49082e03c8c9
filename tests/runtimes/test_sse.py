"""The shared SSE parser: the WHATWG rules, whatever the chunking."""

from __future__ import annotations

import httpx

from corral.runtimes.sse import SseFrame, iter_sse, json_object, malformed_frames

STREAM = (
    b": comment\r\n"
    b"retry: 1500\r\n"
    b'id: 7\r\nevent: delta\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
    b"event: ping\n\n"  # no data: not dispatched
    b"id: 8\rdata:no-space\r\r"
    b"id:\ndata: x\n\n"  # an empty id resets the last event id
    b"data: cut mid-frame"
)
EXPECTED = [
    SseFrame("delta", '{"a": 1}', "7", 1500),
    SseFrame("message", "line one\nline two", "7", None),
    SseFrame("message", "no-space", "8", None),
    SseFrame("message", "x", "", None),
]


async def _parse(chunks: list[bytes]) -> list[SseFrame]:
    async def body():  # type: ignore[no-untyped-def]
        for chunk in chunks:
            yield chunk

    response = httpx.Response(200, content=body())
    return [frame async for frame in iter_sse(response)]


async def test_parses_whole_and_byte_by_byte() -> None:
    assert await _parse([STREAM]) == EXPECTED
    assert await _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    # a CRLF split across chunks is one line end, not two
    split = STREAM.index(b"\r\n\r\n") + 1
    assert await _parse([STREAM[:split], STREAM[split:]]) == EXPECTED


def test_malformed_json_is_counted_not_raised() -> None:
    before = malformed_frames["test"]
    assert json_object(SseFrame("message", "{nope"), "test") is None
    assert json_object(SseFrame("message", "[1]"), "test") is None
    assert json_object(SseFrame("message", '{"ok": true}'), "test") == {"ok": True}
    assert malformed_frames["test"] == before + 2
