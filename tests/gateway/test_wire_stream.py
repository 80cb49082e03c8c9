"""Stream meters: usage, first output, normal end and in-stream errors, whatever the chunking, and
exactly the upstream's bytes forwarded (less the usage chunk the gateway injected)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from corral.gateway.wire import WIRES, StreamMeter, Usage
from tests.gateway import wire_streams as f

CHAT_USAGE = Usage(22, 300, 1920, 64)
RESP_USAGE = Usage(512, 42, 4096, 512)
ANTHROPIC_USAGE = Usage(12, 57, 20480, 1800)

# (wire, stream, injected_usage, expected (usage, saw_output, complete, error), forwarded)
CASES: dict[str, tuple[str, bytes, bool, tuple[Any, ...], bytes]] = {
    "chat": (
        "openai.chat",
        f.chat_stream(),
        False,
        (CHAT_USAGE, True, True, None),
        f.chat_stream(),
    ),
    "chat-injected": (
        "openai.chat",
        f.chat_stream(),
        True,
        (CHAT_USAGE, True, True, None),
        f.chat_stream().replace(f.CHAT_USAGE_EVENT, b""),
    ),
    "chat-tools": (
        "openai.chat",
        f.CHAT_TOOL_STREAM,
        True,
        (CHAT_USAGE, True, True, None),
        f.CHAT_TOOL_STREAM.replace(f.CHAT_USAGE_EVENT, b""),
    ),
    "chat-no-usage": (
        "openai.chat",
        f.chat_stream(usage=False),
        False,
        (None, True, True, None),
        f.chat_stream(usage=False),
    ),
    "responses": (
        "openai.responses",
        f.responses_stream(),
        False,
        (RESP_USAGE, True, True, None),
        f.responses_stream(),
    ),
    "responses-incomplete": (
        "openai.responses",
        f.responses_stream("response.incomplete"),
        False,
        (RESP_USAGE, True, True, None),
        f.responses_stream("response.incomplete"),
    ),
    "anthropic": (
        "anthropic.messages",
        f.anthropic_stream(),
        False,
        (ANTHROPIC_USAGE, True, True, None),
        f.anthropic_stream(),
    ),
    "anthropic-older-delta": (
        "anthropic.messages",
        f.anthropic_stream(newer_delta=False),
        False,
        (ANTHROPIC_USAGE, True, True, None),
        f.anthropic_stream(newer_delta=False),
    ),
}


def run(wire: str, pieces: Iterable[bytes], injected: bool = False) -> tuple[StreamMeter, bytes]:
    meter = WIRES[wire].meter(injected)
    out = [meter.feed(piece) for piece in pieces]
    out.append(meter.flush())
    return meter, b"".join(out)


def state(meter: StreamMeter) -> tuple[Any, ...]:
    return meter.usage, meter.saw_output, meter.complete, meter.error


def random_pieces(data: bytes, rng: random.Random) -> list[bytes]:
    pieces, pos = [], 0
    while pos < len(data):
        size = rng.choice((1, 2, 3, 7, 16, 64, 300, 4096))
        pieces.append(data[pos : pos + size])
        pos += size
    return pieces


def crlf(data: bytes) -> bytes:
    # JSON escapes newlines inside strings, so every raw \n here ends a line.
    return data.replace(b"\n", b"\r\n")


@pytest.mark.parametrize("case", CASES)
def test_whole_stream(case: str) -> None:
    wire, data, injected, expected, forwarded = CASES[case]
    meter, out = run(wire, [data], injected)
    assert state(meter) == expected
    assert out == forwarded


@pytest.mark.parametrize("case", CASES)
def test_every_split_point_and_byte_at_a_time(case: str) -> None:
    wire, data, injected, expected, forwarded = CASES[case]
    for cut in range(len(data) + 1):
        meter, out = run(wire, [data[:cut], data[cut:]], injected)
        assert state(meter) == expected, cut
        assert out == forwarded, cut
    meter, out = run(wire, [data[i : i + 1] for i in range(len(data))], injected)
    assert state(meter) == expected
    assert out == forwarded


@pytest.mark.parametrize("case", CASES)
def test_random_chunkings_and_crlf(case: str) -> None:
    wire, data, injected, expected, forwarded = CASES[case]
    rng = random.Random(case)
    for source, target in ((data, forwarded), (crlf(data), crlf(forwarded))):
        for _ in range(40):
            meter, out = run(wire, random_pieces(source, rng), injected)
            assert state(meter) == expected
            assert out == target


def test_whole_events_are_forwarded_as_the_very_same_objects() -> None:
    for wire, data, injected, _, _ in CASES.values():
        if injected:
            continue
        meter = WIRES[wire].meter(False)
        for event in data.split(b"\n\n")[:-1]:
            chunk = event + b"\n\n"
            assert meter.feed(chunk) is chunk


def test_only_whole_events_are_forwarded() -> None:
    for wire, data, injected, _, _ in CASES.values():
        meter = WIRES[wire].meter(injected)
        sent = b""
        for piece in random_pieces(data, random.Random(7)):
            sent += meter.feed(piece)
            assert sent == b"" or sent.endswith(b"\n\n")
        assert meter.flush() == b""


def test_injected_usage_is_stripped_but_usage_on_a_content_chunk_is_kept() -> None:
    # Some servers report usage on the last content chunk instead of a chunk of its own.
    last = f.chat_chunk({"content": "!"}, "stop").replace(
        b'"usage":null', b'"usage":' + orjson.dumps(f.CHAT_USAGE)
    )
    data = f.chat_chunk({"role": "assistant", "content": ""}) + last + f.CHAT_DONE
    meter, out = run("openai.chat", [data], injected=True)
    assert out == data
    assert meter.usage == CHAT_USAGE and meter.complete


def test_spaced_json_from_compatible_servers() -> None:
    def event(obj: Any) -> bytes:
        import json

        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "llama"}
    usage_event = event({**head, "choices": [], "usage": f.CHAT_USAGE})
    data = b"".join(
        [
            event(
                {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            ),
            event({**head, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
            usage_event,
            b"data: [DONE]\n\n",
        ]
    )
    meter, out = run("openai.chat", [data], injected=True)
    assert state(meter) == (CHAT_USAGE, True, True, None)
    assert out == data.replace(usage_event, b"")


def test_model_text_that_looks_like_markers_fools_no_meter() -> None:
    tricky = 'data: [DONE]\n\n"usage":{"prompt_tokens":1} event: message_stop response.completed'
    chat = f.chat_chunk({"role": "assistant", "content": ""}) + f.chat_chunk({"content": tricky})
    meter, out = run("openai.chat", [chat], injected=True)
    assert state(meter) == (None, True, False, None) and out == chat
    anthropic = f.ANTHROPIC_START + f.anthropic_text(0, tricky + "\nevent: error\n")
    meter, _ = run("anthropic.messages", [anthropic])
    assert meter.complete is False and meter.error is None
    assert meter.usage == Usage(12, 1, 20480, 1800)
    cut = f.responses_stream().index(b"event: response.output_text.done")
    responses = f.responses_stream()[:cut].replace(
        b'"delta":"Paris"', b'"delta":' + orjson.dumps(tricky)
    )
    meter, _ = run("openai.responses", [responses])
    assert state(meter) == (None, True, False, None)


def test_output_is_not_seen_before_content() -> None:
    opener = f.chat_chunk({"role": "assistant", "content": "", "refusal": None})
    assert run("openai.chat", [opener])[0].saw_output is False
    tool_opener = f.chat_chunk({"role": "assistant", "content": None, "tool_calls": []})
    assert run("openai.chat", [tool_opener])[0].saw_output is False
    head = f.anthropic_stream().split(b"event: content_block_delta")[0]
    assert run("anthropic.messages", [head])[0].saw_output is False
    head = f.responses_stream().split(b"event: response.output_text.delta")[0]
    assert run("openai.responses", [head])[0].saw_output is False
    # A tool whose schema has a "*.delta" property is not output either.
    tool = {
        "type": "function",
        "name": "f",
        "parameters": {"type": "object", "properties": {"x.delta": {"type": "number"}}},
    }
    created = head.replace(b'"tools":[]', b'"tools":[' + orjson.dumps(tool) + b"]")
    assert created != head
    for variant in (created, created.replace(b"event: ", b": ")):  # with or without event lines
        assert run("openai.responses", [variant])[0].saw_output is False
    typed_only = f.responses_stream().replace(b"event: ", b": ")
    assert state(run("openai.responses", [typed_only])[0]) == (RESP_USAGE, True, True, None)


@pytest.mark.parametrize("case", ["chat", "chat-injected", "responses", "anthropic"])
def test_truncated_streams_are_not_complete(case: str) -> None:
    wire, data, injected, _, _ = CASES[case]
    # Cut inside the last content event, before any end or usage event.
    cut = {"chat": b'{"content":"?"}', "responses": b'"delta":"."', "anthropic": b'"text":"?"'}
    at = data.index(cut[case.split("-")[0]])
    meter = WIRES[wire].meter(injected)
    sent = meter.feed(data[:at])
    assert meter.complete is False and meter.saw_output is True and meter.error is None
    # The unfinished event is held back: what was sent ends on a boundary.
    unfinished = meter.flush()
    assert sent.endswith(b"\n\n") and unfinished.startswith((b"event: ", b"data: "))
    assert b"\n\n" not in unfinished
    assert sent + unfinished == data[:at]
    if wire == "anthropic.messages":
        # message_start already told the input and cache counts.
        assert meter.usage == Usage(12, 1, 20480, 1800)
    else:
        assert meter.usage is None


def test_in_stream_errors() -> None:
    head = f.chat_chunk({"role": "assistant", "content": ""}) + f.chat_chunk({"content": "Hel"})
    meter, out = run("openai.chat", [head + f.CHAT_ERROR_EVENT], injected=True)
    assert (meter.error, meter.error_message) == (
        "server_error",
        "The server had an error while processing your request.",
    )
    assert meter.complete is False and out == head + f.CHAT_ERROR_EVENT

    head = f.anthropic_stream().split(b"event: content_block_stop")[0]
    meter, _ = run("anthropic.messages", [head + f.ANTHROPIC_OVERLOADED])
    assert (meter.error, meter.error_message) == ("overloaded_error", "Overloaded")
    assert meter.complete is False

    head = f.responses_stream().split(b"event: response.output_text.done")[0]
    flat = b'event: error\ndata: {"type":"error","code":"server_error","message":"Boom","param":null,"sequence_number":9}\n\n'
    nested = (
        b'event: error\ndata: {"type":"error","error":{"type":"tokens","code":"rate_limit_exceeded",'
        b'"message":"Rate limit reached","param":null},"sequence_number":9}\n\n'
    )
    meter, _ = run("openai.responses", [head + flat])
    assert (meter.error, meter.error_message) == ("server_error", "Boom")
    meter, _ = run("openai.responses", [head + nested])
    assert (meter.error, meter.error_message) == ("rate_limit_exceeded", "Rate limit reached")
    assert not meter.complete


def test_response_failed_is_an_end_with_an_error() -> None:
    data = f.responses_stream("response.failed")
    failed = orjson.dumps({"code": "server_error", "message": "The model failed."})
    data = data.replace(
        b'"status":"failed","background":false,"error":null',
        b'"status":"failed","background":false,"error":' + failed,
    )
    meter, _ = run("openai.responses", [data])
    assert meter.complete is True and meter.usage == RESP_USAGE
    assert (meter.error, meter.error_message) == ("server_error", "The model failed.")


def test_gateway_error_events_are_read_back_by_the_meters() -> None:
    for name, wire in WIRES.items():
        meter, _ = run(name, [wire.sse_error(502, "upstream_failed", "Upstream closed.")])
        assert (meter.error, meter.error_message) == ("upstream_failed", "Upstream closed."), name


def test_a_large_event_fed_in_tiny_pieces_stays_linear() -> None:
    # 400 KB of output text in the terminal event, fed 5 bytes at a time: quadratic buffering
    # would copy tens of gigabytes here.
    data = f.responses_stream().replace(f.RESP_TEXT.encode(), b"x" * 200_000)
    meter, out = run("openai.responses", (data[i : i + 5] for i in range(0, len(data), 5)))
    assert state(meter) == (RESP_USAGE, True, True, None) and out == data


def test_sse_syntax_variants_mean_the_same() -> None:
    # No space after the field colon, and a data field split over lines (SSE joins them with \n,
    # which JSON reads as whitespace).
    for name, data, expected in (
        ("anthropic.messages", f.anthropic_stream(), ANTHROPIC_USAGE),
        ("openai.responses", f.responses_stream(), RESP_USAGE),
        ("openai.chat", f.chat_stream(), CHAT_USAGE),
    ):
        compact = data.replace(b"event: ", b"event:").replace(b"data: ", b"data:")
        split = data.replace(b',"usage":{', b',\ndata: "usage":{')
        for variant in (compact, split, crlf(split)):
            meter, out = run(name, [variant])
            assert state(meter) == (expected, True, True, None) and out == variant


def test_anthropic_delta_counts_win_over_the_start() -> None:
    data = f.anthropic_stream().replace(
        b'"usage":{"input_tokens":12,"cache_creation_input_tokens":1800,"cache_read_input_tokens":20480,"output_tokens":57}',
        b'"usage":{"input_tokens":15,"cache_read_input_tokens":20000,"output_tokens":60}',
    )
    meter, _ = run("anthropic.messages", [data])
    assert meter.usage == Usage(15, 60, 20000, 1800)
