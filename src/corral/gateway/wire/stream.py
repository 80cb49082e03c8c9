"""Metering a server-sent-events stream without parsing it.

A meter sees the upstream's bytes in whatever pieces the network delivers: an event may be split
across chunks, a chunk may hold many events, lines end in ``\\n`` or ``\\r\\n`` (a bare ``\\r`` line
ending, legal but unused by any LLM API, is not supported). Parsing every event would cost more
than the whole budget of the hot path, so a meter keeps only the unfinished tail of the stream
(from the last blank line), searches complete events with ``bytes.find`` for a few markers, and
hands to orjson only the one or two events that carry usage, an error or the end.

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
    """Per-stream state: feed it every chunk, forward what ``feed`` returns, call ``flush`` at EOF.

    ``usage`` is the latest usage seen (None until the format reports one), ``saw_output`` turns
    true at the first generated content (for time to first token), ``complete`` at the format's
    normal end (a truncated stream never gets there) and ``error`` names an in-stream error event.
    """

    __slots__ = ("_tail", "complete", "error", "saw_output", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.saw_output = False
        self.complete = False
        self.error: str | None = None
        # The bytes after the last complete event; None (not b"") on the common path, where
        # upstream chunks end on event boundaries, so that path allocates nothing.
        self._tail: bytearray | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Meter ``chunk`` and return the bytes to forward: here always ``chunk`` itself."""
        if self.complete or not chunk:
            return chunk
        tail = self._tail
        if tail is None:
            # Upstreams nearly always flush whole events: skip the boundary search then.
            end = len(chunk) if chunk.endswith(b"\n\n") else last_boundary(chunk, 0)
            if end == len(chunk):
                self._scan(chunk)
            elif end < 0:
                self._tail = bytearray(chunk)
            else:
                self._scan(chunk[:end])
                self._tail = bytearray(chunk[end:])
            return chunk
        # Search only the new bytes (plus the two that may start a blank line), so feeding a large
        # event one byte at a time stays linear.
        start = max(0, len(tail) - 2)
        tail += chunk
        end = last_boundary(tail, start)
        if end >= 0:
            self._scan(bytes(tail[:end]))
            self._tail = tail[end:] if end < len(tail) else None
        return chunk

    def flush(self) -> bytes:
        """Bytes held back, to forward when the upstream ends. Empty unless a subclass holds any.

        An unfinished event at EOF is dropped by SSE clients anyway, so losing it is harmless.
        """
        return b""

    def _scan(self, region: bytes) -> None:
        """Meter ``region``: one or more complete events, ending with a blank line."""
        raise NotImplementedError


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


def describe_error(error: Any) -> str:
    """A short "type_or_code: message" for an error object, for logs and the call record."""
    if not isinstance(error, dict):
        return "error"
    details = error.get("details")
    cause = details.get("error_code") if isinstance(details, dict) else None  # Anthropic's code
    kind = error.get("code") or cause or error.get("type") or "error"
    message = error.get("message")
    return f"{kind}: {message}" if isinstance(message, str) and message else str(kind)
