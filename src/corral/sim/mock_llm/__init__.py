"""A scripted, OpenAI-compatible mock LLM for driving real and simulated agent runtimes.

Real runtimes (OpenCode, Hermes, LangGraph, ...) only need an OpenAI-compatible upstream to
run offline. This server is that upstream: the *user's prompt* scripts what the "model"
answers, so a test can make a real runtime call a tool, hit an upstream error or stream
slowly, just by choosing the prompt text.

Endpoints
---------
* ``GET /v1/models`` and ``GET /v1/models/{id}`` (one model, ``mock-model``; unknown ids get a
  404 OpenAI error envelope);
* ``POST /v1/chat/completions``, streaming (SSE ``data: {chunk}`` frames, then
  ``data: [DONE]``; ``stream_options.include_usage`` adds a final chunk with ``usage`` and
  empty ``choices``) and non-streaming. Any ``Authorization`` header, or none, is accepted.

Every parsed request body is appended to ``app.state.requests`` (and a client disconnect
during a streamed reply increments ``app.state.disconnects``) so tests can assert what a
runtime sent and that it hung up.

Script grammar (a contract other tests rely on)
-----------------------------------------------
Which text is the prompt: runtimes wrap or append their own user messages, so the server
scans *all* ``user`` messages and picks the last one containing a well-formed directive;
without any directive it takes the last user message. Content may be a string or a list of
parts (only ``{"type": "text", "text"}`` parts are read). The *prompt text* is that message's
text with directive markup removed and whitespace collapsed. Directives may appear anywhere
in the text and combine with ordinary words and with each other:

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

``[[slow:SECONDS]]``  e.g. ``[[slow:5]]``, ``[[slow:0.5]]``
    Any *text* reply (echo, ``Tool done``) is streamed as
    ``N = min(len(text), max(words, ceil(SECONDS / 0.1)))`` chunks (words when there are
    enough, else even character slices) sent evenly over SECONDS, the first immediately.
    Applies with or without ``tools``. A client disconnect stops the stream at once.
    Non-streaming requests simply wait SECONDS.

Usage: ``prompt_tokens`` is the total number of whitespace-separated words in the text of
all request messages, ``completion_tokens`` the number of content or argument chunks,
``total_tokens`` their sum.
"""

from __future__ import annotations

from corral.sim.mock_llm.app import create_app, main
from corral.sim.mock_llm.script import MODEL_ID, TITLE_TEXT, Script, find_script, parse_script

__all__ = ["MODEL_ID", "TITLE_TEXT", "Script", "create_app", "find_script", "main", "parse_script"]
