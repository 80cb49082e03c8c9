"""The simulated ``opencode serve`` against the traces recorded from the real 1.18.33.

Each scenario of ``tests/fixtures/opencode/record.py`` is replayed on the simulator and its
``GET /event`` frames are compared with the recording: event types in order with their key
fields (part type, tool status, status type, error name, reply), and the JSON *shape*
(field names and value types, not values) of every frame. Ids, timestamps, token counts
and text differ and are ignored. Two races of the real server are normalised away rather
than reproduced: the diff-summary trio (``session.updated``, ``session.diff``, user
``message.updated``) lands at varying points, and ``permission.asked`` may overtake the
tool's ``running`` update.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.sim._server import BackgroundServer
from corral.sim.opencode import SimConfig, create_app
from corral.sim.opencode.bus import Bus
from corral.sim.opencode.permissions import Permissions, Rejected
from corral.sim.opencode.tools import permission_request

Event = dict[str, Any]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "opencode"
WORKDIR = "/tmp/corral-opencode-sim/work"
HELLO = "hello from the corral fixture\n"

# The prompts the recorder sent to the real server (tests/fixtures/opencode/record.py).
PROMPTS = {
    "text": "Say hello to the corral test suite",
    "tool": 'Show me hello.txt [[tool:read {"filePath":"hello.txt"}]]',
    "tool_error": 'Show me missing.txt [[tool:read {"filePath":"missing.txt"}]]',
    "permission_once": 'Run it [[tool:bash {"command":"echo hi","description":"say hi"}]]',
    "permission_reject": 'Run it [[tool:bash {"command":"echo hi","description":"say hi"}]]',
    "cancel": "[[slow:5]] Count slowly to ten please, one number at a time",
    "error": "[[error:400]] This request will fail upstream",
}


# -- reading GET /event ------------------------------------------------------------------------
def session_of(event: Event) -> str | None:
    props = event.get("properties") or {}
    for holder in (props, props.get("info") or {}, props.get("part") or {}):
        sid = holder.get("sessionID") if isinstance(holder, dict) else None
        if isinstance(sid, str):
            return sid
    return None


class Subscriber:
    """One ``GET /event`` connection read by a task; keeps raw lines and parsed frames."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        self.url = url
        self.auth = auth
        self.events: list[Event] = []
        self.lines: list[str] = []
        self.headers: httpx.Headers | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.create_task(self._read())
        await self.wait(lambda e: e["type"] == "server.connected", sid=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        timeout = httpx.Timeout(5.0, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout, auth=self.auth) as client,
            client.stream("GET", self.url + "/event") as response,
        ):
            self.headers = response.headers
            async for line in response.aiter_lines():
                self.lines.append(line)
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
                    self._changed.set()

    def of(self, sid: str) -> list[Event]:
        return [e for e in self.events if session_of(e) == sid]

    async def wait(
        self, predicate: Callable[[Event], bool], sid: str | None, limit: float = 10.0
    ) -> Event:
        async def find() -> Event:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if (sid is None or session_of(event) == sid) and predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), limit)

    async def settle(self, sid: str, quiet: float = 0.3) -> list[Event]:
        """The session's frames once it went idle and then stayed quiet for a while."""
        await self.wait(lambda e: e["type"] == "session.idle", sid)
        count = -1
        while count != len(self.of(sid)):
            count = len(self.of(sid))
            await asyncio.sleep(quiet)
        return self.of(sid)


# -- comparing with the recordings -------------------------------------------------------------
def is_summary(event: Event) -> bool:
    """The diff-summary trio, whose position the real server does not keep stable."""
    props = event["properties"]
    if event["type"] in ("session.updated", "session.diff"):
        return True
    info = props.get("info") or {}
    return event["type"] == "message.updated" and info.get("role") == "user" and "summary" in info


def key_of(event: Event) -> tuple[str, ...]:
    props, type_ = event["properties"], event["type"]
    if type_ == "message.updated":
        info = props["info"]
        return (type_, info["role"], (info.get("error") or {}).get("name", ""))
    if type_ == "message.part.updated":
        part = props["part"]
        return (type_, part["type"], (part.get("state") or {}).get("status", ""))
    if type_ == "session.status":
        return (type_, props["status"]["type"])
    if type_ == "session.error":
        return (type_, props["error"]["name"])
    if type_ == "permission.replied":
        return (type_, props["reply"])
    return (type_,)


