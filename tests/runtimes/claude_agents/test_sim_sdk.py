"""The simulator is faithful: the official ``anthropic`` SDK, unmodified, drives it.

2.14.0 (Corral's venv: ``Authorization: Bearer`` + ``anthropic-version: 2026-10-21``) covers the
resources, both event paths (list with pagination, SSE stream with deltas), tool confirmation,
custom tool results, interrupt and the error envelopes; 1.17 (``X-Api-Key`` + ``2023-06-01``)
runs one turn in a subprocess from its cache venv.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from corral.sim.claude_agents import BETA, SimState
from tests.plugins.claude_agents import API_KEY

Sim = tuple[str, SimState]
ASK_BASH = {
    "type": "agent_toolset_20260401",
    "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
}
LOOKUP = {
    "type": "custom",
    "name": "lookup",
    "description": "Look a word up on the caller's side.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}


@pytest.fixture
def client(claude_agents_sim_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        api_key=API_KEY, base_url=claude_agents_sim_url, max_retries=0, timeout=30
    ) as c:
        yield c


def _session(client: Any, tools: list[Any] | None = None) -> str:
    agent = client.beta.agents.create(
        name="sdk", model="claude-sonnet-4-5", tools=tools or [{"type": "agent_toolset_20260401"}]
    )
    env = client.beta.environments.create(name="sdk-env")
    return str(client.beta.sessions.create(agent=agent.id, environment_id=env.id).id)


def _text(text: str) -> list[Any]:
    return [{"type": "user.message", "content": [{"type": "text", "text": text}]}]


def _until(stream: Any, stop: Callable[[Any], bool]) -> list[Any]:
    seen = []
    for event in stream:
        seen.append(event)
        if stop(event):
            return seen
    raise AssertionError(f"stream ended early: {[e.type for e in seen]}")


def body(exc: anthropic.APIStatusError) -> Any:
    return exc.body


def _idle(event: Any) -> bool:
    return bool(event.type == "session.status_idle")


def test_resources_round_trip(client: Any) -> None:
    beta = client.beta
    agent = beta.agents.create(
        name="a", model="claude-sonnet-4-5", system="be brief", metadata={"k": "v"},
        tools=[ASK_BASH, LOOKUP],
    )  # fmt: skip
    assert agent.id.startswith("agent_") and agent.version == 1
    assert agent.model.id == "claude-sonnet-4-5" and agent.metadata == {"k": "v"}
    toolset = agent.tools[0]
    assert toolset.type == "agent_toolset_20260401"
    assert toolset.configs[0].permission_policy.type == "always_ask"
    updated = beta.agents.update(agent.id, version=1, system="be briefer")
    assert updated.version == 2 and beta.agents.retrieve(agent.id).system == "be briefer"
    assert beta.agents.retrieve(agent.id, version=1).system == "be brief"
    assert [v.version for v in beta.agents.versions.list(agent.id)] == [2, 1]
    assert agent.id in [a.id for a in beta.agents.list()]
    env = beta.environments.create(name="e", config={"type": "cloud"})
    assert env.id.startswith("env_") and env.config.type == "cloud"
    assert beta.environments.retrieve(env.id).name == "e"
    session = beta.sessions.create(
        agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=env.id, title="t"
    )
    assert session.id.startswith("sesn_") and session.status == "idle"
    assert session.agent.version == 1 and session.environment_id == env.id
    assert beta.sessions.retrieve(session.id).title == "t"
    assert session.id in [s.id for s in beta.sessions.list()]
    beta.sessions.delete(session.id)
    with pytest.raises(anthropic.NotFoundError):
        beta.sessions.retrieve(session.id)


def test_text_turn_stream_and_list(client: Any, claude_agents_sim: Sim) -> None:
    before = len(claude_agents_sim[1].requests)
    sid = _session(client)
    with client.beta.sessions.events.stream(sid, event_deltas=["agent.message"]) as stream:
        sent = client.beta.sessions.events.send(sid, events=_text("hello wide world"))
        assert sent.data[0].type == "user.message" and sent.data[0].processed_at is None
        events = _until(stream, _idle)
    types = [e.type for e in events]
    assert types[:3] == ["user.message", "session.status_running", "user.message"]
    assert events[0].id == events[2].id == sent.data[0].id
    assert events[0].processed_at is None and events[2].processed_at is not None
    deltas = [e.delta.content.text for e in events if e.type == "event_delta"]
    message = next(e for e in events if e.type == "agent.message")
    assert len(deltas) >= 3 and "".join(deltas) == message.content[0].text
    assert message.content[0].text == "Echo: hello wide world"
    assert "event_start" in types and types.index("event_start") < types.index("agent.message")
    end = next(e for e in events if e.type == "span.model_request_end")
    start = next(e for e in events if e.type == "span.model_request_start")
    assert end.model_request_start_id == start.id and end.model_usage.input_tokens > 0
    usage = next(e for e in events if e.type == "session.usage")
    assert usage.usage.output_tokens > 0 and usage.usage.list_cost.currency == "USD"
    assert events[-1].stop_reason.type == "end_turn"
    # The list: each event once (the processed copy), no deltas, same ids, paged.
    listed = list(client.beta.sessions.events.list(sid, limit=2))
    stored = [e for e in events if not e.type.startswith("event_")]
    assert [e.id for e in listed] == list(dict.fromkeys(e.id for e in stored))
    assert listed[0].processed_at is not None
    page = client.beta.sessions.events.list(sid, limit=2)
    assert len(page.data) == 2 and page.next_page
    newest = client.beta.sessions.events.list(sid, order="desc", limit=1, types=["agent.message"])
    assert [e.id for e in newest.data] == [message.id]
    assert client.beta.sessions.retrieve(sid).status == "idle"
    # SDK 2.x: bearer auth, the new version header, and the stream asks for JSON.
    requests = claude_agents_sim[1].requests[before:]
    stream_req = next(r for r in requests if r["path"].endswith("/events/stream"))
    assert stream_req["auth"] == "bearer" and stream_req["version"] == "2026-10-21"
    assert "text/event-stream" not in stream_req["accept"]
    assert "event_deltas" in stream_req["query"]


@pytest.mark.parametrize("result", ["allow", "deny"])
def test_tool_confirmation(client: Any, result: str) -> None:
    sid = _session(client, [ASK_BASH])
    prompt = '[[tool:bash {"command":"echo hi"}]]'
    with client.beta.sessions.events.stream(sid) as stream:
        client.beta.sessions.events.send(sid, events=_text(prompt))
        asked = _until(stream, _idle)
        use = next(e for e in asked if e.type == "agent.tool_use")
        assert use.name == "bash" and use.input == {"command": "echo hi"}
        assert use.evaluated_permission == "ask" and use.evaluation.type == "always_ask"
        assert asked[-1].stop_reason.type == "requires_action"
        assert asked[-1].stop_reason.event_ids == [use.id]
        with pytest.raises(anthropic.BadRequestError):
            client.beta.sessions.events.send(
                sid,
                events=[
                    {"type": "user.tool_confirmation", "tool_use_id": "sevt_x", "result": "allow"}
                ],
            )
        confirm: dict[str, Any] = {
            "type": "user.tool_confirmation",
            "tool_use_id": use.id,
            "result": result,
        }
        if result == "deny":
            confirm["deny_message"] = "not now"
        client.beta.sessions.events.send(sid, events=[confirm])
        rest = _until(stream, _idle)
    tool_result = next(e for e in rest if e.type == "agent.tool_result")
    assert tool_result.tool_use_id == use.id
    if result == "allow":
        assert tool_result.is_error is False and tool_result.content[0].text == "hi\n"
    else:
        assert tool_result.is_error is True and "not now" in tool_result.content[0].text
    assert rest[-1].stop_reason.type == "end_turn"
    assert any(e.type == "agent.message" for e in rest)


def test_custom_tool_result(client: Any) -> None:
    sid = _session(client, [LOOKUP])
    with client.beta.sessions.events.stream(sid) as stream:
        client.beta.sessions.events.send(sid, events=_text('[[tool:lookup {"word":"corral"}]]'))
        asked = _until(stream, _idle)
        use = next(e for e in asked if e.type == "agent.custom_tool_use")
        assert use.name == "lookup" and use.input == {"word": "corral"}
        assert asked[-1].stop_reason.event_ids == [use.id]
        assert client.beta.sessions.retrieve(sid).status == "idle"
        answer = {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": use.id,
            "content": [{"type": "text", "text": "a pen for cattle"}],
        }
        client.beta.sessions.events.send(sid, events=[answer])
        rest = _until(stream, _idle)
    assert rest[0].type == "user.custom_tool_result"
    message = next(e for e in rest if e.type == "agent.message")
    assert message.content[0].text == "Tool done: a pen for cattle"
    assert rest[-1].stop_reason.type == "end_turn"


def test_interrupt_mid_turn(client: Any) -> None:
    sid = _session(client)
    with client.beta.sessions.events.stream(sid, event_deltas=["agent.message"]) as stream:
        client.beta.sessions.events.send(sid, events=_text("[[slow:4]] a slow answer here"))
        _until(stream, lambda e: e.type == "event_delta")
        client.beta.sessions.events.send(sid, events=[{"type": "user.interrupt"}])
        rest = _until(stream, _idle)
    types = [e.type for e in rest]
    assert "user.interrupt" in types and "agent.message" not in types
    assert "span.model_request_end" in types and rest[-1].stop_reason.type == "end_turn"
    assert types.index("user.interrupt") < types.index("session.status_idle")


def test_upstream_error_exhausts(client: Any) -> None:
    sid = _session(client)
    with client.beta.sessions.events.stream(sid) as stream:
        client.beta.sessions.events.send(sid, events=_text("[[error:400]] fail"))
        events = _until(stream, _idle)
    error = next(e for e in events if e.type == "session.error")
    assert error.error.type == "model_request_failed_error"
    assert error.error.retry_status.type == "exhausted"
    assert events[-1].stop_reason.type == "retries_exhausted"
    span_end = next(e for e in events if e.type == "span.model_request_end")
    assert span_end.is_error is True


def test_retryable_upstream_error_is_retried(client: Any) -> None:
    sid = _session(client)
    with client.beta.sessions.events.stream(sid) as stream:
        client.beta.sessions.events.send(sid, events=_text("[[error:500]] fail twice"))
        events = _until(stream, _idle)
    errors = [e.error.retry_status.type for e in events if e.type == "session.error"]
    assert errors == ["retrying", "retrying", "exhausted"]  # max_retries = 2
    assert [e.type for e in events].count("session.status_rescheduled") == 2
    assert events[-1].stop_reason.type == "retries_exhausted"


def test_error_envelopes(client: Any, claude_agents_sim_url: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.beta.sessions.retrieve("sesn_missing")
    assert body(missing.value)["type"] == "error"
    assert body(missing.value)["error"]["type"] == "not_found_error"
    wrong = anthropic.Anthropic(api_key="wrong", base_url=claude_agents_sim_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.beta.agents.list()
    assert body(denied.value)["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.send(_session(client), events=[{"type": "user.nonsense"}])
    # Without the beta header the service refuses (the SDK always sends it).
    raw = httpx.get(
        f"{claude_agents_sim_url}/v1/agents",
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    assert BETA in raw.json()["error"]["message"]


def test_sdk_117_older_headers(anthropic_117_python: Path, claude_agents_sim: Sim) -> None:
    url, sim = claude_agents_sim
    script = Path(__file__).with_name("sdk_script_117.py")
    before = len(sim.requests)
    done = subprocess.run(
        [str(anthropic_117_python), str(script), url, API_KEY],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["version"].startswith("1.17.")
    assert out["stream"][:3] == ["user.message", "session.status_running", "user.message"]
    assert out["stream"][-1] == "session.status_idle"
    assert out["texts"] == ["Echo: hi there"] and out["status"] == "idle"
    assert out["missing"] == "not_found_error" and out["wrong_key"] == "authentication_error"
    mine = sim.requests[before:]
    assert {r["auth"] for r in mine} == {"x-api-key"}
    assert {r["version"] for r in mine} == {"2023-06-01"}
    assert any("beta=true" in r["query"] for r in mine)


@anthropic.beta_async_tool
async def lookup(word: str) -> str:
    """Look a word up."""
    return f"meaning of {word}"


@pytest.mark.parametrize("drop", [False, True])
async def test_sdk_session_tool_runner(claude_agents_sim: Sim, drop: bool) -> None:
    """The SDK's own custom-tool dispatcher (stream + list reconciliation) works unchanged,
    also when its stream is cut before the tool call and it must reconnect and backfill."""
    url, sim = claude_agents_sim
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=url, max_retries=0, timeout=30)
    beta: Any = client.beta
    agent = await beta.agents.create(name="runner", model="claude-sonnet-4-5", tools=[LOOKUP])
    env = await beta.environments.create(name="runner-env")
    session = await beta.sessions.create(agent=agent.id, environment_id=env.id)

    async def prompt() -> None:
        for _ in range(500):  # until the runner's stream is attached
            if sim.store.session(session.id).streams:
                break
            await asyncio.sleep(0.02)
        if drop:
            sim.drop_streams(session.id)
        await beta.sessions.events.send(
            session.id, events=_text('[[tool:lookup {"word":"corral"}]]')
        )

    sender = asyncio.create_task(prompt())
    runner = beta.sessions.events.tool_runner(session.id, tools=[lookup], max_idle=0.5)
    calls = await asyncio.wait_for(_collect(runner), 30)
    await sender
    assert [(c.name, c.posted) for c in calls] == [("lookup", True)]
    messages = [e async for e in beta.sessions.events.list(session.id) if e.type == "agent.message"]
    assert [m.content[0].text for m in messages] == ["Tool done: meaning of corral"]
    await client.close()


async def _collect(runner: Any) -> list[Any]:
    return [call async for call in runner]
