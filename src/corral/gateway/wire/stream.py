"""Metering a server-sent-events stream without parsing it.

A meter sees the upstream's bytes in whatever pieces the network delivers: an event may be split
across chunks, a chunk may hold many events, lines end in ``\\n`` or ``\\r\\n`` (a bare ``\\r`` line
ending, legal but unused by any LLM API, is not supported). Parsing every event would cost more
than the whole budget of the hot path, so a meter keeps only the unfinished tail of the stream
(from the last blank line), searches complete events with ``bytes.find`` for a few markers, and
hands to orjson only the one or two events that carry usage, an error or the end.

A meter forwards whole events only, holding an unfinished one until its end arrives. Clients
cannot act on half an event anyway, and it keeps what the caller received event-aligned: when
the upstream dies mid-event, the gateway's error event follows a clean boundary instead of being
glued onto half a ``data:`` line (and the OpenAI chat meter can cut out an event it must hide).

Marker searches cannot be fooled by model output: text arrives inside JSON strings, which hold no
raw newline and escape their quotes, so an ``event:`` line or a ``"type":"name"`` member found in
the raw bytes is always the real thing.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.gateway.wire.base import Usage

_NEWLINES = (10, 13)  # \n and \r as bytes items


class StreamMeter:
    """Per-stream state: feed it every chunk and forward what ``feed`` returns.

    ``usage`` is the latest usage seen (None until the format reports one), ``saw_output`` turns
    true at the first generated content (for time to first token), ``complete`` at the format's
    normal end (a truncated stream never gets there). ``error`` is the code (else the type) of an
    in-stream error event, ``error_message`` its message.
    """

    __slots__ = ("_tail", "complete", "error", "error_message", "saw_output", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.saw_output = False
        self.complete = False
        self.error: str | None = None
        self.error_message: str | None = None
        # The bytes after the last complete event; None (not b"") on the common path, where
        # upstream chunks end on event boundaries, so that path allocates nothing.
        self._tail: bytearray | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Meter ``chunk``; return the complete events it ends, to forward.

        That is ``chunk`` itself (no copy) whenever it ends on an event boundary with nothing
        held before it, as upstream chunks nearly always do; b"" while an event is unfinished.
        """
        tail = self._tail
        if tail is None:
            if chunk.endswith(b"\n\n"):  # the common case: skip the boundary search
                return chunk if self.complete else self._meter(chunk)
            data: bytes | bytearray = chunk
            start = 0
        else:
            # Search only the new bytes (plus two that may start a blank line), so feeding a
            # large event one byte at a time stays linear.
            start = max(0, len(tail) - 2)
            tail += chunk
            data = tail
        end = last_boundary(data, start)
        if end < 0:
            if tail is None and chunk:
                self._tail = bytearray(chunk)
            return b""
        region = chunk if data is chunk and end == len(chunk) else bytes(data[:end])
        self._tail = bytearray(data[end:]) if end < len(data) else None
        return region if self.complete else self._meter(region)

    def flush(self) -> bytes:
        """The unfinished event held at the upstream's EOF (b"" after a normal end).

        SSE clients discard an unfinished event at EOF, so dropping it is right; forwarding it
        is harmless too, unless another event is sent after it.
        """
        tail, self._tail = self._tail, None
        return bytes(tail) if tail else b""

    def _meter(self, region: bytes) -> bytes:
        """Meter ``region`` (complete events, ending with a blank line); return what to forward."""
        raise NotImplementedError

    def _error(self, error: Any) -> None:
        """Record an error object: OpenAI's ``code`` or Anthropic's ``details.error_code``, else
        its ``type``; a stable word for the call record, with the message beside it."""
        if not isinstance(error, dict):
            self.error = "error"
            return
        details = error.get("details")
        cause = details.get("error_code") if isinstance(details, dict) else None
        kind = error.get("code") or cause or error.get("type")
        message = error.get("message")
        self.error = str(kind) if kind else "error"
        self.error_message = message if isinstance(message, str) else None