def canonical(events: list[Event]) -> list[Event]:
    """Drop the racy trio, fold runs of deltas into one, put ``asked`` after ``running``."""
    out: list[Event] = []
    for event in events:
        if is_summary(event) or event["type"] == "server.connected":
            continue
        if event["type"] == "message.part.delta" and out and out[-1]["type"] == event["type"]:
            continue
        out.append(event)
    for i in range(len(out) - 1):
        if out[i]["type"] == "permission.asked" and key_of(out[i + 1])[-1] == "running":
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


def subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and subset(v, big[k]) for k, v in small.items())
    return bool(small == big)


def assert_like_recording(sim: list[Event], real: list[Event]) -> None:
    sim_c, real_c = canonical(sim), canonical(real)
    assert [key_of(e) for e in sim_c] == [key_of(e) for e in real_c]
    for mine, theirs in zip(sim_c, real_c, strict=True):
        a, b = shape(mine["properties"]), shape(theirs["properties"])
        if a == b:
            continue
        # The real bus serialises lazily: a new assistant message can already show its
        # final fields (finish, completed) in its first frame. Allow a subset there.
        lazy = theirs["type"] == "message.updated" and "finish" in theirs["properties"]["info"]
        assert lazy and subset(a, b), (mine["type"], a, b)
    # The summary trio appears as often as on the real server, just maybe elsewhere.
    assert sum(map(is_summary, sim)) == sum(map(is_summary, real))


def recording(name: str) -> list[Event]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


# -- servers -----------------------------------------------------------------------------------
BASE = SimConfig(
    directory=WORKDIR,
    files={"hello.txt": HELLO},
    heartbeat_interval=0.25,
    retry_initial_delay=0.05,
    max_retries=2,
)


@contextlib.contextmanager
def serve(config: SimConfig) -> Iterator[str]:
    with BackgroundServer(create_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
def sim_url(mock_llm_url: str) -> Iterator[str]:
    with serve(replace(BASE, llm_url=mock_llm_url)) as url:
        yield url


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0) as http:
        yield http


@pytest.fixture
async def events(sim_url: str) -> AsyncIterator[Subscriber]:
    async with Subscriber(sim_url) as sub:
        yield sub


async def new_session(client: httpx.AsyncClient, title: str | None = "sim test") -> str:
    resp = await client.post("/session", json={} if title is None else {"title": title})
    assert resp.status_code == 200
    sid: str = resp.json()["id"]
    return sid


async def prompt(client: httpx.AsyncClient, sid: str, text: str) -> None:
    resp = await client.post(
        f"/session/{sid}/prompt_async", json={"parts": [{"type": "text", "text": text}]}
    )
    assert (resp.status_code, resp.content) == (204, b"")


def shapes(history: list[Event]) -> list[Any]:
    return [shape(m) for m in history]


# -- the recorded scenarios --------------------------------------------------------------------
async def run_scenario(name: str, client: httpx.AsyncClient, events: Subscriber) -> str:
    """Drive one scenario exactly as the recorder drove the real server."""
    sid = await new_session(client, f"corral fixture: {name}")
    await prompt(client, sid, PROMPTS[name])
    if name.startswith("permission_"):
        asked = await events.wait(lambda e: e["type"] == "permission.asked", sid)
        reply = "once" if name == "permission_once" else "reject"
        resp = await client.post(
            f"/permission/{asked['properties']['id']}/reply", json={"reply": reply}
        )
        assert resp.json() is True
    elif name == "cancel":
        await events.wait(lambda e: e["type"] == "message.part.delta", sid)
        await asyncio.sleep(0.3)
        assert (await client.post(f"/session/{sid}/abort")).json() is True
    await events.settle(sid)
    return sid


@pytest.mark.parametrize("name", list(PROMPTS))
async def test_scenario_matches_real_trace(
    name: str, client: httpx.AsyncClient, events: Subscriber
) -> None:
    sid = await run_scenario(name, client, events)
    assert_like_recording(events.of(sid), recording(name))
    history = (await client.get(f"/session/{sid}/message")).json()
    real_history = json.loads((FIXTURES / f"{name}.history.json").read_text())
    assert shapes(history) == shapes(real_history)


