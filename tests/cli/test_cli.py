"""The ``corral`` CLI run as a real subprocess against a real Corral (SQLite and PostgreSQL).

The server lives in the test's event loop, so the CLI must run in another process (a blocking
in-process call would freeze the server it talks to); asyncio subprocesses keep the loop free.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from corral.cli.client import CorralClient
from tests.support.corral import CorralServer, ok

CORRAL = str(Path(sys.executable).with_name("corral"))


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def _env(url: str, key: str | None) -> dict[str, str]:
    # The developer's own CORRAL_* settings must not leak into the run under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_URL=url, CORRAL_API_KEY=key or "", PYTHONIOENCODING="utf-8")
    return env


class Cli:
    """``corral`` with a URL and key in its environment; every run is kept for later checks."""

    def __init__(self, url: str, key: str | None, transcript: list[Run]) -> None:
        self.url, self.key, self.transcript = url, key, transcript

    def spawn(self, *args: str) -> Any:
        return asyncio.create_subprocess_exec(
            CORRAL,
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(self.url, self.key),
        )

    async def finish(self, proc: Any, stdin: str | None = None) -> Run:
        out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), 30)
        run = Run(proc.returncode, out.decode(), err.decode())
        self.transcript.append(run)
        return run

    async def __call__(self, *args: str, stdin: str | None = None) -> Run:
        return await self.finish(await self.spawn(*args), stdin)

    async def ok(self, *args: str, stdin: str | None = None) -> Run:
        run = await self(*args, stdin=stdin)
        assert run.code == 0, f"corral {' '.join(args)} -> {run.code}\n{run.out}\n{run.err}"
        return run


async def test_keys_runtimes_credentials_agents(
    corral: CorralServer, opencode_sim_url: str, tmp_path: Path
) -> None:
    transcript: list[Run] = []
    admin = Cli(corral.url, corral.admin_key, transcript)
    team = (await admin.ok("teams", "create", "platform", "--json")).json()
    user = (
        await admin.ok(
            "users", "create", "--name", "Dee", "--email", "dee@example.com",
            "--team", "platform", "--json",
        )
    ).json()  # fmt: skip
    assert user["team_id"] == team["id"] and user["role"] == "developer"

    # A key is printed once, alone on its line, with a warning on stderr.
    created = await admin.ok("keys", "create", "--name", "dee-laptop", "--user", user["id"])
    key = created.out.strip().splitlines()[-1]
    assert key.startswith("ck_") and "shown only once" in created.err
    keys = (await admin.ok("keys", "list", "--user", user["id"], "--json")).json()["data"]
    assert [k["name"] for k in keys] == ["dee-laptop"] and "key" not in keys[0]

    # Credentials go in through stdin and never come out, in any form.
    secret = f"s3cret-{uuid.uuid4().hex}"
    await admin.ok(
        "runtimes", "add", "--name", "oc", "--kind", "opencode", "--url", opencode_sim_url
    )
    stored = await admin.ok(
        "runtimes", "set-credentials", "oc", "--stdin",
        stdin=json.dumps({"username": "opencode", "password": secret}),
    )  # fmt: skip
    assert "password" in stored.out
    as_json = await admin.ok(
        "runtimes", "set-credentials", "oc", "--stdin", "--json",
        stdin=f"username=opencode\npassword={secret}\n",
    )  # fmt: skip
    assert as_json.json()["credentials"][0]["set"] is True
    shown, table, _, _, bad = await asyncio.gather(
        admin.ok("runtimes", "show", "oc", "--json"),
        admin.ok("runtimes", "show", "oc"),
        admin.ok("runtimes", "list"),
        admin.ok("runtimes", "health", "oc"),
        admin("runtimes", "set-credentials", "oc", "--stdin", stdin=f"{secret}\n"),
    )
    scopes = [(c["scope_type"], c["set"]) for c in shown.json()["credentials"]]
    assert scopes == [("org", True)] and "org " in table.out
    assert bad.code == 2  # a usage error, and one that does not echo the line

    dev = Cli(corral.url, key, transcript)
    assert (await dev.ok("whoami", "--json")).json()["user_id"] == user["id"]
    agent = (
        await dev.ok(
            "agents", "create", "--name", "helper", "--runtime", "oc",
            "--model", "mock/mock-model", "--instructions", "Be brief.", "--tool", "read", "--json",
        )
    ).json()  # fmt: skip
    assert agent["version"] == 1 and agent["tools"] == ["read"]
    instructions = tmp_path / "helper.md"
    instructions.write_text("Be very brief.\n")
    updated = (
        await dev.ok("agents", "update", "helper", "--instructions", f"@{instructions}", "--json")
    ).json()
    assert updated["version"] == 2 and updated["instructions"] == "Be very brief."
    versions, first, listed, missing = await asyncio.gather(
        dev.ok("agents", "versions", "helper", "--json"),
        dev.ok("agents", "show", "helper", "--version", "1", "--json"),
        dev.ok("agents", "list", "--json"),
        dev("agents", "show", "nobody"),
    )
    assert sorted(v["version"] for v in versions.json()) == [1, 2]
    assert first.json()["instructions"] == "Be brief."
    assert [a["name"] for a in listed.json()["data"]] == ["helper"]
    assert missing.code == 1 and "no agent named 'nobody'" in missing.err

    # Revoking a key stops it at once.
    await admin.ok("keys", "revoke", keys[0]["id"])
    refused = await dev("whoami")
    assert refused.code == 1 and "error [key_revoked]" in refused.err
    revoked = (await admin.ok("keys", "list", "--include-revoked", "--json")).json()["data"]
    assert any(k["id"] == keys[0]["id"] and k["revoked_at"] for k in revoked)

    for run in transcript:
        assert secret not in run.out and secret not in run.err


async def _developer(corral: CorralServer, sim_url: str) -> str:
    """A team, a developer with a key, a runtime and an agent 'helper', set up through the API."""
    async with corral.admin() as admin:
        team = await ok(await admin.post("/v1/teams", json={"name": "t"}), 201)
        user = await ok(
            await admin.post(
                "/v1/users", json={"name": "D", "email": "d@example.com", "team_id": team["id"]}
            ),
            201,
        )
        key = await ok(await admin.post("/v1/keys", json={"name": "k", "user_id": user["id"]}), 201)
        body = {"name": "oc", "kind": "opencode", "base_url": sim_url}
        runtime = await ok(await admin.post("/v1/runtimes", json=body), 201)
    async with corral.client(key["key"]) as dev:
        body = {"name": "helper", "runtime_id": runtime["id"], "model": "mock/mock-model"}
        await ok(await dev.post("/v1/agents", json=body), 201)
    return str(key["key"])


async def test_sessions_stream_to_the_terminal(corral: CorralServer, opencode_sim_url: str) -> None:
    dev = Cli(corral.url, await _developer(corral, opencode_sim_url), [])

    hello, tool = await asyncio.gather(
        dev.ok("sessions", "start", "--agent", "helper", "hello"),
        dev.ok(
            "sessions", "start", "--agent", "helper", 'look [[tool:read {"filePath":"hello.txt"}]]'
        ),
    )
    assert hello.out.startswith("Echo: hello\n") and "end_turn" in hello.out
    sid = re.search(r"session (ses_\w+)", hello.err).group(1)  # type: ignore[union-attr]
    assert '⚙ read {"filePath": "hello.txt"}' in tool.out and "\n↳ " in tool.out

    again = await dev.ok("sessions", "send", sid, "once more", "--json")
    lines = [json.loads(line) for line in again.out.splitlines()]
    assert lines[-1]["id"] == sid and lines[-1]["state"] == "idle" and lines[-1]["turns"] == 2
    types = [e["type"] for e in lines[:-1]]
    assert "message.delta" in types and types[-1] == "turn.completed"
    assert all(e["seq"] > 0 for e in lines[:-1])

    listed = (await dev.ok("sessions", "list", "--json")).json()
    assert len(listed["data"]) == 2 and listed["next_cursor"] is None
    assert {s["id"] for s in listed["data"]} >= {sid}
    idle = (await dev.ok("sessions", "list", "--state", "idle", "--since", "1h", "--json")).json()
    assert len(idle["data"]) == 2

    # Follow a turn that is still running, until the session is idle again.
    slow = (
        await dev.ok(
            "sessions", "start", "--agent", "helper", "[[slow:1]] slow words",
            "--no-stream", "--json",
        )
    ).json()  # fmt: skip
    tailed = await dev.ok("sessions", "tail", slow["id"], "--until-idle")
    assert "> [[slow:1]] slow words" in tailed.out and "Echo: slow words" in tailed.out

    # An approval is announced inline; answering it elsewhere lets the turn finish.
    proc = await dev.spawn(
        "sessions", "start", "--agent", "helper",
        '[[tool:bash {"command":"echo hi","description":"say hi"}]]',
    )  # fmt: skip
    asked = ""
    while "? approval" not in asked:
        asked = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert asked, "the stream ended before the approval was asked"
    match = re.search(r"approval (apr_\w+) requested: bash echo hi .*approve (ses_\w+) apr_", asked)
    assert match, asked
    apr, bash_sid = match.groups()
    pending = (await dev.ok("sessions", "approvals", bash_sid, "--json")).json()
    assert [(a["id"], a["status"]) for a in pending] == [(apr, "pending")]
    await dev.ok("sessions", "approve", bash_sid, apr)
    finished = await dev.finish(proc)
    assert finished.code == 0 and "↳ hi" in finished.out, finished

    events = (await dev.ok("sessions", "events", bash_sid, "--after", "2", "--json")).json()
    assert events["data"][0]["seq"] == 3 and events["data"][-1]["type"] == "session.state"

    # A paused agent refuses new sessions: a clear error, as text or as the problem's JSON.
    async with corral.client(dev.key) as http:
        agent = (await ok(await http.get("/v1/agents", params={"name": "helper"})))["data"][0]
    await dev.ok("agents", "pause", agent["id"])
    paused = await dev("sessions", "start", "--agent", "helper", "hi")
    assert paused.code == 1 and paused.err.startswith("error [agent_paused]: ")
    as_json = await dev("--json", "sessions", "start", "--agent", "helper", "hi")
    assert as_json.code == 1 and as_json.out == ""
    problem = json.loads(as_json.err)
    assert problem["code"] == "agent_paused" and problem["status"] == 409


def test_unreachable_server_and_usage_errors() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = _env("http://127.0.0.1:9", "ck_unused")
        return subprocess.run([CORRAL, *args], env=env, capture_output=True, text=True, timeout=30)

    down = run("whoami")
    assert down.returncode == 1 and down.stdout == ""
    assert down.stderr.startswith(
        "error [connection_error]: cannot reach Corral at http://127.0.0.1:9"
    )
    assert run("sessions", "tail", "ses_x").returncode == 1
    assert run("sessions", "list", "--state", "bogus").returncode == 2
    assert run("agents", "create", "--name", "x").returncode == 2  # --runtime is missing
    no_key = subprocess.run(
        [CORRAL, "whoami"], env=_env("http://127.0.0.1:9", None), capture_output=True, text=True
    )
    assert no_key.returncode == 1 and "CORRAL_API_KEY" in no_key.stderr


def test_event_stream_resumes_after_a_dropped_connection() -> None:
    def frame(seq: int) -> bytes:
        data = json.dumps({"seq": seq, "type": "message.delta", "data": {"text": f"{seq} "}})
        return f"id: {seq}\nevent: message.delta\ndata: {data}\n\n".encode()

    resumed_from: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers["Last-Event-ID"])

        def body() -> Any:
            yield b"retry: 10\n\n: heartbeat\n\n"
            if len(resumed_from) == 1:
                yield frame(3) + frame(4)
                raise httpx.ReadError("connection reset")
            yield frame(5)

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    client = CorralClient("http://corral.test", "ck_x", transport=httpx.MockTransport(handler))
    drops: list[int] = []
    events = client.stream_events("ses_1", 2, on_reconnect=lambda last, _why: drops.append(last))
    seqs = [next(events)["seq"] for _ in range(3)]
    events.close()
    assert seqs == [3, 4, 5] and resumed_from == ["2", "4"] and drops == [4]
