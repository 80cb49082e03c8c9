"""The simulator is faithful: the official ``@cursor/sdk`` 1.0.32, unmodified, drives it.

``tests/fixtures/cursor/sdk_probe.mjs`` runs under node with ``CURSOR_BACKEND_URL`` pointing
at the simulator: list models, ``me``, create an agent with a prompt (client-minted agent id),
stream the run and wait for its result, a follow-up prompt that calls a tool, a slow prompt
cancelled mid-stream, a stream cut mid-run that the SDK resumes with ``Last-Event-ID``, then
list runs, usage and the agent. Skipped when npm/node cannot provide the SDK (see
``tests/plugins/cursor.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.cursor import CURSOR_API_KEY

PROBE = Path(__file__).parents[2] / "fixtures" / "cursor" / "sdk_probe.mjs"


@pytest.fixture(scope="module")
def sdk_steps(
    cursor_sdk_dir: Path, cursor_sim_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("cursor-sdk-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURSOR_")}
    env.update(HOME=str(home), CURSOR_BACKEND_URL=cursor_sim_url, CURSOR_API_KEY=CURSOR_API_KEY)
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(PROBE), str(cursor_sdk_dir)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"sdk probe failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {s["step"]: s for s in steps}


def texts(messages: list[dict[str, Any]]) -> str:
    return "".join(
        block["text"]
        for m in messages
        if m["type"] == "assistant"
        for block in m["message"]["content"]
        if block["type"] == "text"
    )


def test_models_and_me(sdk_steps: dict[str, Any]) -> None:
    assert any(m["id"] == "mock-model" for m in sdk_steps["models"]["items"])
    assert sdk_steps["me"]["me"]["apiKeyName"]


def test_create_stream_and_wait(sdk_steps: dict[str, Any]) -> None:
    created, first = sdk_steps["created"], sdk_steps["first"]
    assert created["agentId"].startswith("bc-")  # minted by the SDK, echoed by the server
    statuses = [m["status"] for m in first["messages"] if m["type"] == "status"]
    assert statuses[-1] == "RUNNING"
    assert texts(first["messages"]) == "Echo: hello from the cursor sdk"
    result = first["result"]
    assert result["status"] == "finished"
    assert result["result"] == "Echo: hello from the cursor sdk"
    assert result["usage"]["inputTokens"] > 0  # from the raw stream's turn-ended update


def test_follow_up_with_tool_call(sdk_steps: dict[str, Any]) -> None:
    tool = sdk_steps["tool"]
    assert tool["runId"] != sdk_steps["first"]["runId"]
    calls = [m for m in tool["messages"] if m["type"] == "tool_call"]
    assert [c["status"] for c in calls] == ["running", "completed"]
    assert {c["name"] for c in calls} == {"run_terminal_cmd"}
    assert calls[1]["result"]["success"]["stdout"] == "sdk-tool\n"
    assert tool["result"]["status"] == "finished"
    assert tool["result"]["result"].startswith("Tool done:")


def test_cancel_mid_stream(sdk_steps: dict[str, Any]) -> None:
    cancel = sdk_steps["cancel"]
    assert cancel["result"]["status"] == "cancelled"
    assert "Echo: a long story" not in texts(cancel["messages"])  # stopped early


def test_sdk_resumes_a_dropped_stream_without_loss_or_duplicates(sdk_steps: dict[str, Any]) -> None:
    resume = sdk_steps["resume"]
    assert texts(resume["messages"]) == "Echo: resume after a dropped stream"
    statuses = [m["status"] for m in resume["messages"] if m["type"] == "status"]
    assert statuses.count("CREATING") + statuses.count("RUNNING") >= 3  # re-sent on reconnect
    assert resume["result"]["status"] == "finished"


def test_runs_usage_and_agent(sdk_steps: dict[str, Any]) -> None:
    runs = sdk_steps["runs"]
    assert runs["statuses"] == ["finished", "cancelled", "finished", "finished"]
    assert runs["ids"][1] == sdk_steps["cancel"]["runId"]
    usage = sdk_steps["usage"]["usage"]
    assert {r["runId"] for r in usage["runs"]} == set(runs["ids"])
    assert usage["usage"]["totalTokens"] > 0
    info = sdk_steps["info"]["info"]
    assert info["agentId"] == sdk_steps["created"]["agentId"]
    assert info["runtime"] == "cloud" and info["repos"] == ["https://github.com/corral/sim-repo"]