async def test_text_turn_details(client: httpx.AsyncClient, events: Subscriber) -> None:
    sid = await run_scenario("text", client, events)
    mine = events.of(sid)
    deltas = [e["properties"]["delta"] for e in mine if e["type"] == "message.part.delta"]
    real = [
        e["properties"]["delta"] for e in recording("text") if e["type"] == "message.part.delta"
    ]
    assert deltas == real  # one frame per upstream chunk, same chunks as the real server
    finish = next(e["properties"]["part"] for e in mine if key_of(e)[1:2] == ("step-finish",))
    tokens = finish["tokens"]
    assert finish["cost"] == pytest.approx((tokens["input"] * 1.0 + tokens["output"] * 2.0) / 1e6)
    session = (await client.get(f"/session/{sid}")).json()
    assert session["cost"] == pytest.approx(finish["cost"])
    assert session["tokens"]["input"] == tokens["input"]
    # The first stop signal is followed by more frames: clients must not stop reading.
    types = [e["type"] for e in mine]
    assert types[-3:] == ["session.updated", "session.diff", "message.updated"]


async def test_tool_turn_sends_history_upstream(
    client: httpx.AsyncClient, events: Subscriber, mock_llm_app: Any
) -> None:
    before = len(mock_llm_app.state.requests)
    await run_scenario("tool", client, events)
    first, second = mock_llm_app.state.requests[before : before + 2]
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    names = sorted(t["function"]["name"] for t in first["tools"])
    assert names == [
        *("bash", "edit", "glob", "grep", "question", "read"),
        *("skill", "task", "todowrite", "webfetch", "write"),
    ]
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    call = second["messages"][2]["tool_calls"][0]
    assert call["function"]["name"] == "read"
    assert second["messages"][3]["tool_call_id"] == call["id"]
    assert "1: hello from the corral fixture" in second["messages"][3]["content"]


async def test_permission_pending_matches_recording(
    client: httpx.AsyncClient, events: Subscriber
) -> None:
    sid = await new_session(client)
    await prompt(client, sid, PROMPTS["permission_once"])
    asked = await events.wait(lambda e: e["type"] == "permission.asked", sid)
    pending = (await client.get("/permission")).json()
    real = json.loads((FIXTURES / "permission_pending.json").read_text())
    mine = [p for p in pending if p["sessionID"] == sid]
    assert [shape(p) for p in mine] == [shape(p) for p in real]
    assert mine[0]["id"] == asked["properties"]["id"]
    # Busy while it waits; the legacy route answers it too.
    assert (await client.get("/session/status")).json()[sid] == {"type": "busy"}
    legacy = f"/session/{sid}/permissions/{mine[0]['id']}"
    assert (await client.post(legacy, json={"response": "once"})).json() is True
    await events.settle(sid)
    assert sid not in (await client.get("/session/status")).json()


# -- bus behaviour -----------------------------------------------------------------------------
async def test_sessions_interleave_on_one_bus_and_every_subscriber_sees_all(
    sim_url: str, client: httpx.AsyncClient, events: Subscriber
) -> None:
    async with Subscriber(sim_url) as second:
        a, b = await new_session(client, "a"), await new_session(client, "b")
        await asyncio.gather(
            prompt(client, a, "[[slow:0.6]] one two three four five six"),
            prompt(client, b, "[[slow:0.6]] seven eight nine ten eleven twelve"),
        )
        await asyncio.gather(events.settle(a), events.settle(b))
        await second.settle(b)
        owners = [session_of(e) for e in events.events if session_of(e) in (a, b)]
        switches = sum(1 for x, y in itertools.pairwise(owners) if x != y)
        assert switches > 2  # the two turns really ran side by side on one stream
        # Both subscribers got the same frames, in the same order, with the same ids.
        for sid in (a, b):
            assert [e["id"] for e in second.of(sid)] == [e["id"] for e in events.of(sid)]
        for sid in (a, b):
            mine = [key_of(e) for e in canonical(events.of(sid))]
            assert mine == [key_of(e) for e in canonical(recording("text"))]


