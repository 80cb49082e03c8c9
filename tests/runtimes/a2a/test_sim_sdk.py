"""The test agent is a faithful A2A agent: a2a-sdk 1.3.0's own client, unmodified
(``a2a.client.create_client``), drives it over protocol 1.0 and, through the SDK's 0.3 compat
transport, over 0.3: streaming, the ``[[ask:...]]`` input-required round trip, tasks/get,
cancel, and the A2A error for an unknown task."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import Client
from a2a.types import (
    AgentCard,
    AgentInterface,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError

from corral.sim.a2a import LEGACY_CARD_PATH, RPC_PATH
from corral.sim.processes import free_port


@pytest.fixture(params=["1.0", "0.3"])
async def client(request: pytest.FixtureRequest, a2a_agent_url: str) -> AsyncIterator[Client]:
    if request.param == "1.0":
        sdk = await create_client(a2a_agent_url, ClientConfig(streaming=True))
    else:
        # A card offering only 0.3 makes the SDK pick its 0.3 compat transport.
        card = AgentCard(
            name="legacy view",
            version="1",
            supported_interfaces=[
                AgentInterface(
                    url=a2a_agent_url + RPC_PATH, protocol_binding="JSONRPC", protocol_version="0.3"
                )
            ],
        )
        card.capabilities.streaming = True
        sdk = await create_client(card, ClientConfig(streaming=True))
    yield sdk
    await sdk.close()


def user(text: str, context_id: str, task_id: str | None = None) -> SendMessageRequest:
    message = Message(
        role=Role.ROLE_USER,
        message_id=f"m-{abs(hash((text, context_id)))}",
        context_id=context_id,
        parts=[Part(text=text)],
    )
    if task_id:
        message.task_id = task_id
    return SendMessageRequest(message=message)


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [item async for item in stream]


def reply_text(items: list[StreamResponse]) -> str:
    return "".join(
        part.text
        for item in items
        if item.HasField("artifact_update")
        for part in item.artifact_update.artifact.parts
    )


def states(items: list[StreamResponse]) -> list[Any]:
    return [item.status_update.status.state for item in items if item.HasField("status_update")]


async def test_streamed_reply(client: Client) -> None:
    items = await collect(client.send_message(user("hello world from corral", "sdk-1")))
    assert items[0].HasField("task")
    assert reply_text(items) == "Echo: hello world from corral"
    assert states(items)[-1] == TaskState.TASK_STATE_COMPLETED
    task = await client.get_task(GetTaskRequest(id=items[0].task.id))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert "".join(p.text for p in task.artifacts[0].parts) == "Echo: hello world from corral"


async def test_input_required_round_trip(client: Client) -> None:
    asked = await collect(client.send_message(user("paint [[ask:What colour?]]", "sdk-2")))
    assert states(asked)[-1] == TaskState.TASK_STATE_INPUT_REQUIRED
    question = asked[-1].status_update.status.message
    assert [p.text for p in question.parts] == ["What colour?"]
    task_id = asked[0].task.id
    answered = await collect(client.send_message(user("blue", "sdk-2", task_id)))
    assert reply_text(answered) == "Echo: blue"
    assert states(answered)[-1] == TaskState.TASK_STATE_COMPLETED


async def test_cancel_and_failures(client: Client) -> None:
    stream = client.send_message(user("[[slow:4]] a slow answer with several words", "sdk-3"))
    first = await anext(stream)
    task_id = first.task.id
    canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    await asyncio.wait_for(collect(stream), 10)
    failed = await collect(client.send_message(user("[[error:400]] fail", "sdk-4")))
    assert states(failed)[-1] == TaskState.TASK_STATE_FAILED
    with pytest.raises(TaskNotFoundError):
        await client.get_task(GetTaskRequest(id="no-such-task"))


def test_standalone_server_serves_both_card_paths(mock_llm_url: str) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "corral.sim.a2a", "--port", str(port), "--llm-url", mock_llm_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                card = httpx.get(base + "/.well-known/agent-card.json", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "python -m corral.sim.a2a did not start"
                time.sleep(0.2)
        legacy = httpx.get(base + LEGACY_CARD_PATH, timeout=2).json()
        assert card == legacy
        versions = {i["protocolVersion"] for i in card["supportedInterfaces"]}
        assert versions == {"1.0", "0.3"}
        assert card["supportedInterfaces"][0]["url"] == base + RPC_PATH
    finally:
        proc.terminate()
        proc.wait(10)