def last_boundary(buf: bytes | bytearray, start: int) -> int:
    """The offset just past the last blank line in ``buf[start:]``, or -1 if it has none."""
    lf = buf.rfind(b"\n\n", start)
    # A raw \r only ever ends a line (JSON escapes it), and memchr finds one fast.
    crlf = buf.rfind(b"\n\r\n", start) if b"\r" in buf else -1
    return max(lf + 2 if lf >= 0 else -1, crlf + 3 if crlf >= 0 else -1)


def event_bounds(buf: bytes, pos: int) -> tuple[int, int]:
    """The ``[start, end)`` of the event holding ``pos``; ``end`` includes its blank line."""
    if b"\r" not in buf:
        start = buf.rfind(b"\n\n", 0, pos)
        end = buf.find(b"\n\n", pos)
        return start + 2 if start >= 0 else 0, end + 2 if end >= 0 else len(buf)
    lf = buf.rfind(b"\n\n", 0, pos)
    crlf = buf.rfind(b"\n\r\n", 0, pos)
    start = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
    lf = buf.find(b"\n\n", pos)
    crlf = buf.find(b"\n\r\n", pos)
    if lf < 0:
        end = crlf + 3 if crlf >= 0 else len(buf)
    elif crlf < 0 or lf < crlf:
        end = lf + 2
    else:
        end = crlf + 3
    return start, end


def event_json(buf: bytes, start: int, end: int) -> Any:
    """The JSON in the event's ``data:`` lines (joined as SSE joins them), or None."""
    pos = buf.find(b"data:", start, end)
    if pos >= 0 and (pos == start or buf[pos - 1] == 10):
        pos += 6 if buf[pos + 5 : pos + 6] == b" " else 5
        # Fast path, the only one real APIs take: a single data line, ending the event (JSON
        # allows the trailing newlines as whitespace).
        if buf.find(b"\n", pos, end) >= end - 4:
            try:
                return orjson.loads(buf[pos:end])
            except orjson.JSONDecodeError:
                pass
    pieces = []
    for line in buf[start:end].splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            pieces.append(value[1:] if value[:1] == b" " else value)
    if not pieces:
        return None
    try:
        return orjson.loads(pieces[0] if len(pieces) == 1 else b"\n".join(pieces))
    except orjson.JSONDecodeError:
        return None


def _at_line_start(buf: bytes, prefix: bytes, pos: int) -> bool:
    """Whether ``prefix`` ends at ``pos`` and starts a line."""
    begin = pos - len(prefix)
    if begin < 0 or buf[begin:pos] != prefix:
        return False
    return begin == 0 or buf[begin - 1] in _NEWLINES


def is_type(buf: bytes, pos: int, size: int) -> bool:
    """Whether the ``size`` bytes at ``pos`` name an event's type: an ``event: name`` line or a
    ``"type":"name"`` member, with or without the optional spaces."""
    after = buf[pos + size : pos + size + 1]
    if after == b'"':
        return buf[pos - 8 : pos] == b'"type":"' or buf[pos - 9 : pos] == b'"type": "'
    if after in (b"\n", b"\r"):
        return _at_line_start(buf, b"event: ", pos) or _at_line_start(buf, b"event:", pos)
    return False


def find_event(buf: bytes, name: bytes, start: int = 0) -> int:
    """Where an event of type ``name`` is announced in ``buf`` (from ``start``), or -1; the
    caller finds the event around it with :func:`event_bounds`."""
    size = len(name)
    pos = buf.find(name, start)
    while pos >= 0 and not is_type(buf, pos, size):
        pos = buf.find(name, pos + size)
    return pos


def find_data(buf: bytes, value: bytes, start: int = 0) -> int:
    """Where a ``data: value`` line (such as ``data: [DONE]``) is in ``buf``, or -1."""
    pos = buf.find(value, start)
    while pos >= 0:
        if _at_line_start(buf, b"data: ", pos) or _at_line_start(buf, b"data:", pos):
            return pos
        pos = buf.find(value, pos + len(value))
    return -1
