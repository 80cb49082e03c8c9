"""The same scenarios, through Corral's public API, against the simulated and the real OpenCode.

The real server is ``opencode-ai@1.18.33`` from npm, installed by the test setup into
``~/.cache/corral/peers`` and started on loopback with its model pointed at the mock LLM; the
scenarios are skipped (with the reason) only where npm cannot install it. Corral runs on SQLite
here: the storage paths are covered on both databases elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.fleet import make_agent, make_runtime, make_team, make_user
from tests.support.sse import Frame, events_of, read_stream, turn_done


@pytest.fixture(params=["simulator", "real"])
def opencode_url(request: pytest.FixtureRequest) -> str:
    name = "opencode_sim_url" if request.param == "simulator" else "real_opencode_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def talk(opencode_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with running_corral(
        corral_settings(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    ) as corral:
        yield await _Talk.start(corral, opencode_url)


class _Talk:
    """A developer with an agent on the runtime under test."""

    def __init__(self, corral: CorralServer, key: str, agent_id: str) -> None:
        self.corral, self.key, self.agent_id = corral, key, agent_id

    @classmethod
    async def start(cls, corral: CorralServer, url: str) -> _Talk:
        team = await make_team(corral, "conformance")
        dev = await make_user(corral, team["id"], "developer", "c@x.io")
        runtime = await make_runtime(corral, url)
        agent = await make_agent(corral, dev["key"], runtime["id"])
        return cls(corral, dev["key"], agent["id"])

    async def turn(self, prompt: str, *, until: Any = turn_done) -> tuple[str, list[Frame]]:
        async with self.corral.client(self.key) as client:
            body = {"agent_id": self.agent_id, "input": prompt}
            session = await ok(await client.post("/v1/sessions", json=body), 201)
            frames = events_of(await read_stream(client, session["id"], until=until, timeout=60))
            return session["id"], frames

    async def follow(self, sid: str, after: int, until: Any = turn_done) -> list[Frame]:
        async with self.corral.client(self.key) as client:
            return events_of(
                await read_stream(client, sid, last_event_id=after, until=until, timeout=60)
            )

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.corral.client(self.key) as client:
            return await ok(await client.request(method, path, **kwargs))


def data(frames: list[Frame], kind: str) -> list[dict[str, Any]]:
    return [f.data["data"] for f in frames if f.event == kind]  # type: ignore[index]


def assert_gap_free(frames: list[Frame], start: int = 1) -> None:
    assert [f.id for f in frames] == list(range(start, start + len(frames)))


async def test_text_turn_with_deltas(talk: _Talk) -> None:
    sid, frames = await talk.turn("hello world from corral")
    assert_gap_free(frames)
    deltas = data(frames, "message.delta")
    assert len(deltas) >= 2
    completed = data(frames, "message.completed")
    assert [c["content"][0]["text"] for c in completed] == ["Echo: hello world from corral"]
    assert "".join(d["text"] for d in deltas) == "Echo: hello world from corral"
    usage = data(frames, "usage")
    assert usage and usage[0]["input_tokens"] > 0 and usage[0]["cost_usd"] > 0
    assert data(frames, "turn.completed")[-1]["stop_reason"] == "end_turn"
    session = await talk.call("GET", f"/v1/sessions/{sid}")
    assert session["state"] == "idle" and session["cost_usd"] > 0


async def test_tool_call(talk: _Talk) -> None:
    _, frames = await talk.turn('read it [[tool:read {"filePath":"hello.txt"}]]')
    calls, results = data(frames, "tool.call"), data(frames, "tool.result")
    assert calls and calls[0]["name"] == "read"
    assert len(results) == 1 and results[0]["is_error"] is False
    assert results[0]["call_id"] == calls[0]["call_id"]
    types = [f.event for f in frames]
    assert types.index("tool.call") < types.index("tool.result") < types.index("turn.completed")
    assert data(frames, "message.completed")[-1]["content"][0]["text"].startswith("Tool done:")


@pytest.mark.parametrize(("decision", "failed"), [("allow_once", False), ("deny", True)])
async def test_permission_asked_and_answered(talk: _Talk, decision: str, failed: bool) -> None:
    prompt = '[[tool:bash {"command":"echo hi","description":"say hi"}]]'
    sid, asked = await talk.turn(prompt, until=lambda f: f.event == "approval.requested")
    approval = data(asked, "approval.requested")[0]
    assert approval["name"] == "bash" and approval["input"]["command"] == "echo hi"
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "waiting_approval"
    path = f"/v1/sessions/{sid}/approvals/{approval['approval_id']}"
    resolved = await talk.call("POST", path, json={"decision": decision})
    assert resolved["decision"] == decision
    rest = await talk.follow(sid, asked[-1].id or 0)
    assert_gap_free(asked + rest)
    assert len(data(asked + rest, "approval.resolved")) == 1
    results = data(rest, "tool.result")
    assert len(results) == 1 and results[0]["is_error"] is failed
    if not failed:
        assert results[0]["output"].strip() == "hi"
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "idle"


async def test_cancel_mid_stream(talk: _Talk) -> None:
    sid, started = await talk.turn(
        "[[slow:4]] a slow answer", until=lambda f: f.event == "message.delta"
    )
    await talk.call("POST", f"/v1/sessions/{sid}/cancel")
    settled = lambda f: f.event == "session.state" and f.data["data"]["state"] == "idle"  # noqa: E731
    rest = await talk.follow(sid, started[-1].id or 0, until=settled)
    assert data(rest, "turn.completed")[-1]["stop_reason"] == "cancelled"
    states = [d["state"] for d in data(started + rest, "session.state")]
    assert "cancelling" in states and states[-1] == "idle"


async def test_upstream_error(talk: _Talk) -> None:
    sid, frames = await talk.turn("[[error:400]] please fail")
    errors = data(frames, "error")
    assert errors and errors[0]["http_status"] == 400 and errors[0]["code"] == "APIError"
    assert data(frames, "turn.completed")[-1]["stop_reason"] == "error"
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "failed"
