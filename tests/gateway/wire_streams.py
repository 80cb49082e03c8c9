"""Response bodies and SSE streams shaped like the real APIs' (checked against the official SDKs'
types in test_wire_sdk.py): compact JSON, the fields and event order each API sends today."""

from __future__ import annotations

from typing import Any

import orjson

# --- OpenAI chat -------------------------------------------------------------------------------

CHAT_HEAD = (
    '"id":"chatcmpl-CkVb2n6pWq8rY3tA0uH1sD9fLmZx","object":"chat.completion.chunk",'
    '"created":1761570283,"model":"gpt-4.1-2025-04-14","service_tier":"default",'
    '"system_fingerprint":"fp_a1b2c3d4e5"'
)
CHAT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    # Cache reads and (since GPT-5.6) writes are counted inside prompt_tokens.
    "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 64, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def chat_chunk(delta: dict[str, Any], finish: str | None = None, *, usage: bool = True) -> bytes:
    """One chunk event; ``usage`` adds the ``"usage":null`` that include_usage puts on each."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    tail = ',"usage":null' if usage else ""
    text = "{" + CHAT_HEAD + ',"choices":[' + orjson.dumps(choice).decode() + "]" + tail
    if delta.get("content"):
        text += ',"obfuscation":"q3Lk"'
    return b"data: " + text.encode() + b"}\n\n"


CHAT_USAGE_EVENT = (
    b"data: {"
    + CHAT_HEAD.encode()
    + b',"choices":[],"usage":'
    + orjson.dumps(CHAT_USAGE)
    + b"}\n\n"
)
CHAT_DONE = b"data: [DONE]\n\n"
CHAT_WORDS = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]


def chat_stream(words: list[str] = CHAT_WORDS, *, usage: bool = True) -> bytes:
    """A text stream; with ``usage`` it is what include_usage produces, without it what a caller
    who never asked for usage gets."""
    events = [chat_chunk({"role": "assistant", "content": "", "refusal": None}, usage=usage)]
    events += [chat_chunk({"content": w}, usage=usage) for w in words]
    events.append(chat_chunk({}, "stop", usage=usage))
    if usage:
        events.append(CHAT_USAGE_EVENT)
    events.append(CHAT_DONE)
    return b"".join(events)


CHAT_TOOL_STREAM = b"".join(
    [
        chat_chunk({"role": "assistant", "content": None, "refusal": None}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_Q1w2E3r4T5y6",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chat_chunk({}, "tool_calls"),
        CHAT_USAGE_EVENT,
        CHAT_DONE,
    ]
)

CHAT_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-CkVb2n6pWq8rY3tA0uH1sD9fLmZx",
        "object": "chat.completion",
        "created": 1761570283,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I help you today?",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": CHAT_USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_a1b2c3d4e5",
    }
)

# What OpenAI sends when a stream fails after it started.
CHAT_ERROR_EVENT = (
    b'data: {"error":{"message":"The server had an error while processing your request.",'
    b'"type":"server_error","param":null,"code":null}}\n\n'
)

# --- OpenAI responses --------------------------------------------------------------------------

RESP_ID = "resp_68a1f0c2d9e48190a7b3c5d6e7f80912"
MSG_ID = "msg_68a1f0c3a1b28190b4c5d6e7f8091a2b"
RESP_USAGE = {
    "input_tokens": 5120,
    "input_tokens_details": {"cached_tokens": 4096, "cache_write_tokens": 512},
    "output_tokens": 42,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 5162,
}
RESP_TEXT = "Paris is the capital of France."


def response_object(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": RESP_ID,
        "object": "response",
        "created_at": 1755377858,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": "Answer in one sentence.",
        "max_output_tokens": 4096,
        "max_tool_calls": None,
        "model": "gpt-5-mini-2025-08-07",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def responses_stream(end: str = "response.completed") -> bytes:
    text_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    item = {
        "id": MSG_ID,
        "type": "message",
        "status": "in_progress",
        "content": [],
        "role": "assistant",
    }
    pieces = ["Paris", " is", " the", " capital", " of", " France", "."]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object("in_progress", [], None)},
        {"type": "response.in_progress", "response": response_object("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.content_part.added",
            "item_id": MSG_ID,
            "output_index": 0,
            "content_index": 0,
            "part": text_part,
        },
    ]
    for piece in pieces:
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": MSG_ID,
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
                "obfuscation": "Zx9",
            }
        )
    done_part = {**text_part, "text": RESP_TEXT}
    done_item = {**item, "status": "completed", "content": [done_part]}
    events += [
        {
            "type": "response.output_text.done",
            "item_id": MSG_ID,
            "output_index": 0,
            "content_index": 0,
            "text": RESP_TEXT,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": MSG_ID,
            "output_index": 0,
            "content_index": 0,
            "part": done_part,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": end, "response": response_object(end.split(".")[1], [done_item], RESP_USAGE)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return b"".join(_sse(event) for event in events)


RESPONSE_BODY = orjson.dumps(
    response_object(
        "completed",
        [
            {
                "id": MSG_ID,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "annotations": [], "logprobs": [], "text": RESP_TEXT}
                ],
            }
        ],
        RESP_USAGE,
    )
)

# --- Anthropic messages ------------------------------------------------------------------------

ANTHROPIC_START = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929",'
    b'"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,'
    b'"cache_creation_input_tokens":1800,"cache_read_input_tokens":20480,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":1800,"ephemeral_1h_input_tokens":0},'
    b'"output_tokens":1,"service_tier":"standard"}}}\n\n'
)


def anthropic_text(index: int, text: str) -> bytes:
    delta = {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }
    return b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n"


def anthropic_stream(*, newer_delta: bool = True, words: list[str] | None = None) -> bytes:
    """A text answer. ``newer_delta``: message_delta repeats input and cache counts, as the API
    has since 2025; older versions sent only output_tokens there."""
    words = words or ["Hello", "!", " How", " can", " I", " help", "?"]
    usage = b'{"output_tokens":57}'
    if newer_delta:
        usage = (
            b'{"input_tokens":12,"cache_creation_input_tokens":1800,'
            b'"cache_read_input_tokens":20480,"output_tokens":57}'
        )
    return b"".join(
        [
            ANTHROPIC_START,
            b"event: content_block_start\n"
            b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
            b'event: ping\ndata: {"type": "ping"}\n\n',
            *(anthropic_text(0, w) for w in words),
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
            b"event: message_delta\n"
            b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
            b'"usage":' + usage + b"}\n\n",
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ]
    )


ANTHROPIC_OVERLOADED = (
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)

ANTHROPIC_MESSAGE = orjson.dumps(
    {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello! How can I help?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 1800,
            "cache_read_input_tokens": 20480,
            "cache_creation": {"ephemeral_5m_input_tokens": 1800, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 57,
            "service_tier": "standard",
        },
    }
)
