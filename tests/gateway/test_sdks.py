"""The official SDKs, pointed at Corral, work unmodified: both APIs, streaming and not."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.gateway.conftest import GatewaySetup
from tests.support.corral import ok


async def _calls(gw: GatewaySetup) -> list[dict]:
    await gw.corral.services.gateway.recorder.flush()
    async with gw.corral.admin() as admin:
        return (await ok(await admin.get("/v1/usage/calls")))["data"]


async def test_chat_completions_json_and_stream(gw: GatewaySetup) -> None:
    client = gw.openai()
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there friend"}]
    )
    assert reply.choices[0].message.content == "Echo: hello there friend"
    stream = await client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three"
    # The caller did not ask for usage: the chunk Corral asked for is not passed on.
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    sent = [body for path, body in gw.llm.calls if path.endswith("/chat/completions")]
    assert sent[-1]["stream_options"] == {"include_usage": True}
    assert sent[-1]["model"] == "mock-model" and sent[-1]["max_completion_tokens"] == 4096
    calls = await _calls(gw)
    assert [c["stream"] for c in calls] == [True, False]
    for call in calls:
        assert call["outcome"] == "ok" and call["status"] == 200 and not call["estimated"]
        assert call["model"] == "gpt-4o-mini" and call["upstream_model"] == "mock-model"
        assert call["input_tokens"] == 3 and call["output_tokens"] > 0 and call["cost_usd"] > 0
        assert call["ttft_ms"] is not None and call["latency_ms"] >= call["ttft_ms"]


async def test_responses_json_and_stream(gw: GatewaySetup) -> None:
    client = gw.openai()
    reply = await client.responses.create(model="gpt-4o-mini", input="good morning")
    assert reply.output_text == "Echo: good morning"
    assert reply.usage is not None and reply.usage.output_tokens > 0
    events = [e async for e in await client.responses.create(
        model="gpt-4o-mini", input="stream this please", stream=True)]  # fmt: skip
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Echo: stream this please"
    calls = await _calls(gw)
    assert {c["api"] for c in calls} == {"openai.responses"}
    assert all(c["output_tokens"] > 0 and c["outcome"] == "ok" for c in calls)


async def test_anthropic_messages_json_and_stream(gw: GatewaySetup) -> None:
    client = gw.anthropic()
    reply = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi you"}]
    )
    assert reply.content[0].text == "Echo: hi you"
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=100,
        messages=[{"role": "user", "content": "stream me now"}],
    ) as stream:  # fmt: skip
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Echo: stream me now"
    assert final.usage.output_tokens > 0
    calls = await _calls(gw)
    assert {c["api"] for c in calls} == {"anthropic.messages"}
    assert all(c["input_tokens"] > 0 and c["output_tokens"] > 0 for c in calls)
    # The upstream's own key went upstream, never the caller's Corral key.
    assert gw.llm.calls[-1][1]["max_tokens"] == 100


async def test_models_list_in_each_dialect(gw: GatewaySetup) -> None:
    listed = [m.id async for m in gw.openai().models.list()]
    assert sorted(listed) == ["claude-haiku-4-5", "gpt-4o-mini"]
    page = await gw.anthropic().models.list()
    assert sorted(m.id for m in page.data) == ["claude-haiku-4-5", "gpt-4o-mini"]


async def test_keys_are_required_and_checked(gw: GatewaySetup) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        await gw.openai(key="ck_0123456789_nope").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.status_code == 401
    with pytest.raises(anthropic.AuthenticationError):
        await gw.anthropic(key="not-a-corral-key").messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert gw.llm.calls == []


async def test_unknown_model_and_wrong_api(gw: GatewaySetup) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        await gw.openai().chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.code == "model_not_found"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await gw.anthropic().messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert "model_not_served" in str(bad.value)
    assert gw.llm.calls == []
