"""The simulator with ``--llm-url local``: the mock LLM's script answered in-process.

Load benchmarks run it so that the model's side of thousands of turns costs no extra process
and no HTTP hop. It must still behave like the real server: the recorded scenarios replay to
the same frames, and the deltas are the mock LLM's chunks, paced as they would be.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from corral.sim.opencode.llm import LOCAL
from tests.sim.test_opencode_sim import (
    BASE,
    FIXTURES,
    Subscriber,
    assert_like_recording,
    new_session,
    prompt,
    recording,
    run_scenario,
    serve,
    shapes,
)


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    with serve(replace(BASE, llm_url=LOCAL)) as url:
        yield url


@pytest.fixture
async def client(local_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=local_url, timeout=10.0) as http:
        yield http


@pytest.fixture
async def events(local_url: str) -> AsyncIterator[Subscriber]:
    async with Subscriber(local_url) as sub:
        yield sub


@pytest.mark.parametrize("name", ["text", "tool", "tool_error", "permission_once", "error"])
async def test_scenario_matches_real_trace(
    name: str, client: httpx.AsyncClient, events: Subscriber
) -> None:
    sid = await run_scenario(name, client, events)
    assert_like_recording(events.of(sid), recording(name))
    history = (await client.get(f"/session/{sid}/message")).json()
    real_history = json.loads((FIXTURES / f"{name}.history.json").read_text())
    assert shapes(history) == shapes(real_history)


async def test_slow_reply_is_paced_one_delta_per_chunk(
    client: httpx.AsyncClient, events: Subscriber
) -> None:
    sid = await new_session(client)
    began = time.monotonic()
    await prompt(client, sid, "[[slow:1]] " + "y" * 4)
    await events.wait(lambda e: e["type"] == "session.idle", sid)
    took = time.monotonic() - began
    deltas = [e["properties"]["delta"] for e in events.of(sid) if e["type"] == "message.part.delta"]
    assert "".join(deltas) == "Echo: yyyy"
    assert len(deltas) == 10  # one character a chunk: ceil(1 s / 0.1 s) chunks
    assert 0.9 <= took < 3.0
