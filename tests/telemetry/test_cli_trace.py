"""``corral sessions trace``: the span tree in the terminal, through the API like any command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.support.corral import CorralServer
from tests.telemetry.scenario import two_turns, world

CORRAL = str(Path(sys.executable).with_name("corral"))


async def _corral(server: CorralServer, key: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_URL=server.url, CORRAL_API_KEY=key, COLUMNS="200", PYTHONIOENCODING="utf-8")
    proc = await asyncio.create_subprocess_exec(
        CORRAL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_sessions_trace_prints_the_tree(corral: CorralServer, opencode_sim_url: str) -> None:
    w = await world(corral, opencode_sim_url)
    sid, trace = await two_turns(corral, w)
    code, out, err = await _corral(corral, w["key"], "sessions", "trace", sid)
    assert code == 0, err
    lines = out.splitlines()
    roots = [line for line in lines if line.startswith("invoke_agent helper")]
    assert len(roots) == 2 and "stop=end_turn" in roots[0] and "in=" in roots[0]
    tool = next(line for line in lines if "execute_tool bash" in line and "tool_denied" in line)
    assert tool.index("execute_tool") > 0  # indented under its turn
    denied = [line for line in lines if "decide tool.use" in line and "deny" in line]
    assert denied and denied[0].index("decide") > tool.index("execute_tool")  # under the tool
    code, out, _ = await _corral(corral, w["key"], "sessions", "trace", sid, "--json")
    assert code == 0 and json.loads(out) == trace
    code, _, err = await _corral(corral, w["key"], "sessions", "trace", "ses_nope")
    assert code == 1 and "not_found" in err
