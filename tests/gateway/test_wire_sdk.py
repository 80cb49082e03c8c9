"""The official ``openai`` and ``anthropic`` SDKs, unmodified, read what the wire layer reads and
writes: the fixtures are well-formed (their types validate, their stream helpers accumulate them),
the meters agree with the SDKs' own usage, a stripped stream looks like one that never asked for
usage, and Corral's error bodies and error events raise the exceptions clients branch on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from corral.gateway.wire import WIRES, StreamMeter, Usage
from tests.gateway import wire_streams as f

USER: Any = [{"role": "user", "content": "hi"}]


def _client(status: int, body: bytes, content_type: str) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def oai(status: int, body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    http = _client(status, body, content_type)
    return openai.OpenAI(
        api_key="sk-test", base_url="http://gw/v1", http_client=http, max_retries=0
    )


def ant(status: int, body: bytes, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    http = _client(status, body, content_type)
    return anthropic.Anthropic(api_key="k", base_url="http://gw", http_client=http, max_retries=0)


def data_lines(stream: bytes) -> Iterator[Any]:
    for line in stream.splitlines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            yield orjson.loads(line[6:])


def meter(wire: str, data: bytes, injected: bool = False) -> tuple[StreamMeter, bytes]:
    m = WIRES[wire].meter(injected)
    out = b"".join(m.feed(data[i : i + 97]) for i in range(0, len(data), 97)) + m.flush()
    return m, out


# --- the fixtures are what the APIs send ------------------------------------------------------


def test_fixtures_validate_against_the_sdk_types() -> None:
    for stream in (f.chat_stream(), f.chat_stream(usage=False), f.CHAT_TOOL_STREAM):
        for chunk in data_lines(stream):
            ChatCompletionChunk.model_validate(chunk)
    events = TypeAdapter(ResponseStreamEvent)
    for end in ("response.completed", "response.incomplete", "response.failed"):
        for event in data_lines(f.responses_stream(end)):
            events.validate_python(event)
    messages = TypeAdapter(RawMessageStreamEvent)
    for newer in (True, False):
        for event in data_lines(f.anthropic_stream(newer_delta=newer)):
            if event["type"] != "ping":  # the SDK drops pings before parsing
                messages.validate_python(event)
    ChatCompletion.model_validate_json(f.CHAT_COMPLETION)
    Response.model_validate_json(f.RESPONSE_BODY)
    anthropic.types.Message.model_validate_json(f.ANTHROPIC_MESSAGE)


def test_chat_stream_helper_accumulates_what_the_meter_meters() -> None:
    m, out = meter("openai.chat", f.chat_stream())
    with oai(200, out).chat.completions.stream(model="gpt-4.1", messages=USER) as stream:
        final = stream.get_final_completion()
    usage = final.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    written = usage.prompt_tokens_details.cache_write_tokens or 0
    assert m.usage == Usage(
        usage.prompt_tokens - cached - written, usage.completion_tokens, cached, written
    )
    assert final.choices[0].message.content == "".join(f.CHAT_WORDS)


def test_responses_stream_helper_accumulates_what_the_meter_meters() -> None:
    m, out = meter("openai.responses", f.responses_stream())
    with oai(200, out).responses.stream(model="gpt-5-mini", input="hi") as stream:
        final = stream.get_final_response()
    assert final.usage is not None and final.output_text == f.RESP_TEXT
    details = final.usage.input_tokens_details
    uncached = final.usage.input_tokens - details.cached_tokens - details.cache_write_tokens
    assert m.usage == Usage(
        uncached, final.usage.output_tokens, details.cached_tokens, details.cache_write_tokens
    )


def test_anthropic_stream_helper_accumulates_what_the_meter_meters() -> None:
    for newer in (True, False):
        m, out = meter("anthropic.messages", f.anthropic_stream(newer_delta=newer))
        with ant(200, out).messages.stream(model="c", max_tokens=64, messages=USER) as stream:
            final = stream.get_final_message()
        u = final.usage
        assert m.usage == Usage(
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens or 0,
            u.cache_creation_input_tokens or 0,
        )
        assert final.content[0].type == "text" and final.content[0].text == "Hello! How can I help?"


def test_a_stripped_stream_reads_like_one_that_never_asked_for_usage() -> None:
    for source in (f.chat_stream(), f.CHAT_TOOL_STREAM):
        m, out = meter("openai.chat", source, injected=True)
        assert m.usage is not None and m.complete
        client = oai(200, out)
        chunks = list(client.chat.completions.create(model="gpt-4.1", messages=USER, stream=True))
        assert chunks and all(chunk.choices for chunk in chunks)
        # Chunk for chunk what the upstream sent, less the usage-only one.
        original = list(
            oai(200, source).chat.completions.create(model="gpt-4.1", messages=USER, stream=True)
        )
        assert [c for c in original if c.choices] == chunks and len(original) == len(chunks) + 1


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "authentication_error"),
        (402, openai.APIStatusError, "insufficient_quota"),
        (403, openai.PermissionDeniedError, "permission_error"),
        (404, openai.NotFoundError, "not_found_error"),
        (429, openai.RateLimitError, "rate_limit_error"),
        (502, openai.InternalServerError, "server_error"),
    ],
)
def test_openai_sdk_raises_on_error_bodies(
    status: int, exception: type[Exception], kind: str
) -> None:
    for name in ("openai.chat", "openai.responses"):
        body = WIRES[name].error_body(status, "budget_exceeded", "Team budget has no room.")
        client = oai(status, body, "application/json")
        with pytest.raises(openai.APIStatusError) as caught:
            if name == "openai.chat":
                client.chat.completions.create(model="m", messages=USER)
            else:
                client.responses.create(model="m", input="hi")
        error = caught.value
        assert type(error) is exception
        assert (error.status_code, error.code, error.type) == (status, "budget_exceeded", kind)
        assert error.message == f"Error code: {status} - Team budget has no room."


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (402, anthropic.PaymentRequiredError, "billing_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "overloaded_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_sdk_raises_on_error_bodies(
    status: int, exception: type[Exception], kind: str
) -> None:
    body = WIRES["anthropic.messages"].error_body(status, "budget_exceeded", "No room.")
    with pytest.raises(anthropic.APIStatusError) as caught:
        ant(status, body, "application/json").messages.create(
            model="m", max_tokens=1, messages=USER
        )
    error = caught.value
    assert type(error) is exception
    assert (error.status_code, error.type, error.error_code) == (status, kind, "budget_exceeded")
    assert error.api_message == "No room."


def test_sse_errors_raise_in_the_sdks_midstream() -> None:
    chat = WIRES["openai.chat"]
    head = f.chat_chunk({"role": "assistant", "content": ""}) + f.chat_chunk({"content": "Hel"})
    seen = []
    with pytest.raises(openai.APIError) as caught:
        stream = oai(200, head + chat.sse_error(502, "upstream_failed", "Upstream closed."))
        for chunk in stream.chat.completions.create(model="m", messages=USER, stream=True):
            seen.append(chunk)
    assert len(seen) == 2
    assert (caught.value.code, caught.value.message) == ("upstream_failed", "Upstream closed.")

    responses = WIRES["openai.responses"]
    head = f.responses_stream().split(b"event: response.output_text.done")[0]
    with pytest.raises(openai.APIError) as caught:
        for _ in oai(
            200, head + responses.sse_error(502, "upstream_failed", "Boom.")
        ).responses.create(model="m", input="hi", stream=True):
            pass
    assert (caught.value.code, caught.value.message) == ("upstream_failed", "Boom.")
    # A client that reads the documented event (not the SDK's raise) finds the fields too.
    event = TypeAdapter(ResponseStreamEvent).validate_python(
        next(data_lines(responses.sse_error(502, "upstream_failed", "Boom.")))
    )
    assert event.type == "error" and (event.code, event.message) == ("upstream_failed", "Boom.")

    messages = WIRES["anthropic.messages"]
    head = f.anthropic_stream().split(b"event: content_block_stop")[0]
    with pytest.raises(anthropic.APIStatusError) as ant_caught:
        for _ in ant(200, head + messages.sse_error(529, "overloaded", "Busy.")).messages.create(
            model="c", max_tokens=64, messages=USER, stream=True
        ):
            pass
    assert (ant_caught.value.type, ant_caught.value.error_code) == (
        "overloaded_error",
        "overloaded",
    )


def test_an_error_event_after_a_truncated_event_reads_cleanly() -> None:
    """The upstream dies mid-event; the gateway sends what feed returned, then its error event."""
    chat, data = WIRES["openai.chat"], f.chat_stream()
    m = chat.meter(True)
    sent = m.feed(data[: data.index(b'{"content":"?"}') + 5])
    assert not m.complete
    body = sent + chat.sse_error(502, "stream_truncated", "The upstream cut the stream short.")
    with pytest.raises(openai.APIError) as caught:
        for _ in oai(200, body).chat.completions.create(model="m", messages=USER, stream=True):
            pass
    assert caught.value.code == "stream_truncated"

    messages, data = WIRES["anthropic.messages"], f.anthropic_stream()
    m = messages.meter(False)
    sent = m.feed(data[: data.index(b'"text":"?"')])
    body = sent + messages.sse_error(502, "stream_truncated", "Cut short.")
    with pytest.raises(anthropic.APIStatusError) as ant_caught:
        for _ in ant(200, body).messages.create(
            model="c", max_tokens=9, messages=USER, stream=True
        ):
            pass
    assert ant_caught.value.error_code == "stream_truncated"
