"""The mock LLM's script grammar and OpenAI wire shapes (see corral.sim.mock_llm)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from corral.sim._server import BackgroundServer, serve_in_loop
from corral.sim.mock_llm import TITLE_TEXT, create_app, find_script, parse_script

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]
BASH = '[[tool:bash {"command":"echo hi","description":"say hi"}]]'


@pytest.fixture(scope="module")
def app() -> Starlette:
    return create_app()


@pytest.fixture(scope="module")
def url(app: Starlette) -> Iterator[str]:
    with BackgroundServer(app) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "mock-model", "messages": messages, **extra}


def stream(client: httpx.Client, body: dict[str, Any]) -> list[Any]:
    """POST a streaming request; return the parsed data frames ('[DONE]' kept as a string)."""
    frames: list[Any] = []
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


def text_of(frames: list[Any]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in frames
        if isinstance(c, dict) and c["choices"]
    )


# -- script parsing ---------------------------------------------------------


def test_parse_strips_directives_and_keeps_text() -> None:
    s = parse_script('please  [[slow:0.5]] run [[tool:bash {"a": [1, 2]}]] now [[error:500]]')
    assert s.has_directive
    assert s.text == "please run now"
    assert s.slow == 0.5
    assert s.tool == ("bash", {"a": [1, 2]})
    assert s.error == 500


def test_parse_tool_without_args_and_malformed_markup() -> None:
    assert parse_script("[[tool:glob]]").tool == ("glob", {})
    bad = parse_script("[[tool:bash {not json}]] and [[slow:x]] [[nope:1]]")
    assert not bad.has_directive
    assert bad.text == "[[tool:bash {not json}]] and [[slow:x]] [[nope:1]]"


def test_find_script_prefers_last_user_message_with_a_directive() -> None:
    messages = [
        user("first"),
        user([{"type": "text", "text": "go [[tool:bash {}]]"}]),
        user("<system-reminder>runtime context</system-reminder>"),
    ]
    script, index = find_script(messages)
    assert (script.tool, index) == (("bash", {}), 1)
    script, index = find_script([user("a"), user("b c")])
    assert (script.text, index) == ("b c", 1)


# -- HTTP ---------------------------------------------------------------------


def test_models(client: httpx.Client) -> None:
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert listing["data"][0] == {
        "id": "mock-model",
        "object": "model",
        "created": listing["data"][0]["created"],
        "owned_by": "corral-sim",
    }
    assert client.get("/v1/models/mock-model").json()["id"] == "mock-model"
    missing = client.get("/v1/models/gpt-9")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_streams_echo_word_by_word_with_usage(client: httpx.Client, app: Starlette) -> None:
    body = chat(
        [{"role": "system", "content": "be brief"}, user("hello there world")],
        stream_options={"include_usage": True},
        tools=TOOLS,
    )
    frames = stream(client, body)
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert {"id", "created", "model"} <= chunks[0].keys()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(deltas) >= 3
    assert text_of(chunks) == "Echo: hello there world"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 5,  # words of every message
        "completion_tokens": len(deltas),
        "total_tokens": 5 + len(deltas),
    }
    assert app.state.requests[-1]["messages"][1]["content"] == "hello there world"


def test_no_usage_chunk_unless_asked(client: httpx.Client) -> None:
    frames = stream(client, chat([user("hi there")]))
    assert all(c == "[DONE]" or "usage" not in c for c in frames)


def test_tool_call_then_tool_result(client: httpx.Client) -> None:
    first = [user(f"run it {BASH}")]
    frames = stream(client, chat(first, tools=TOOLS))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in frames[:-1]
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    head = calls[0]
    assert head["index"] == 0 and head["type"] == "function"
    assert head["id"].startswith("call_")
    assert head["function"] == {"name": "bash", "arguments": ""}
    assert len(calls) >= 3 and all("id" not in c for c in calls[1:])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"command": "echo hi", "description": "say hi"}
    assert frames[-2]["choices"][0]["finish_reason"] == "tool_calls"

    call = {
        "id": head["id"],
        "type": "function",
        "function": {"name": "bash", "arguments": arguments},
    }
    follow = [
        *first,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": head["id"], "content": "hi\n" + "x" * 200},
    ]
    frames = stream(client, chat(follow, tools=TOOLS))
    assert text_of(frames[:-1]) == "Tool done: " + ("hi\n" + "x" * 200)[:80]
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_directive_without_tools_gives_a_title(client: httpx.Client) -> None:
    assert text_of(stream(client, chat([user(f"run it {BASH}")]))[:-1]) == TITLE_TEXT


def test_error_only_with_tools(client: httpx.Client) -> None:
    for status, kind in ((400, "invalid_request_error"), (500, "server_error")):
        resp = client.post(
            "/v1/chat/completions",
            json=chat([user(f"[[error:{status}]] boom")], tools=TOOLS, stream=True),
        )
        assert resp.status_code == status
        err = resp.json()["error"]
        assert err["message"] == f"mock upstream error {status}"
        assert err["type"] == kind and err["code"]
    ok = client.post("/v1/chat/completions", json=chat([user("[[error:500]] boom")]))
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == TITLE_TEXT


def test_non_streaming_text_and_tool_call(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=chat([user("one two")])).json()
    assert resp["object"] == "chat.completion"
    assert resp["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Echo: one two",
        "refusal": None,
    }
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert resp["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    resp = client.post("/v1/chat/completions", json=chat([user(BASH)], tools=TOOLS)).json()
    (call,) = resp["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"])["command"] == "echo hi"
    assert resp["choices"][0]["finish_reason"] == "tool_calls"


def test_slow_spreads_chunks_over_the_duration(client: httpx.Client) -> None:
    started = time.monotonic()
    frames = stream(client, chat([user("[[slow:0.6]] tick tock")]))
    elapsed = time.monotonic() - started
    assert text_of(frames[:-1]) == "Echo: tick tock"
    assert len([c for c in frames[:-1] if c["choices"][0]["delta"].get("content")]) >= 6
    assert 0.5 <= elapsed < 2.0


def test_slow_stream_stops_when_the_client_leaves(client: httpx.Client, app: Starlette) -> None:
    before = app.state.disconnects
    body = chat([user("[[slow:5]] a long reply")], stream=True)
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        lines = resp.iter_lines()
        seen = 0
        while seen < 3:
            seen += next(lines).startswith("data: ")
    deadline = time.monotonic() + 2
    while app.state.disconnects == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.state.disconnects == before + 1
    assert time.monotonic() - started < 3


def test_rejects_bodies_without_messages(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json={"model": "mock-model"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    bad = client.post("/v1/chat/completions", content=b"{", headers={"content-type": "x"})
    assert bad.status_code == 400


async def test_serve_in_loop() -> None:
    app = create_app()
    base, stop = await serve_in_loop(app)
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        resp = await client.post("/v1/chat/completions", json=chat([user("in loop")]))
        assert resp.json()["choices"][0]["message"]["content"] == "Echo: in loop"
        await stop()
        with pytest.raises(httpx.ConnectError):
            await client.get("/v1/models")


# -- the official SDK as the oracle for wire compatibility -------------------


def test_openai_sdk_roundtrip(url: str) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0)
    assert [m.id for m in sdk.models.list()] == ["mock-model"]

    pieces = []
    usage = None
    for chunk in sdk.chat.completions.create(
        model="mock-model",
        messages=[{"role": "user", "content": "hello from the sdk"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "Echo: hello from the sdk"
    assert usage is not None and usage.completion_tokens == len(pieces)

    done = sdk.chat.completions.create(
        model="mock-model",
        messages=[{"role": "user", "content": BASH}],
        tools=TOOLS,
    )
    call = done.choices[0].message.tool_calls[0]
    assert call.function.name == "bash"

    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model="mock-model",
            messages=[{"role": "user", "content": "[[error:400]]"}],
            tools=TOOLS,
        )
    assert info.value.status_code == 400


def test_a_directive_from_an_earlier_turn_is_not_replayed() -> None:
    messages = [
        {"role": "user", "content": "[[slow:1]] first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": "second"},
    ]
    script, index = find_script(messages)
    assert index == 2 and not script.has_directive
    wrapped = [*messages, {"role": "user", "content": "runtime context block"}]
    messages[2]["content"] = '[[tool:read {"filePath": "a"}]] second'
    script, index = find_script(wrapped)
    assert index == 2 and script.has_directive
