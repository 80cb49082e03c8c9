"""Governance before a model call leaves: allowlists, rates, revocation, and a budget that 256
concurrent calls cannot overshoot (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import GatewaySetup
from tests.support.corral import ok


async def _org(gw: GatewaySetup) -> str:
    assert gw.corral.services.bootstrap is not None
    return gw.corral.services.bootstrap.org.id


async def test_model_allowlist_is_enforced_in_each_format(gw: GatewaySetup) -> None:
    org = await _org(gw)
    async with gw.corral.admin() as admin:
        await ok(await admin.post("/v1/policies", json={
            "scope": f"org:{org}", "kind": "model",
            "body": {"effect": "allow", "models": ["claude-*"]}}), 201)  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as err:
        await gw.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_not_allowed"
    reply = await gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "ok"}]
    )
    assert reply.content[0].text == "Echo: ok"
    assert [p for p, _ in gw.llm.calls] == ["/v1/messages"]


async def test_rate_limit_answers_429_with_retry_after(gw: GatewaySetup) -> None:
    org = await _org(gw)
    async with gw.corral.admin() as admin:
        await ok(
            await admin.post(
                "/v1/policies",
                json={"scope": f"org:{org}", "kind": "limits", "body": {"requests_per_minute": 2}},
            ),
            201,
        )
    client = gw.openai()
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini",
                                             messages=[{"role": "user", "content": "x"}])  # fmt: skip
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="gpt-4o-mini",
                                             messages=[{"role": "user", "content": "x"}])  # fmt: skip
    assert err.value.code == "rate_limited"
    assert err.value.response.headers["retry-after"] == "60"


async def test_a_revoked_key_is_refused_on_its_next_call(gw: GatewaySetup) -> None:
    async with gw.corral.admin() as admin:
        created = await ok(await admin.post("/v1/keys", json={"name": "agent"}), 201)
    client = gw.anthropic(key=created["key"])
    await client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                 messages=[{"role": "user", "content": "a"}])  # fmt: skip
    async with gw.corral.admin() as admin:
        await ok(await admin.post(f"/v1/keys/{created['id']}/revoke"))
    with pytest.raises(anthropic.PermissionDeniedError) as err:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                     messages=[{"role": "user", "content": "b"}])  # fmt: skip
    assert "key_revoked" in str(err.value)
    assert len(gw.llm.calls) == 1


async def test_256_concurrent_calls_cannot_overshoot_one_dollar(gw_any: GatewaySetup) -> None:
    gw = gw_any
    org = await _org(gw)
    async with gw.corral.admin() as admin:
        # $1,000 per million tokens both ways: a call with max_tokens 20 reserves ~$0.2 and
        # really costs (40 + 20 tokens) $0.06, so about sixteen calls fit in the dollar.
        await ok(await admin.put("/v1/prices/gpt-4o-mini", json={
            "input_usd_per_mtok": 1000, "output_usd_per_mtok": 1000}))  # fmt: skip
        budget = await ok(await admin.put("/v1/budgets", json={
            "scope": f"org:{org}", "limit_usd": 1.0, "period": "total"}))  # fmt: skip
    # Plain httpx here (the SDKs are proved elsewhere): 256 concurrent SDK clients on httpx2
    # sometimes never see a response already in their socket (a client-side stall).
    headers = {"Authorization": f"Bearer {gw.key}"}
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    http = httpx.AsyncClient(base_url=gw.base, headers=headers, timeout=60, limits=limits)

    async def one(i: int) -> str:
        body = {"model": "gpt-4o-mini", "max_tokens": 20,
                "messages": [{"role": "user", "content": f"[[usage:40,20]] call {i}"}]}  # fmt: skip
        r = await http.post("/v1/chat/completions", json=body)
        if r.status_code == 200:
            return "ok"
        assert r.status_code == 402 and r.json()["error"]["code"] == "budget_exceeded", r.text
        return "refused"

    async with http:
        results = await asyncio.gather(*(one(i) for i in range(256)))
    assert results.count("ok") >= 10 and results.count("refused") >= 200
    await gw.corral.services.gateway.recorder.flush()
    await gw.corral.services.governor.ledger.aclose()  # every settlement committed
    async with gw.corral.admin() as admin:
        shown = await ok(await admin.get(f"/v1/budgets/{budget['id']}"))
        usage = await ok(await admin.get("/v1/usage", params={"group_by": "outcome"}))
    assert shown["spent_usd"] <= 1.0 and shown["reserved_usd"] == 0
    spent = sum(r["cost_usd"] for r in usage["data"])
    assert spent == pytest.approx(shown["spent_usd"]) and spent == pytest.approx(
        0.06 * results.count("ok")
    )
