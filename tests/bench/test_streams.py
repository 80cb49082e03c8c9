"""The benchmark's raw SSE reader undoes chunked transfer coding across any read boundaries."""

from __future__ import annotations

from bench.streams import _Dechunker


def _chunked(*payloads: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    return body + b"0\r\n\r\n"


def test_every_split_of_the_wire_gives_back_the_payload() -> None:
    payloads = [b'data: {"a":1}\n\n', b"", b"x" * 300, b"id: 7\nevent: e\ndata: {}\n\n"]
    wire = _chunked(*payloads)
    for cut in range(len(wire) + 1):
        for second in (cut, min(len(wire), cut + 3)):
            decoder = _Dechunker()
            out = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:second])
            out += decoder.feed(wire[second:])
            assert out == b"".join(payloads), (cut, second)


def test_chunk_extensions_are_ignored() -> None:
    assert _Dechunker().feed(b"5;name=v\r\nhello\r\n0\r\n\r\n") == b"hello"
