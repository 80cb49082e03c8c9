"""A scripted mock LLM (OpenAI- and Anthropic-compatible) for driving agent runtimes.

Real runtimes (OpenCode, Hermes, LangGraph, ...) only need an OpenAI-compatible (or
Anthropic-compatible) upstream to run offline. This server is that upstream: the *user's
prompt* scripts what the "model" answers, so a test can make a real runtime call a tool, hit
an upstream error or stream slowly, just by choosing the prompt text.

Endpoints
---------
* ``GET /v1/models`` and ``GET /v1/models/{id}`` (one model, ``mock-model``; unknown ids get a
  404 OpenAI error envelope);
* ``POST /v1/chat/completions``, streaming (SSE ``data: {chunk}`` frames, then
  ``data: [DONE]``; ``stream_options.include_usage`` adds a final chunk with ``usage`` and
  empty ``choices``) and non-streaming. Any ``Authorization`` header, or none, is accepted.
* ``POST /v1/responses`` (OpenAI Responses API, :mod:`.responses_api`): ``input`` is a
  string or a list of items (messages whose ``content`` is a string or ``input_text`` /
  ``output_text`` parts, ``function_call`` and ``function_call_output`` items); optional
  ``instructions``, ``tools``, ``stream``; other fields (``max_output_tokens``,
  ``temperature``, ...) are echoed in the ``response`` object, not enforced. A body that is
  not an object or lacks ``input`` gets a 400 OpenAI error envelope. The reply is a
  ``response`` object (``id`` ``resp_...``, ``status: "completed"``) whose ``output`` holds one
  ``message`` item (one ``output_text`` part) or one ``function_call`` item (``call_id`` as
  chat's call id, ``id`` ``fc_...``). Streamed as named SSE events (``event:`` + ``data:``,
  every payload with ``type`` and a ``sequence_number`` from 0): ``response.created``,
  ``response.in_progress``, ``response.output_item.added``, then for text
  ``response.content_part.added``, one ``response.output_text.delta`` per chunk,
  ``response.output_text.done``, ``response.content_part.done``, or for a tool call one
  ``response.function_call_arguments.delta`` per argument fragment and
  ``response.function_call_arguments.done``; then ``response.output_item.done`` and
  ``response.completed`` (the full response with ``usage``). No ``[DONE]`` frame.
* ``POST /v1/messages`` (Anthropic Messages API, :mod:`.anthropic_api`): ``max_tokens``
  (an integer) and ``messages`` are required (else 400 ``invalid_request_error``); content is a
  string or blocks (``text``; ``tool_use`` in assistant turns and ``tool_result`` in user
  turns play the roles of chat's tool calls and tool messages); optional ``system`` (string
  or text blocks), ``tools``, ``stream``. ``max_tokens`` is not enforced. Any ``x-api-key``
  (or none) and any ``anthropic-version`` are accepted. The reply is a ``message`` (``id``
  ``msg_...``) with one ``text`` block or one ``tool_use`` block (``id`` ``toolu_`` + the hex
  of chat's call id), ``stop_reason`` ``end_turn`` or ``tool_use``. Streamed as
  ``message_start`` (usage with the input tokens and ``output_tokens: 1``),
  ``content_block_start``, ``ping``, one ``content_block_delta`` per chunk (``text_delta``, or
  ``input_json_delta`` argument fragments), ``content_block_stop``, ``message_delta``
  (``stop_reason`` and the final ``usage.output_tokens``) and ``message_stop``. Errors use
  Anthropic's shape ``{"type": "error", "error": {"type": T, "message": M}}`` (plus a
  ``request-id`` header) with T by status: 400 ``invalid_request_error``, 401
  ``authentication_error``, 402 ``billing_error``, 403 ``permission_error``, 404
  ``not_found_error``, 413 ``request_too_large``, 429 ``rate_limit_error``, 500 ``api_error``,
  504 ``timeout_error``, 529 ``overloaded_error``; any other 4xx ``invalid_request_error``,
  any other 5xx ``api_error``.

Both are translated to chat-shaped messages so the grammar below, the reply and the token
counts are the chat ones: ``instructions`` / ``system`` become a system message, a
``function_call`` item / ``tool_use`` block an assistant tool call, and a
``function_call_output`` item / ``tool_result`` block a ``tool`` message (so the follow-up
to a scripted tool call answers ``Tool done: ...``).

Every parsed request body is appended to ``app.state.requests``, and ``(path, body)`` to
``app.state.calls`` (e.g. ``("/v1/messages", {...})``; POST bodies that parse as JSON, on all
three endpoints), and a client disconnect during a streamed reply increments
``app.state.disconnects``, so tests can assert what a runtime sent, where, and that it hung
up.

Script grammar (a contract other tests rely on)
-----------------------------------------------
Which text is the prompt: runtimes wrap or append their own user messages, so the server
scans *all* ``user`` messages and picks the last one containing a well-formed directive;
without any directive it takes the last user message. Content may be a string or a list of
parts (only ``{"type": "text", "text"}`` and ``input_text`` parts are read). The *prompt
text* is that message's text with directive markup removed and whitespace collapsed.
Directives may appear anywhere in the text and combine with ordinary words and with each
other:

``(no directive)``
    Reply ``Echo: <prompt text>``, streamed one word per chunk (so a multi-word prompt
    gives >= 3 content deltas); ``finish_reason: "stop"``.

``[[tool:NAME {json object}]]``  (the JSON is optional and defaults to ``{}``)
    e.g. ``[[tool:bash {"command":"echo hi","description":"say hi"}]]``.

    * Request has non-empty ``tools`` and no ``tool``-role message follows the user message
      holding the directive: reply with exactly one tool call to NAME with those arguments
      (streamed the OpenAI way: a first delta with ``id``, ``type: "function"``,
      ``function.name`` and empty arguments, then argument fragments);
      ``finish_reason: "tool_calls"``. The call id is ``call_`` + 24 hex digits derived
      from the message position, NAME and arguments (stable across runs).
    * A ``tool`` message follows it: reply ``Tool done: <first 80 chars of the last such
      tool message's content>``; ``finish_reason: "stop"``.
    * Request has no ``tools`` (e.g. OpenCode's session-title call): reply
      ``Scripted session``.

``[[error:STATUS]]``  e.g. ``[[error:400]]``, ``[[error:500]]``
    Only when the request has non-empty ``tools`` (so title calls still succeed; without
    tools the reply is ``Scripted session``): answer HTTP STATUS with
    ``{"error": {"message": "mock upstream error STATUS", "type": T, "param": null,
    "code": C}}`` where T is ``invalid_request_error`` for 4xx and ``server_error``
    otherwise, and C is a fixed code per status (``bad_request``, ``invalid_api_key``,
    ``permission_denied``, ``not_found``, ``rate_limit_exceeded``, ``server_error`` ...).
    Takes precedence over ``tool``.

    On ``/v1/responses`` and ``/v1/messages`` the error applies *always*, tools or not (those
    APIs have no title-call convention to protect); the body is the endpoint's own error
    shape (OpenAI envelope, resp. Anthropic shape).

``[[fail:STATUS]]``  e.g. ``[[fail:503]]``
    Like ``[[error:STATUS]]`` but applies always, with or without ``tools``, on every
    endpoint (chat included). Takes precedence over ``error`` and ``tool``.

``[[slow:SECONDS]]``  e.g. ``[[slow:5]]``, ``[[slow:0.5]]``
    Any *text* reply (echo, ``Tool done``) is streamed as
    ``N = min(len(text), max(words, ceil(SECONDS / 0.1)))`` chunks (words when there are
    enough, else even character slices) sent evenly over SECONDS, the first immediately.
    Applies with or without ``tools``. A client disconnect stops the stream at once.
    Non-streaming requests simply wait SECONDS.

``[[usage:IN,OUT]]``  e.g. ``[[usage:1000,500]]``
    Report IN input and OUT output tokens (totals IN + OUT) instead of the counted ones, in
    every place the endpoint reports usage (chat ``usage``; Responses ``usage`` including the
    one in ``response.completed``; Anthropic ``usage``, ``message_start`` input tokens and
    the ``message_delta`` output tokens). The reply itself is unchanged.

``[[cut]]``
    A *streamed* reply ends right after its first content chunk (first text delta, or first
    argument fragment of a tool call): the body simply ends, with no finish chunk, usage
    chunk or ``[DONE]`` (chat), no ``response.completed`` (Responses), no
    ``content_block_stop`` / ``message_delta`` / ``message_stop`` (Anthropic). HTTP status
    200. This is not a client disconnect (``app.state.disconnects`` is unchanged).
    Non-streamed replies are complete.

Usage (all endpoints, unless ``[[usage:...]]``): input tokens (chat ``prompt_tokens``) are
the total number of whitespace-separated words in the text of all request messages (for
Responses: ``instructions`` plus every input message and ``function_call_output``; for
Anthropic: ``system`` plus every message's text blocks and ``tool_result`` contents); output
tokens (chat ``completion_tokens``) are the number of content or argument chunks, the same
number as streamed deltas; the total is their sum. Responses reports 0 ``cached_tokens`` and
``reasoning_tokens``, Anthropic 0 ``cache_creation_input_tokens`` and
``cache_read_input_tokens``.
"""

from __future__ import annotations

from corral.sim.mock_llm.app import create_app, main
from corral.sim.mock_llm.script import MODEL_ID, TITLE_TEXT, Script, find_script, parse_script

__all__ = ["MODEL_ID", "TITLE_TEXT", "Script", "create_app", "find_script", "main", "parse_script"]
