"""One suite, every runtime: the same scenarios through Corral's public API on each adapter.

Profiles (``tests/conformance/profiles``) say how to reach each runtime, real or simulated, and
which prompts make its model do what; capability flags decide what is skipped, with the reason.
Streams go through :class:`tests.support.faults.FaultProxy` so dropped connections and garbage
frames are exercised against real servers too. Corral runs on SQLite here: storage paths are
covered on both databases elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from corral.runtimes import registry
from corral.runtimes.sse import malformed_frames
from corral.sim.processes import free_port
from tests.conformance.profiles import Profile, Runtime, all_profiles
from tests.conformance.talk import Talk, data, gap_free, settled, text_of
from tests.support.corral import corral_settings, running_corral
from tests.support.faults import FaultProxy, fault_proxy
from tests.support.sse import Frame, turn_done

PROFILES = all_profiles()


@pytest.fixture(
    params=[pytest.param(p, id=p.id, marks=[pytest.mark.slow] if p.slow else []) for p in PROFILES]
)
def profile(request: pytest.FixtureRequest) -> Profile:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def proxied(
    profile: Profile, request: pytest.FixtureRequest
) -> Iterator[tuple[Runtime, FaultProxy | None]]:
    runtime: Runtime = request.getfixturevalue(profile.fixture)
    if not profile.proxied_faults:
        yield runtime, None
        return
    with ExitStack() as stack:
        proxy, url = stack.enter_context(fault_proxy(runtime.base_url))
        yield replace(runtime, base_url=url), proxy


@pytest.fixture
async def talk(
    profile: Profile, proxied: tuple[Runtime, FaultProxy | None], tmp_path: Path
) -> AsyncIterator[Talk]:
    runtime, _ = proxied
    settings = corral_settings(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    async with running_corral(settings) as corral:
        yield await Talk.start(corral, profile, runtime)


def caps(profile: Profile) -> dict[str, bool]:
    return registry.capabilities(profile.kind).as_dict()


def needs(profile: Profile, flag: str) -> None:
    if not caps(profile)[flag]:
        pytest.skip(f"{profile.kind} has no {flag} (capability flag is false)")


def first(kind: str) -> Callable[[Frame], bool]:
    return lambda f: f.event == kind


async def test_text_turn(profile: Profile, talk: Talk) -> None:
    sid, frames = await talk.turn(profile.prompts.text)
    gap_free(frames)
    assert profile.prompts.text_reply in text_of(frames)
    if caps(profile)["token_deltas"]:
        deltas = data(frames, "message.delta")
        assert deltas and profile.prompts.text_reply in "".join(d["text"] for d in deltas)
    if caps(profile)["usage"]:
        usage = data(frames, "usage")
        assert usage and sum(u.get("input_tokens") or 0 for u in usage) > 0
    assert data(frames, "turn.completed")[-1]["stop_reason"] == "end_turn"
    assert len(data(frames, "turn.completed")) == 1
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "idle"


async def test_tool_call_and_result(profile: Profile, talk: Talk) -> None:
    needs(profile, "tool_events")
    _, frames = await talk.turn(profile.prompts.tool)
    calls, results = data(frames, "tool.call"), data(frames, "tool.result")
    # A runtime may report a call more than once as it progresses (pending, running): each
    # report once, all for the one call.
    assert {c["name"] for c in calls} == {profile.prompts.tool_name}
    assert len({c["call_id"] for c in calls}) == 1
    assert len({(c["call_id"], c.get("status")) for c in calls}) == len(calls)
    assert [r["call_id"] for r in results] == [calls[0]["call_id"]]
    assert results[0]["is_error"] is False
    types = [f.event for f in frames]
    assert types.index("tool.call") < types.index("tool.result") < types.index("turn.completed")
    gap_free(frames)


@pytest.mark.parametrize(("decision", "denied"), [("allow_once", False), ("deny", True)])
async def test_approval_asked_and_answered(
    profile: Profile, talk: Talk, decision: str, denied: bool
) -> None:
    needs(profile, "approvals")
    if profile.prompts.approval is None:
        pytest.skip(f"{profile.id} has no approval prompt")
    sid, asked = await talk.turn(profile.prompts.approval, until=first("approval.requested"))
    approval = data(asked, "approval.requested")[0]
    assert approval["name"] == profile.prompts.approval_tool
    assert decision in approval["choices"]
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "waiting_approval"
    path = f"/v1/sessions/{sid}/approvals/{approval['approval_id']}"
    assert (await talk.call("POST", path, json={"decision": decision}))["decision"] == decision
    again = await talk.raw("POST", path, json={"decision": decision})
    assert again.status_code == 409
    rest = await talk.follow(sid, asked[-1].id or 0)
    gap_free(asked + rest)
    assert len(data(asked + rest, "approval.resolved")) == 1
    results = [r for r in data(rest, "tool.result") if r.get("call_id") == approval.get("call_id")]
    if denied:
        assert all(r["is_error"] for r in results)
    else:
        assert len(results) == 1 and results[0]["is_error"] is False
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "idle"


async def test_client_input(profile: Profile, talk: Talk) -> None:
    needs(profile, "client_tools")
    if profile.prompts.client_input is None:
        pytest.skip(f"{profile.id} has no client-input prompt")
    sid, asked = await talk.turn(profile.prompts.client_input, until=first("input.requested"))
    request = data(asked, "input.requested")[0]
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "waiting_input"
    if request.get("kind") == "client_tool":
        body: dict[str, Any] = {
            "tool_results": [{"call_id": c, "output": "blue"} for c in request["call_ids"]]
        }
    else:
        body = {"text": "blue"}
    path = f"/v1/sessions/{sid}/inputs/{request['request_id']}"
    await talk.call("POST", path, json=body)
    assert (await talk.raw("POST", path, json=body)).status_code == 409
    rest = await talk.follow(sid, asked[-1].id or 0)
    gap_free(asked + rest)
    assert "blue" in text_of(rest)
    assert data(rest, "turn.completed")[-1]["stop_reason"] == "end_turn"


async def test_cancel_mid_turn(profile: Profile, talk: Talk) -> None:
    needs(profile, "cancel")
    started = "message.delta" if caps(profile)["token_deltas"] else "turn.started"
    sid, head = await talk.turn(profile.prompts.slow, until=first(started))
    await talk.call("POST", f"/v1/sessions/{sid}/cancel")
    rest = await talk.follow(sid, head[-1].id or 0, until=settled)
    gap_free(head + rest)
    assert data(rest, "turn.completed")[-1]["stop_reason"] == "cancelled"
    states = [d["state"] for d in data(head + rest, "session.state")]
    assert "cancelling" in states and states[-1] == "idle"


async def test_upstream_error(profile: Profile, talk: Talk) -> None:
    sid, frames = await talk.turn(profile.prompts.error)
    assert data(frames, "error"), "the failure is reported as an error event"
    assert data(frames, "turn.completed")[-1]["stop_reason"] == "error"
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "failed"


async def test_runtime_unreachable(
    profile: Profile, proxied: tuple[Runtime, FaultProxy | None], talk: Talk
) -> None:
    runtime, _ = proxied
    dead = replace(runtime, base_url=f"http://127.0.0.1:{free_port()}")
    agent_id = await talk.add_agent(dead, name="nowhere")
    response = await talk.raw("POST", "/v1/sessions", json={"agent_id": agent_id, "input": "hi"})
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "runtime_unreachable"


async def test_malformed_native_frame_is_skipped(
    profile: Profile, proxied: tuple[Runtime, FaultProxy | None], talk: Talk
) -> None:
    _, proxy = proxied
    if proxy is None:
        pytest.skip(f"{profile.id}: event stream is not plain HTTP; the adapter tests cover it")
    before = malformed_frames[profile.kind]
    proxy.inject_malformed()
    sid, frames = await talk.turn(profile.prompts.text)
    assert proxy.injected == 1
    assert malformed_frames[profile.kind] == before + 1
    gap_free(frames)
    assert profile.prompts.text_reply in text_of(frames)
    assert (await talk.call("GET", f"/v1/sessions/{sid}"))["state"] == "idle"


async def test_dropped_stream_loses_and_duplicates_nothing(
    profile: Profile, proxied: tuple[Runtime, FaultProxy | None], talk: Talk
) -> None:
    _, proxy = proxied
    if proxy is None:
        pytest.skip(f"{profile.id}: event stream is not plain HTTP; the adapter tests cover it")
    started = "message.delta" if caps(profile)["token_deltas"] else "turn.started"
    sid, head = await talk.turn(profile.prompts.slow, until=first(started))
    proxy.drop_streams()
    rest = await talk.follow(sid, head[-1].id or 0, until=turn_done)
    frames = head + rest
    assert proxy.dropped >= 1
    gap_free(frames)
    completed = data(frames, "message.completed")
    assert len({str(c.get("message_id") or c) for c in completed}) == len(completed)
    assert profile.prompts.slow_reply in text_of(frames)
    ends = data(frames, "turn.completed")
    assert len(ends) == 1 and ends[0]["stop_reason"] == "end_turn"
    events = (await talk.call("GET", f"/v1/sessions/{sid}/events?limit=200"))["data"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
