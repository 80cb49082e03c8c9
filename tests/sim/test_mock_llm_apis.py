"""The mock LLM's Responses and Anthropic Messages endpoints, and the newer directives.

The official SDKs are the oracle for wire compatibility: whatever they parse, a real
client parses. Raw HTTP is used only where the SDKs hide the wire (event order, cut
streams, error bodies).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette

from corral.sim._server import BackgroundServer
from corral.sim.mock_llm import TITLE_TEXT, create_app, parse_script

CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]
RESPONSES_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "bash",
        "description": "run a command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        "strict": False,
    }
]
ANTHROPIC_TOOLS: list[Any] = [
    {
        "name": "bash",
        "description": "run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
BASH = '[[tool:bash {"command":"echo hi","description":"say hi"}]]'
BASH_ARGS = {"command": "echo hi", "description": "say hi"}


@pytest.fixture(scope="module")
def app() -> Starlette:
    return create_app()


@pytest.fixture(scope="module")
def url(app: Starlette) -> Iterator[str]:
    with BackgroundServer(app) as base:
        yield base


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


@pytest.fixture
def oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-anything", max_retries=0)


@pytest.fixture
def claude(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-anything", max_retries=0)


def sse(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """POST a streaming request; return (event name, parsed data) per frame."""
    frames: list[tuple[str | None, Any]] = []
    with http.stream("POST", path, json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        event: str | None = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
                frames.append((event, data if data == "[DONE]" else json.loads(data)))
                event = None
    return frames


def wait_for_disconnect(app: Starlette, before: int) -> None:
    deadline = time.monotonic() + 2
    while app.state.disconnects == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.state.disconnects == before + 1


# -- grammar ----------------------------------------------------------------


def test_parse_new_directives() -> None:
    s = parse_script("go [[fail:503]] now [[usage:1000, 500]] [[cut]] [[error:429]]")
    assert s.has_directive
    assert (s.fail, s.error, s.usage, s.cut) == (503, 429, (1000, 500), True)
    assert s.text == "go now"
    for markup in ("[[usage:1]]", "[[usage:a,b]]", "[[cut ]]", "[[fail:abc]]", "[[cut:1]]"):
        bad = parse_script(f"x {markup}")
        assert not bad.has_directive and bad.text == f"x {markup}"
    assert parse_script("[[cut]]").cut and parse_script("[[cut]]").text == ""


# -- chat: fail, usage, cut -----------------------------------------------------


def test_chat_fail_applies_without_tools_but_error_does_not(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": "[[fail:429]] hi"}]
        )
    assert info.value.status_code == 429
    assert info.value.type == "invalid_request_error"
    assert info.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as err:
        oai.chat.completions.create(
            model="mock-model",
            messages=[{"role": "user", "content": "[[fail:503]]"}],
            tools=CHAT_TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
    assert err.value.status_code == 503
    ok = oai.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "[[error:500]]"}]
    )
    assert ok.choices[0].message.content == TITLE_TEXT


def test_chat_usage_override(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "[[usage:1000,500]] hi"}]
    )
    assert done.choices[0].message.content == "Echo: hi"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (1000, 500)
    assert done.usage.total_tokens == 1500
    usage = None
    for chunk in oai.chat.completions.create(
        model="mock-model",
        messages=[{"role": "user", "content": "[[usage:7,3]] a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        usage = chunk.usage or usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 3, 10)


def test_chat_cut_ends_the_stream_without_done(
    http: httpx.Client, oai: openai.OpenAI, app: Starlette
) -> None:
    before = app.state.disconnects
    body = {
        "model": "mock-model",
        "messages": [{"role": "user", "content": "[[cut]] one two three"}],
        "stream_options": {"include_usage": True},
    }
    frames = [data for _, data in sse(http, "/v1/chat/completions", body)]
    assert "[DONE]" not in frames
    assert [f["choices"][0]["delta"] for f in frames] == [
        {"role": "assistant", "content": ""},
        {"content": "Echo: "},
    ]
    assert all(f["choices"][0]["finish_reason"] is None for f in frames)

    tool_body = {**body, "messages": [{"role": "user", "content": f"[[cut]] {BASH}"}]}
    tool_frames = [
        data for _, data in sse(http, "/v1/chat/completions", {**tool_body, "tools": CHAT_TOOLS})
    ]
    assert len(tool_frames) == 2 and "[DONE]" not in tool_frames
    assert tool_frames[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]

    pieces = [
        c.choices[0].delta.content or ""
        for c in oai.chat.completions.create(
            model="mock-model",
            messages=[{"role": "user", "content": "[[cut]] one two three"}],
            stream=True,
        )
    ]
    assert "".join(pieces) == "Echo: "
    assert app.state.disconnects == before  # ending on purpose is not a client hang-up

    whole = oai.chat.completions.create(
        model="mock-model", messages=[{"role": "user", "content": "[[cut]] one two"}]
    )
    assert whole.choices[0].message.content == "Echo: one two"


def test_chat_calls_are_logged_with_their_path(http: httpx.Client, app: Starlette) -> None:
    body = {"model": "mock-model", "messages": [{"role": "user", "content": "logged"}]}
    http.post("/v1/chat/completions", json=body)
    assert app.state.calls[-1] == ("/v1/chat/completions", body)
    assert app.state.requests[-1] == body


# -- OpenAI Responses API ----------------------------------------------------------


def test_responses_text_reply(oai: openai.OpenAI, app: Starlette) -> None:
    resp = oai.responses.create(
        model="mock-model", input="hello there world", instructions="be brief"
    )
    assert resp.id.startswith("resp_")
    assert resp.object == "response" and resp.status == "completed"
    assert resp.model == "mock-model"
    assert resp.output_text == "Echo: hello there world"
    (item,) = resp.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.content[0].type == "output_text" and item.content[0].annotations == []
    assert resp.usage is not None
    # input: words of instructions + input; output: one chunk per word of the reply
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (
        5,
        4,
        9,
    )
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.usage.output_tokens_details.reasoning_tokens == 0
    path, body = app.state.calls[-1]
    assert path == "/v1/responses" and body["input"] == "hello there world"
    assert app.state.requests[-1] is body


def test_responses_raw_json_shape(http: httpx.Client) -> None:
    body = {"model": "mock-model", "input": "shape check", "max_output_tokens": 64}
    resp = http.post("/v1/responses", json=body).json()
    assert resp["max_output_tokens"] == 64
    assert resp["output"][0]["content"] == [
        {"type": "output_text", "text": "Echo: shape check", "annotations": [], "logprobs": []}
    ]
    assert resp["usage"] == {
        "input_tokens": 2,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 5,
    }


def test_responses_tool_call_then_result(oai: openai.OpenAI) -> None:
    first: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": f"run it {BASH}"}]},
        {"role": "user", "content": "<runtime context without a directive>"},
    ]
    resp = oai.responses.create(model="mock-model", input=first, tools=RESPONSES_TOOLS)
    (call,) = resp.output
    assert call.type == "function_call"
    assert call.name == "bash" and call.call_id.startswith("call_")
    assert json.loads(call.arguments) == BASH_ARGS
    assert resp.output_text == ""

    follow: list[Any] = [
        *first,
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": "bash",
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "hi\n"},
    ]
    done = oai.responses.create(model="mock-model", input=follow, tools=RESPONSES_TOOLS)
    assert done.output_text == "Tool done: hi\n"

    title = oai.responses.create(model="mock-model", input=f"run it {BASH}")
    assert title.output_text == TITLE_TEXT


def test_responses_stream_event_sequence(http: httpx.Client) -> None:
    frames = sse(http, "/v1/responses", {"model": "mock-model", "input": "one two three"})
    assert all(name == data["type"] for name, data in frames)
    assert [data["sequence_number"] for _, data in frames] == list(range(len(frames)))
    names = [name for name, _ in frames]
    deltas = [data["delta"] for name, data in frames if name == "response.output_text.delta"]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(deltas) == "Echo: one two three" and len(deltas) == 4
    created = frames[0][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    final = frames[-1][1]["response"]
    assert final["id"] == created["id"] and final["status"] == "completed"
    assert final["usage"]["output_tokens"] == 4 and final["usage"]["input_tokens"] == 3
    assert final["output"][0]["content"][0]["text"] == "Echo: one two three"


def test_responses_stream_through_the_sdk(oai: openai.OpenAI) -> None:
    pieces = []
    completed = None
    for event in oai.responses.create(model="mock-model", input="streamed hello", stream=True):
        if event.type == "response.output_text.delta":
            pieces.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert "".join(pieces) == "Echo: streamed hello"
    assert completed is not None and completed.output_text == "Echo: streamed hello"
    assert completed.usage is not None and completed.usage.output_tokens == len(pieces)

    with oai.responses.stream(
        model="mock-model", input=[{"role": "user", "content": BASH}], tools=RESPONSES_TOOLS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-4:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    (call,) = final.output
    assert call.type == "function_call" and call.name == "bash"
    assert json.loads(call.arguments) == BASH_ARGS


def test_responses_errors_apply_without_tools(oai: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.responses.create(model="mock-model", input="[[error:404]] boom")
    assert info.value.status_code == 404
    assert info.value.type == "invalid_request_error" and info.value.code == "not_found"
    with pytest.raises(openai.InternalServerError) as err:
        oai.responses.create(model="mock-model", input="[[fail:500]]", stream=True)
    assert err.value.status_code == 500 and err.value.type == "server_error"
    raw = http.post("/v1/responses", json={"model": "mock-model", "input": "[[error:429]]"})
    assert raw.status_code == 429
    assert raw.json()["error"]["message"] == "mock upstream error 429"
    bad = http.post("/v1/responses", json={"model": "mock-model"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
    assert http.post("/v1/responses", content=b"{").status_code == 400


def test_responses_usage_override(oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model="mock-model", input="[[usage:1000,500]] hi")
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (
        1000,
        500,
        1500,
    )
    with oai.responses.stream(model="mock-model", input="[[usage:12,34]] hi") as stream:
        final = stream.get_final_response()
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 34)


def test_responses_cut(http: httpx.Client, oai: openai.OpenAI, app: Starlette) -> None:
    before = app.state.disconnects
    frames = sse(http, "/v1/responses", {"model": "mock-model", "input": "[[cut]] a b c"})
    assert [name for name, _ in frames][-1] == "response.output_text.delta"
    assert [d["delta"] for n, d in frames if n == "response.output_text.delta"] == ["Echo: "]
    with (
        oai.responses.stream(model="mock-model", input="[[cut]] a b c") as stream,
        pytest.raises(RuntimeError, match=r"response\.completed"),
    ):
        stream.get_final_response()
    assert app.state.disconnects == before


def test_responses_slow_and_disconnect(
    http: httpx.Client, oai: openai.OpenAI, app: Starlette
) -> None:
    started = time.monotonic()
    with oai.responses.stream(model="mock-model", input="[[slow:0.6]] tick tock") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    elapsed = time.monotonic() - started
    assert "".join(deltas) == "Echo: tick tock" and len(deltas) >= 6
    assert 0.5 <= elapsed < 2.0

    before = app.state.disconnects
    body = {"model": "mock-model", "input": "[[slow:5]] a long reply", "stream": True}
    started = time.monotonic()
    with http.stream("POST", "/v1/responses", json=body) as resp:
        lines = resp.iter_lines()
        seen = 0
        while seen < 6:
            seen += next(lines).startswith("data: ")
    wait_for_disconnect(app, before)
    assert time.monotonic() - started < 3


# -- Anthropic Messages API -------------------------------------------------------


def test_messages_text_reply(claude: anthropic.Anthropic, app: Starlette) -> None:
    msg = claude.messages.create(
        model="mock-model",
        max_tokens=256,
        system="be brief",
        messages=[{"role": "user", "content": "hello there world"}],
    )
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "mock-model"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Echo: hello there world"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (5, 4)
    assert msg.usage.cache_creation_input_tokens == 0 and msg.usage.cache_read_input_tokens == 0
    path, body = app.state.calls[-1]
    assert path == "/v1/messages" and body["max_tokens"] == 256


def test_messages_tool_use_then_result(claude: anthropic.Anthropic) -> None:
    first: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": f"run it {BASH}"}]},
    ]
    msg = claude.messages.create(
        model="mock-model", max_tokens=256, messages=first, tools=ANTHROPIC_TOOLS
    )
    assert msg.stop_reason == "tool_use"
    (block,) = msg.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_") and block.name == "bash"
    assert block.input == BASH_ARGS

    follow: list[Any] = [
        *first,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "hi\n"}],
        },
    ]
    done = claude.messages.create(
        model="mock-model", max_tokens=256, messages=follow, tools=ANTHROPIC_TOOLS
    )
    assert done.stop_reason == "end_turn"
    assert done.content[0].text == "Tool done: hi\n"  # type: ignore[union-attr]

    title = claude.messages.create(model="mock-model", max_tokens=256, messages=first)
    assert title.content[0].text == TITLE_TEXT  # type: ignore[union-attr]


def test_messages_stream_event_sequence(http: httpx.Client) -> None:
    body = {
        "model": "mock-model",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "one two three"}],
    }
    frames = sse(http, "/v1/messages", body)
    assert all(name == data["type"] for name, data in frames)
    names = [name for name, _ in frames]
    deltas = [d["delta"] for n, d in frames if n == "content_block_delta"]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(deltas),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == "Echo: one two three"
    start = frames[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 3 and start["usage"]["output_tokens"] == 1
    assert frames[1][1]["content_block"] == {"type": "text", "text": ""}
    message_delta = frames[-2][1]
    assert message_delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert message_delta["usage"] == {"output_tokens": len(deltas)}


def test_messages_stream_through_the_sdk(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="mock-model",
        max_tokens=64,
        messages=[{"role": "user", "content": "streamed hello"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: streamed hello"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 3)

    with claude.messages.stream(
        model="mock-model",
        max_tokens=64,
        messages=[{"role": "user", "content": BASH}],
        tools=ANTHROPIC_TOOLS,
    ) as stream:
        partials = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert len(partials) >= 3 and json.loads("".join(partials)) == BASH_ARGS
    assert final.stop_reason == "tool_use"
    (block,) = final.content
    assert block.type == "tool_use" and block.input == BASH_ARGS


@pytest.mark.parametrize(
    ("status", "error_class", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_messages_errors(
    claude: anthropic.Anthropic, status: int, error_class: type[Exception], kind: str
) -> None:
    with pytest.raises(error_class) as info:
        claude.messages.create(
            model="mock-model",
            max_tokens=64,
            messages=[{"role": "user", "content": f"[[error:{status}]] boom"}],
        )
    err = info.value
    assert isinstance(err, anthropic.APIStatusError)
    assert err.status_code == status and err.type == kind
    assert err.body == {
        "type": "error",
        "error": {"type": kind, "message": f"mock upstream error {status}"},
    }


def test_messages_validation_and_auth(http: httpx.Client, claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "hi"}]
    missing = http.post("/v1/messages", json={"model": "mock-model", "messages": messages})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]
    no_messages = http.post("/v1/messages", json={"model": "mock-model", "max_tokens": 5})
    assert no_messages.status_code == 400
    with pytest.raises(anthropic.BadRequestError):
        claude.post(
            "/v1/messages",
            body={"model": "mock-model", "messages": messages},
            cast_to=anthropic.types.Message,
        )
    stream_error = http.post(
        "/v1/messages",
        json={
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "[[fail:503]]"}],
            "stream": True,
        },
    )
    assert stream_error.status_code == 503
    assert stream_error.json()["error"]["type"] == "api_error"
    authed = http.post(
        "/v1/messages",
        json={"model": "mock-model", "max_tokens": 5, "messages": messages},
        headers={"x-api-key": "whatever", "anthropic-version": "2023-06-01"},
    )
    assert authed.status_code == 200 and authed.json()["content"][0]["text"] == "Echo: hi"


def test_messages_usage_override(claude: anthropic.Anthropic, http: httpx.Client) -> None:
    messages: list[Any] = [{"role": "user", "content": "[[usage:1000,500]] hi"}]
    msg = claude.messages.create(model="mock-model", max_tokens=64, messages=messages)
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (1000, 500)
    with claude.messages.stream(model="mock-model", max_tokens=64, messages=messages) as stream:
        final = stream.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1000, 500)
    frames = sse(http, "/v1/messages", {"max_tokens": 64, "messages": messages})
    assert frames[0][1]["message"]["usage"]["input_tokens"] == 1000
    assert frames[0][1]["message"]["usage"]["output_tokens"] == 1
    assert frames[-2][1]["usage"] == {"output_tokens": 500}


def test_messages_cut(http: httpx.Client, claude: anthropic.Anthropic, app: Starlette) -> None:
    before = app.state.disconnects
    messages: list[Any] = [{"role": "user", "content": "[[cut]] a b c"}]
    frames = sse(http, "/v1/messages", {"max_tokens": 64, "messages": messages})
    assert [name for name, _ in frames] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]
    with claude.messages.stream(model="mock-model", max_tokens=64, messages=messages) as stream:
        kinds = [e.type for e in stream]
        partial = stream.get_final_message()
    assert "message_stop" not in kinds
    assert partial.stop_reason is None  # the SDK hands back what arrived before the cut
    assert partial.content[0].text == "Echo: "  # type: ignore[union-attr]

    tool_messages: list[Any] = [{"role": "user", "content": f"[[cut]] {BASH}"}]
    tool_frames = sse(
        http,
        "/v1/messages",
        {"max_tokens": 64, "messages": tool_messages, "tools": ANTHROPIC_TOOLS},
    )
    assert [name for name, _ in tool_frames][-1] == "content_block_delta"
    assert tool_frames[-1][1]["delta"]["type"] == "input_json_delta"
    assert app.state.disconnects == before


def test_messages_slow_and_disconnect(
    http: httpx.Client, claude: anthropic.Anthropic, app: Starlette
) -> None:
    started = time.monotonic()
    with claude.messages.stream(
        model="mock-model",
        max_tokens=64,
        messages=[{"role": "user", "content": "[[slow:0.6]] tick tock"}],
    ) as stream:
        pieces = list(stream.text_stream)
    elapsed = time.monotonic() - started
    assert "".join(pieces) == "Echo: tick tock" and len(pieces) >= 6
    assert 0.5 <= elapsed < 2.0

    before = app.state.disconnects
    body = {
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "[[slow:5]] a long reply"}],
        "stream": True,
    }
    started = time.monotonic()
    with http.stream("POST", "/v1/messages", json=body) as resp:
        lines = resp.iter_lines()
        seen = 0
        while seen < 5:
            seen += next(lines).startswith("data: ")
    wait_for_disconnect(app, before)
    assert time.monotonic() - started < 3


def test_slow_non_streaming_waits(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    started = time.monotonic()
    msg = claude.messages.create(
        model="mock-model", max_tokens=64, messages=[{"role": "user", "content": "[[slow:0.4]] x"}]
    )
    resp = oai.responses.create(model="mock-model", input="[[slow:0.4]] y")
    elapsed = time.monotonic() - started
    assert msg.content[0].text == "Echo: x"  # type: ignore[union-attr]
    assert resp.output_text == "Echo: y"
    assert 0.7 <= elapsed < 2.5
