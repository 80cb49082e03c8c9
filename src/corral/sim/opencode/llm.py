"""Where the simulator's model calls go: the configured upstream over HTTP, or, with
``--llm-url local``, the mock LLM's script answered inside this process.

The in-process upstream produces exactly the chunks the mock LLM would send (same planning,
same chunks, same pacing) and reads them with the same code as the HTTP path; only the HTTP
hop, the second process and the JSON encoding of each chunk there and back are gone. Load
benchmarks use it so that thousands of streaming turns cost the machine little besides the
server under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import httpx

from corral.sim.mock_llm.app import chat_chunks, stream_header
from corral.sim.mock_llm.script import plan_reply
from corral.sim.opencode import upstream
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.store import Json

#: ``llm_url`` value that selects the in-process upstream.
LOCAL = "local"


def chat_url(config: SimConfig) -> str:
    return config.llm_url.rstrip("/") + "/v1/chat/completions"


def chat(
    config: SimConfig, http: Callable[[], httpx.AsyncClient], body: Json
) -> AsyncIterator[upstream.UpstreamEvent]:
    """Stream one chat completion from wherever ``config.llm_url`` points."""
    if config.llm_url == LOCAL:
        return _local(body)
    return upstream.stream_chat(http(), chat_url(config), config.llm_api_key, body)


async def _local(body: Json) -> AsyncIterator[upstream.UpstreamEvent]:
    planned = plan_reply(body)
    if isinstance(planned, tuple):
        status, error = planned
        text = json.dumps(error)
        # The headers the mock LLM's HTTP server answers with: OpenCode reports them.
        headers = {
            "content-length": str(len(text)),
            "content-type": "application/json",
            "date": formatdate(usegmt=True),
            "server": "uvicorn",
        }
        raise upstream.UpstreamHTTPError(status, text, LOCAL, headers)
    reply = planned

    async def pace() -> None:
        if reply.interval:
            await asyncio.sleep(reply.interval)

    base, usage = stream_header(body, reply)

    async def chunks() -> AsyncIterator[Json]:
        async for payload in chat_chunks(reply, base, usage, pace):
            if isinstance(payload, str):  # "[DONE]"
                return
            yield payload

    yield upstream.Started()
    async for event in upstream.parse_chunks(chunks()):
        yield event