async def test_sse_frames_are_data_only_with_heartbeats(events: Subscriber) -> None:
    await events.wait(lambda e: e["type"] == "server.heartbeat", sid=None, limit=2.0)
    assert events.headers is not None
    assert events.headers["content-type"].startswith("text/event-stream")
    assert events.headers["x-accel-buffering"] == "no"
    assert events.headers["x-content-type-options"] == "nosniff"
    assert events.lines[0].startswith('data: {"id":"evt_')
    assert all(line == "" or line.startswith("data: ") for line in events.lines)
    assert events.events[0]["type"] == "server.connected"
    ids = [e["id"] for e in events.events]
    assert ids == sorted(ids) and all(i.startswith("evt_") for i in ids)


async def test_first_prompt_bursts_instance_frames(mock_llm_url: str) -> None:
    with serve(replace(BASE, llm_url=mock_llm_url)) as url:
        async with Subscriber(url) as sub, httpx.AsyncClient(base_url=url) as http:
            for _ in range(2):
                sid = await new_session(http)
                await prompt(http, sid, "hello")
                await sub.settle(sid, quiet=0.1)
            loose = [e["type"] for e in sub.events if session_of(e) is None]
            assert loose.count("plugin.added") > 5 and "catalog.updated" in loose
            assert loose.count("catalog.updated") == 1  # the second prompt adds none


# -- REST surface ------------------------------------------------------------------------------
async def test_sessions_and_error_bodies(client: httpx.AsyncClient) -> None:
    assert (await client.get("/global/health")).json() == {"healthy": True, "version": "1.18.33"}
    older = await new_session(client)
    await asyncio.sleep(0.002)
    newer = await new_session(client)
    assert newer < older  # newer session ids sort first, as on the real server
    info = (await client.get(f"/session/{newer}")).json()
    assert info["tokens"] == {
        "input": 0,
        "output": 0,
        "reasoning": 0,
        "cache": {"read": 0, "write": 0},
    }
    listed = [s["id"] for s in (await client.get("/session")).json()]
    assert listed.index(newer) < listed.index(older)

    missing = {"name": "NotFoundError", "data": {"message": "Session not found: ses_nope"}}
    for method, path in [
        ("GET", "/session/ses_nope"),
        ("GET", "/session/ses_nope/message"),
        ("POST", "/session/ses_nope/prompt_async"),
        ("DELETE", "/session/ses_nope"),
    ]:
        resp = await client.request(method, path, json={"parts": []})
        assert (resp.status_code, resp.json()) == (404, missing)

    def bad(message: str) -> dict[str, Any]:
        return {"name": "BadRequest", "data": {"message": message, "kind": "Payload"}}

    url = f"/session/{newer}/prompt_async"
    cases: list[tuple[Any, str]] = [
        (None, "Expected object, got undefined"),
        ({}, 'Missing key\n  at ["parts"]'),
        ({"parts": "x"}, 'Expected array, got "x"\n  at ["parts"]'),
        ({"parts": [{"type": "text"}]}, 'Missing key\n  at ["parts"][0]["text"]'),
    ]
    for body, message in cases:
        resp = await client.post(url, json=body) if body is not None else await client.post(url)
        assert (resp.status_code, resp.json()) == (400, bad(message))
    resp = await client.post(url, content=b"{", headers={"content-type": "application/json"})
    assert resp.status_code == 500 and resp.json()["name"] == "UnknownError"

    resp = await client.post("/permission/per_nope/reply", json={"reply": "once"})
    assert resp.status_code == 404
    assert resp.json() == {
        "_tag": "PermissionNotFoundError",
        "requestID": "per_nope",
        "message": "Permission request not found: per_nope",
    }
    resp = await client.post("/permission/per_nope/reply", json={"reply": "maybe"})
    message = 'Expected "once" | "always" | "reject", got "maybe"\n  at ["reply"]'
    assert (resp.status_code, resp.json()) == (400, bad(message))

    assert (await client.delete(f"/session/{older}")).json() is True
    assert (await client.get(f"/session/{older}")).status_code == 404


