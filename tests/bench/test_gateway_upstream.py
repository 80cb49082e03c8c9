"""The gateway benchmark's mock upstream speaks the real wire formats: the official ``openai`` and
``anthropic`` SDKs parse its replies, plain and streamed (the stream usage chunk included)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import anthropic
import openai
import pytest
from bench.gateway_upstream import ANTHROPIC_DELTAS, OPENAI_CHUNKS, serve

MESSAGES = [{"role": "user", "content": "What does an LLM gateway do? Answer briefly."}]


def _running(delay_ms: float = 0.0) -> Iterator[str]:
    """The mock on a free loopback port, its event loop in a thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve("127.0.0.1", 0, delay_ms))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    yield from _running()


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    yield from _running(delay_ms=1.0)


def _openai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0, timeout=10)


def _anthropic(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0, timeout=10)


def test_chat_completion(upstream: str) -> None:
    with _openai(upstream) as client:
        for _ in range(3):  # the same keep-alive connection, again and again
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert reply.object == "chat.completion"
            assert reply.model == "gpt-4o-mini"
            assert reply.choices[0].finish_reason == "stop"
            assert reply.choices[0].message.role == "assistant"
            assert reply.choices[0].message.content
            assert reply.usage is not None
            assert reply.usage.prompt_tokens > 10
            assert reply.usage.completion_tokens == OPENAI_CHUNKS
            assert reply.usage.total_tokens == reply.usage.prompt_tokens + OPENAI_CHUNKS


@pytest.mark.parametrize("fixture", ["upstream", "slow_upstream"])
def test_chat_stream_with_usage(fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(fixture)
    with _openai(url) as client:
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    with_choices = [c for c in chunks if c.choices]
    assert len(with_choices) == 20  # role, 18 content chunks, finish
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert with_choices[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == plain.choices[0].message.content
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == OPENAI_CHUNKS
    assert usage.usage.prompt_tokens == plain.usage.prompt_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in with_choices)


def test_chat_stream_without_usage(upstream: str) -> None:
    with _openai(upstream) as client:
        chunks = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        )
    assert len(chunks) == 20
    assert all(c.choices and c.usage is None for c in chunks)


def test_models(upstream: str) -> None:
    with _openai(upstream) as client:
        assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    with _anthropic(upstream) as client:
        assert "claude-haiku-4-5" in [m.id for m in client.models.list()]


def test_anthropic_message(upstream: str) -> None:
    with _anthropic(upstream) as client:
        reply = client.messages.create(
            model="claude-haiku-4-5", max_tokens=64, system="Be brief.", messages=MESSAGES
        )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.model == "claude-haiku-4-5"
    assert reply.stop_reason == "end_turn"
    assert reply.content[0].type == "text" and reply.content[0].text
    assert reply.usage.input_tokens > 10
    assert reply.usage.output_tokens == ANTHROPIC_DELTAS


@pytest.mark.parametrize("fixture", ["upstream", "slow_upstream"])
def test_anthropic_stream(fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(fixture)
    with _anthropic(url) as client:
        plain = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
        events = list(
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
            )
        )
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == ANTHROPIC_DELTAS
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == ANTHROPIC_DELTAS
    assert final.usage.input_tokens == plain.usage.input_tokens
