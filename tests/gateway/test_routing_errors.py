"""Fallback across targets, upstream errors in the caller's format, cut streams, hang-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from corral.sim._server import BackgroundServer
from corral.sim.processes import free_port
from tests.gateway.conftest import GatewaySetup
from tests.support.corral import ok


def _overloaded_app() -> Starlette:
    async def busy(request: object) -> JSONResponse:
        return JSONResponse({"error": {"message": "overloaded", "type": "server_error",
                                       "param": None, "code": None}}, status_code=503)  # fmt: skip

    return Starlette(routes=[Route("/v1/chat/completions", busy, methods=["POST"])])


@pytest.fixture
def overloaded() -> Iterator[str]:
    with BackgroundServer(_overloaded_app()) as url:
        yield url


async def _calls(gw: GatewaySetup) -> list[dict]:
    await gw.corral.services.gateway.recorder.flush()
    async with gw.corral.admin() as admin:
        return (await ok(await admin.get("/v1/usage/calls")))["data"]


async def test_falls_back_on_5xx_and_on_unreachable(gw: GatewaySetup, overloaded: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with gw.corral.admin() as admin:
        for name, url in (("busy", f"{overloaded}/v1"), ("dead", dead)):
            await ok(await admin.post("/v1/gateway/upstreams",
                                      json={"name": name, "kind": "openai", "base_url": url}), 201)  # fmt: skip
        await ok(await admin.put("/v1/gateway/models/resilient", json={"targets": [
            {"upstream": "busy", "model": "x"}, {"upstream": "dead", "model": "y"},
            {"upstream": "mock", "model": "mock-model"}]}))  # fmt: skip
    reply = await gw.openai().chat.completions.create(
        model="resilient", messages=[{"role": "user", "content": "still there"}]
    )
    assert reply.choices[0].message.content == "Echo: still there"
    (call,) = await _calls(gw)
    assert call["attempts"] == 3 and call["upstream_model"] == "mock-model"
    assert call["outcome"] == "ok"


async def test_last_target_error_reaches_caller_in_its_own_format(gw: GatewaySetup) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        await gw.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fail:429]] hi"}]
        )
    assert err.value.status_code == 429 and err.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.InternalServerError) as aerr:
        await gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=10,
            messages=[{"role": "user", "content": "[[error:529]] hi"}],
        )  # fmt: skip
    assert aerr.value.status_code == 529
    assert aerr.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    calls = await _calls(gw)
    assert {c["outcome"] for c in calls} == {"upstream_error"}
    assert all(c["cost_usd"] == 0 for c in calls)


async def test_a_cut_stream_settles_at_the_estimate_and_says_so(gw: GatewaySetup) -> None:
    stream = await gw.openai().chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": "[[cut]] several words to send here"}],
    )  # fmt: skip
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    (call,) = await _calls(gw)
    assert call["outcome"] == "truncated" and call["code"] == "stream_truncated"
    assert call["estimated"] and call["cost_usd"] > 0


async def test_a_caller_who_hangs_up_cancels_the_upstream(gw: GatewaySetup) -> None:
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "[[slow:4]] a b c d e f g h"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {gw.key}"}
    async with httpx.AsyncClient(base_url=gw.base, timeout=10) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status_code == 200
            async for _ in r.aiter_raw():
                break  # first bytes in: hang up
    for _ in range(60):
        if gw.llm.disconnects:
            break
        await asyncio.sleep(0.05)
    assert gw.llm.disconnects == 1
    (call,) = await _calls(gw)
    assert call["outcome"] == "aborted" and call["estimated"] and call["cost_usd"] > 0


async def test_bad_requests_are_refused_before_anything_is_sent(gw: GatewaySetup) -> None:
    headers = {"Authorization": f"Bearer {gw.key}"}
    async with httpx.AsyncClient(base_url=gw.base, timeout=10) as client:
        r = await client.post("/v1/chat/completions", content=b"{not json", headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = await client.post("/v1/chat/completions", json={"messages": []}, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_required"
        r = await client.post("/v1/messages", json={"model": "claude-haiku-4-5"},
                              headers={"x-api-key": gw.key})  # fmt: skip
        assert r.status_code == 400 and r.json()["type"] == "error"
        r = await client.get("/v1/embeddings", headers=headers)
        assert r.status_code == 404
    assert gw.llm.calls == []
