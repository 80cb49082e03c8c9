"""The wire formats' request side and bodies: paths, prepare() (bounds, usage injection,
validation), usage in JSON responses, error bodies. Streams: test_wire_stream.py; the official
SDKs reading all of it: test_wire_sdk.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.gateway.wire import WIRES, Usage, WireError, wire_for_path
from tests.gateway import wire_streams as f

CHAT = WIRES["openai.chat"]
RESPONSES = WIRES["openai.responses"]
MESSAGES = WIRES["anthropic.messages"]
USER = [{"role": "user", "content": "hi"}]


def test_registry_and_paths() -> None:
    assert set(WIRES) == {"openai.chat", "openai.responses", "anthropic.messages"}
    assert wire_for_path("/v1/chat/completions") is CHAT
    assert wire_for_path("/v1/chat/completions/") is CHAT
    assert wire_for_path("/v1/responses") is RESPONSES
    assert wire_for_path("/v1/messages/") is MESSAGES
    assert wire_for_path("/v1/completions") is None
    assert wire_for_path("/") is None
    assert (CHAT.family, CHAT.upstream_path) == ("openai", "/chat/completions")
    assert (RESPONSES.family, RESPONSES.upstream_path) == ("openai", "/responses")
    assert (MESSAGES.family, MESSAGES.upstream_path) == ("anthropic", "/v1/messages")


def test_parse_rejects_what_is_not_a_json_object() -> None:
    assert CHAT.parse(b'{"model":"m"}') == {"model": "m"}
    for raw in (b"", b"{", b"[1]", b'"x"', b"null", b"\xff"):
        with pytest.raises(WireError) as caught:
            CHAT.parse(raw)
        assert caught.value.code == "invalid_json"
        assert caught.value.status == 400


# --- prepare ----------------------------------------------------------------------------------


def test_chat_injects_bound_and_usage_into_a_bare_stream() -> None:
    raw = orjson.dumps({"model": "gpt-4.1", "messages": USER, "stream": True})
    body = CHAT.parse(raw)
    prepared = CHAT.prepare(body, 4096, len(raw))
    assert body["max_completion_tokens"] == 4096
    assert body["stream_options"] == {"include_usage": True}
    assert (prepared.model, prepared.stream, prepared.max_output_tokens) == ("gpt-4.1", True, 4096)
    assert prepared.injected_bound and prepared.injected_usage
    assert prepared.input_bound == len(raw)


def test_chat_keeps_the_callers_bound_and_options() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "max_tokens": 100,
        "stream_options": {"include_obfuscation": False},
    }
    size = len(orjson.dumps(body))
    prepared = CHAT.prepare(body, 4096)
    assert "max_completion_tokens" not in body and body["max_tokens"] == 100
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert prepared.max_output_tokens == 100 and not prepared.injected_bound
    assert prepared.injected_usage
    # Without the raw size, the body is measured as serialized, before anything is injected.
    assert prepared.input_bound == size

    asked = {"model": "m", "messages": USER, "stream": True, "max_completion_tokens": 50,
             "max_tokens": 900, "stream_options": {"include_usage": True}}  # fmt: skip
    prepared = CHAT.prepare(asked, 4096)
    assert prepared.max_output_tokens == 50 and not prepared.injected_usage


def test_chat_bound_covers_every_choice_and_non_streams_get_no_usage_option() -> None:
    body: dict[str, Any] = {"model": "m", "messages": USER, "n": 3}
    prepared = CHAT.prepare(body, 1000)
    assert body["max_completion_tokens"] == 1000 and prepared.max_output_tokens == 3000
    assert "stream_options" not in body and not prepared.stream and not prepared.injected_usage


def test_responses_injects_max_output_tokens_only() -> None:
    body: dict[str, Any] = {"model": "gpt-5", "input": "hi", "stream": True}
    prepared = RESPONSES.prepare(body, 2048)
    assert body == {"model": "gpt-5", "input": "hi", "stream": True, "max_output_tokens": 2048}
    assert prepared.injected_bound and not prepared.injected_usage
    body = {"model": "gpt-5", "input": [], "max_output_tokens": 64}
    assert RESPONSES.prepare(body, 2048).max_output_tokens == 64
    # A continued conversation needs no new input.
    assert RESPONSES.prepare({"model": "m", "previous_response_id": "resp_1"}, 10).model == "m"


def test_anthropic_injects_max_tokens_and_leaves_room_for_thinking() -> None:
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": USER, "stream": True}
    prepared = MESSAGES.prepare(body, 8192)
    assert body["max_tokens"] == 8192 and prepared.injected_bound and not prepared.injected_usage
    thinking: dict[str, Any] = {
        "model": "c",
        "messages": USER,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
    }
    prepared = MESSAGES.prepare(thinking, 8192)
    assert thinking["max_tokens"] == prepared.max_output_tokens == 18192
    given = {"model": "c", "messages": USER, "max_tokens": 300}
    assert MESSAGES.prepare(given, 8192).max_output_tokens == 300


@pytest.mark.parametrize(
    ("wire", "body", "code"),
    [
        (CHAT, {"messages": USER}, "model_required"),
        (CHAT, {"model": "", "messages": USER}, "model_required"),
        (MESSAGES, {"model": 7, "messages": USER}, "model_required"),
        (CHAT, {"model": "m"}, "invalid_body"),
        (CHAT, {"model": "m", "messages": "hi"}, "invalid_body"),
        (CHAT, {"model": "m", "messages": USER, "max_tokens": 0}, "invalid_body"),
        (CHAT, {"model": "m", "messages": USER, "max_completion_tokens": 1.5}, "invalid_body"),
        (CHAT, {"model": "m", "messages": USER, "max_tokens": True}, "invalid_body"),
        (CHAT, {"model": "m", "messages": USER, "stream": "yes"}, "invalid_body"),
        (
            CHAT,
            {"model": "m", "messages": USER, "stream": True, "stream_options": 1},
            "invalid_body",
        ),
        (RESPONSES, {"model": "m"}, "invalid_body"),
        (RESPONSES, {"model": "m", "input": {"role": "user"}}, "invalid_body"),
        (RESPONSES, {"model": "m", "input": "x", "max_output_tokens": -5}, "invalid_body"),
        (MESSAGES, {"model": "m", "messages": {}}, "invalid_body"),
        (MESSAGES, {"model": "m", "messages": USER, "max_tokens": "100"}, "invalid_body"),
    ],
)
def test_prepare_rejects(wire: Any, body: dict[str, Any], code: str) -> None:
    with pytest.raises(WireError) as caught:
        wire.prepare(body, 100)
    assert caught.value.code == code
    assert caught.value.message


def test_set_model_renames() -> None:
    body = {"model": "fast", "messages": USER}
    MESSAGES.set_model(body, "claude-haiku-4-5")
    assert body["model"] == "claude-haiku-4-5"


# --- usage in JSON responses -------------------------------------------------------------------


def test_usage_from_json_bodies_splits_cache_tokens() -> None:
    # OpenAI: 2006 prompt tokens include 1920 read from and 64 written to the cache.
    assert CHAT.usage_from_body(f.CHAT_COMPLETION) == Usage(22, 300, 1920, 64)
    assert RESPONSES.usage_from_body(f.RESPONSE_BODY) == Usage(512, 42, 4096, 512)
    # Anthropic reports them apart already.
    assert MESSAGES.usage_from_body(f.ANTHROPIC_MESSAGE) == Usage(12, 57, 20480, 1800)
    older = b'{"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}'
    assert CHAT.usage_from_body(older) == Usage(10, 2, 0, 0)


@pytest.mark.parametrize("raw", [b"", b"<html>", b"[]", b'{"id":"x"}', b'{"usage":null}'])
def test_usage_from_body_without_usage(raw: bytes) -> None:
    for wire in WIRES.values():
        assert wire.usage_from_body(raw) is None


# --- error bodies ------------------------------------------------------------------------------


def test_openai_error_body_shape() -> None:
    for wire in (CHAT, RESPONSES):
        body = orjson.loads(wire.error_body(402, "budget_exceeded", "No room."))
        assert body == {
            "error": {
                "message": "No room.",
                "type": "insufficient_quota",
                "param": None,
                "code": "budget_exceeded",
            }
        }
    types = {
        s: orjson.loads(CHAT.error_body(s, "c", "m"))["error"]["type"]
        for s in (400, 401, 403, 404, 409, 429, 500, 502)
    }
    assert types == {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        409: "invalid_request_error",
        429: "rate_limit_error",
        500: "server_error",
        502: "server_error",
    }


def test_anthropic_error_body_shape() -> None:
    body = orjson.loads(MESSAGES.error_body(429, "rate_limited", "Slow down."))
    assert body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Slow down.",
            "details": {"error_code": "rate_limited"},
        },
    }
    types = {
        s: orjson.loads(MESSAGES.error_body(s, "c", "m"))["error"]["type"]
        for s in (400, 401, 402, 403, 404, 413, 418, 500, 502, 503, 504, 529)
    }
    assert types == {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        418: "invalid_request_error",
        500: "api_error",
        502: "api_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }


def test_is_error_body_recognizes_only_its_own_format() -> None:
    openai_error = (
        b'{\n  "error": {\n    "message": "Incorrect API key provided: sk-abc.",\n'
        b'    "type": "invalid_request_error",\n    "param": null,\n    "code": "invalid_api_key"\n  }\n}\n'
    )
    anthropic_error = (
        b'{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"},'
        b'"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}'
    )
    assert CHAT.is_error_body(openai_error) and RESPONSES.is_error_body(openai_error)
    assert not MESSAGES.is_error_body(openai_error)
    assert MESSAGES.is_error_body(anthropic_error)
    # Anthropic's envelope also has error.message, all that an OpenAI client reads: it passes.
    assert CHAT.is_error_body(anthropic_error)
    for junk in (b"", b"Bad Gateway", b"<html>502</html>", b'{"error":"boom"}', b"[]"):
        assert not any(w.is_error_body(junk) for w in WIRES.values())
    for wire in WIRES.values():
        assert wire.is_error_body(wire.error_body(500, "upstream_failed", "x"))


def test_sse_error_events() -> None:
    assert CHAT.sse_error(502, "upstream_failed", "Upstream closed.") == (
        b'data: {"error":{"message":"Upstream closed.","type":"server_error","param":null,'
        b'"code":"upstream_failed"}}\n\n'
    )
    event = MESSAGES.sse_error(529, "overloaded", "Busy.")
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
    assert orjson.loads(event[19:])["error"]["type"] == "overloaded_error"
    event = RESPONSES.sse_error(500, "upstream_failed", "Boom.")
    assert event.startswith(b"event: error\ndata: ")
    data = orjson.loads(event[19:])
    assert (data["type"], data["code"], data["message"], data["param"]) == (
        "error",
        "upstream_failed",
        "Boom.",
        None,
    )
    assert data["error"]["code"] == "upstream_failed"