async def test_abort_is_idempotent(client: httpx.AsyncClient, events: Subscriber) -> None:
    sid = await new_session(client)
    for path in (f"/session/{sid}/abort", "/session/ses_unknown/abort"):
        resp = await client.post(path)
        assert (resp.status_code, resp.json()) == (200, True)
    await prompt(client, sid, PROMPTS["cancel"])
    await events.wait(lambda e: e["type"] == "message.part.delta", sid)
    results = await asyncio.gather(*(client.post(f"/session/{sid}/abort") for _ in range(3)))
    assert all(r.json() is True for r in results)
    mine = await events.settle(sid)
    assert [e["type"] for e in mine].count("session.error") == 1
    assert (await client.post(f"/session/{sid}/abort")).json() is True


async def test_blocking_message_returns_the_reply(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    resp = await client.post(
        f"/session/{sid}/message", json={"parts": [{"type": "text", "text": "hello there"}]}
    )
    body = resp.json()
    assert body["info"]["role"] == "assistant" and body["info"]["finish"] == "stop"
    assert [p["type"] for p in body["parts"]] == ["step-start", "text", "step-finish"]
    assert body["parts"][1]["text"] == "Echo: hello there"


async def test_untitled_session_gets_a_generated_title(
    client: httpx.AsyncClient, events: Subscriber
) -> None:
    sid = await new_session(client, title=None)
    assert (await client.get(f"/session/{sid}")).json()["title"].startswith("New session - ")
    # The title call carries no tools, so the mock LLM answers it with its fixed title.
    await prompt(client, sid, 'Find them [[tool:glob {"pattern":"*.md"}]]')
    await events.wait(
        lambda e: (
            e["type"] == "session.updated"
            and e["properties"]["info"]["title"] == "Scripted session"
        ),
        sid,
    )
    await events.settle(sid)


async def test_basic_auth(mock_llm_url: str) -> None:
    with serve(replace(BASE, llm_url=mock_llm_url, password="s3cret")) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for auth in (None, ("opencode", "wrong"), ("bob", "s3cret")):
                resp = await http.get("/global/health", auth=auth)
                assert (resp.status_code, resp.content) == (401, b"")
                assert resp.headers["www-authenticate"] == 'Basic realm="Secure Area"'
            assert (await http.get("/global/health", auth=("opencode", "s3cret"))).json()["healthy"]
            token = base64.b64encode(b"opencode:s3cret").decode()
            resp = await http.get("/session", headers={"Authorization": f"Basic {token}"})
            assert resp.status_code == 200
        async with Subscriber(url, auth=("opencode", "s3cret")) as sub:
            assert sub.events[0]["type"] == "server.connected"


# -- upstream failures and quirks --------------------------------------------------------------
async def test_unreachable_upstream_retries_then_fails() -> None:
    dead = BackgroundServer(create_app())  # bind a port, then free it: nothing listens there
    dead_url = dead.start()
    dead.stop()
    with serve(replace(BASE, llm_url=dead_url)) as url:
        async with Subscriber(url) as sub, httpx.AsyncClient(base_url=url) as http:
            sid = await new_session(http)
            await prompt(http, sid, "hello")
            await sub.wait(lambda e: e["type"] == "session.error", sid)
            mine = await sub.settle(sid, quiet=0.1)
            statuses = [
                (s["type"], s.get("attempt"))
                for e in mine
                if e["type"] == "session.status"
                for s in [e["properties"]["status"]]
            ]
            assert statuses[:6] == [
                ("busy", None),
                ("busy", None),
                ("retry", 1),
                ("busy", None),
                ("retry", 2),
                ("busy", None),
            ]
            retry = next(
                e for e in mine if e["properties"].get("status", {}).get("type") == "retry"
            )
            assert retry["properties"]["status"]["message"].startswith("Cannot connect to API")
            error = next(e for e in mine if e["type"] == "session.error")["properties"]["error"]
            assert error["name"] == "APIError" and error["data"]["isRetryable"] is True
            tail = [key_of(e) for e in canonical(mine)][-6:]
            assert tail == [
                ("session.error", "APIError"),
                ("session.status", "idle"),
                ("session.idle",),
                ("message.updated", "assistant", "APIError"),
                ("session.status", "idle"),
                ("session.idle",),
            ]

            # Aborting during a backoff ends quietly: no session.error, message completes.
            sid2 = await new_session(http)
            await prompt(http, sid2, "again")
            await sub.wait(lambda e: e["properties"].get("status", {}).get("type") == "retry", sid2)
            await http.post(f"/session/{sid2}/abort")
            quiet = [key_of(e) for e in canonical(await sub.settle(sid2, quiet=0.1))]
            assert ("session.error", "MessageAbortedError") not in quiet
            assert quiet[-3:] == [
                ("message.updated", "assistant", ""),
                ("session.status", "idle"),
                ("session.idle",),
            ]


async def test_silence_quirk_hides_every_end_of_turn_signal(mock_llm_url: str) -> None:
    with serve(replace(BASE, llm_url=mock_llm_url, silence=True)) as url:
        async with Subscriber(url) as sub, httpx.AsyncClient(base_url=url) as http:
            sid = await new_session(http)
            await prompt(http, sid, "hello")
            await sub.wait(lambda e: key_of(e)[1:2] == ("step-finish",), sid)
            await asyncio.sleep(0.3)
            mine = sub.of(sid)
            assert not [e for e in mine if e["type"] == "session.idle"]
            assert ("session.status", "idle") not in [key_of(e) for e in mine]
            completed = [
                e
                for e in mine
                if e["type"] == "message.updated" and "completed" in e["properties"]["info"]["time"]
            ]
            assert completed == []
            history = (await http.get(f"/session/{sid}/message")).json()
            assert "completed" in history[-1]["info"]["time"]  # only the stream is silent


# -- permission rules, without HTTP ------------------------------------------------------------
async def test_reject_rejects_the_sessions_other_requests_and_always_resolves_matches() -> None:
    bus = Bus()
    perms = Permissions({"bash": "ask"}, bus)
    tool = {"messageID": "msg_1", "callID": "call_1"}

    async def ask(sid: str, command: str) -> str:
        try:
            await perms.check(sid, permission_request("bash", {"command": command}), tool)
        except Rejected:
            return "rejected"
        return "ran"

    tasks = [
        asyncio.create_task(ask(sid, cmd))
        for sid, cmd in [("ses_a", "echo 1"), ("ses_a", "ls"), ("ses_b", "echo 2")]
    ]
    await asyncio.sleep(0)
    ids = [p["id"] for p in perms.pending()]
    perms.reply(ids[0], "reject")
    assert await tasks[0] == "rejected" and await tasks[1] == "rejected"
    assert [p["sessionID"] for p in perms.pending()] == ["ses_b"]

    follow = asyncio.create_task(ask("ses_b", "echo 3"))
    await asyncio.sleep(0)
    perms.reply(ids[2], "always")  # approves "echo *": the other echo resolves too
    assert await tasks[2] == "ran" and await follow == "ran"
    assert perms.pending() == []
    assert await ask("ses_b", "echo 4") == "ran"  # no question any more


# -- crash-test knob: a late prompt_async answer -------------------------------------------------
@pytest.mark.parametrize("accept", ["before", "after"])
async def test_prompt_delay_answers_late_and_takes_the_prompt_before_or_after(
    mock_llm_url: str, accept: str
) -> None:
    config = replace(BASE, llm_url=mock_llm_url, prompt_delay=0.4, prompt_accept=accept)
    with serve(config) as url:
        async with Subscriber(url) as sub, httpx.AsyncClient(base_url=url) as http:
            sid = await new_session(http)
            send = asyncio.create_task(prompt(http, sid, "kept"))
            await asyncio.sleep(0.2)
            taken = [e for e in sub.of(sid) if e["type"] == "message.updated"]
            assert bool(taken) == (accept == "before")  # "before": running while unanswered
            assert not send.done()
            await send
            await sub.settle(sid)
            history = (await http.get(f"/session/{sid}/message")).json()
            assert [m["info"]["role"] for m in history] == ["user", "assistant"]

            # A client that hangs up during the delay: "after" never takes its prompt.
            cut = await new_session(http)
            body = {"parts": [{"type": "text", "text": "cut"}]}
            with contextlib.suppress(httpx.TimeoutException):
                await http.post(f"/session/{cut}/prompt_async", json=body, timeout=0.1)
            await asyncio.sleep(0.6)
            users = [
                m
                for m in (await http.get(f"/session/{cut}/message")).json()
                if m["info"]["role"] == "user"
            ]
            assert len(users) == (1 if accept == "before" else 0)
