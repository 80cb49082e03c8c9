"""The runtime kinds of the ``adapters`` scenario: their processes, and what Corral is told.

Each kind's runtime runs as its own process group (so its CPU is never Corral's), with the mock
LLM as its model: the simulators ``python -m corral.sim.<kind>``, and for ``langgraph`` the real
``langgraph dev`` from the cache ``tests/plugins/langgraph.py`` fills
(``~/.cache/corral/peers/langgraph-0.4.40/``). A kind whose adapter does not import, or whose
server is not installed, is skipped with the reason.

Corral gets one *runtime* (and one agent on it) per :data:`SESSIONS_PER_RUNTIME` live sessions:
the adapters that follow a stream per session (a2a, claude_agents, cursor, hermes, langgraph)
hold it in one ``httpx.AsyncClient`` per runtime, whose pool is httpx's default of 100
connections. Simulators whose own LLM client has that same limit serve at most that many
sessions per process, so more processes are started as needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import math
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import ApiError, Cluster, api_client, call
from bench.harness import Databases, Latency, database
from bench.procs import Child, Supervisor, cpu_seconds, free_port
from bench.streams import CorralStream

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
LANGGRAPH_ROOT = PEERS / "langgraph-0.4.40"
LANGGRAPH_FIXTURES = REPO / "tests" / "fixtures" / "langgraph"
SESSIONS_PER_RUNTIME = 80  # below the adapters' (and simulators') 100-connection pools
KEY = "corral-bench-key"
GATE = 16  # concurrent creates / posts / cancels
PUMP_GRACE = 3.0  # Corral's default CORRAL_PUMP_GRACE_SECONDS
_DELTA = b"event: message.delta"
ORDER = ("opencode", "claude_agents", "cursor", "hermes", "a2a", "openclaw", "langgraph")


def _sim(module: str, *extra: str) -> Callable[[int, str, Path], list[str]]:
    def argv(port: int, llm_url: str, directory: Path) -> list[str]:
        return [PYTHON, "-m", module, "--port", str(port), "--llm-url", llm_url,
                "--log-level", "warning", *extra]  # fmt: skip

    return argv


def _opencode(port: int, llm_url: str, directory: Path) -> list[str]:
    return [*_sim("corral.sim.opencode")(port, llm_url, directory), "--directory", str(directory)]


def _langgraph(port: int, llm_url: str, directory: Path) -> list[str]:
    for name in ("langgraph.json", "agent_graph.py"):
        shutil.copy(LANGGRAPH_FIXTURES / name, directory / name)
    return [str(LANGGRAPH_ROOT / "bin" / "python"), "-m", "langgraph_cli", "dev", "--no-browser",
            "--no-reload", "--host", "127.0.0.1", "--port", str(port),
            "--n-jobs-per-worker", str(4 * SESSIONS_PER_RUNTIME)]  # fmt: skip


@dataclass(frozen=True)
class Kind:
    name: str
    argv: Callable[[int, str, Path], list[str]]
    ready: str  # path answering 200 once the process serves
    credentials: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: Sessions one process can run at once (its LLM client's pool); None: no such limit.
    per_process: int | None = SESSIONS_PER_RUNTIME
    #: Characters the runtime adds around the prompt that the mock LLM then echoes too.
    echo_extra: int = 0
    #: The runtime coalesces deltas (OpenClaw's gateway sends at most one per 150 ms), so "full
    #: speed" is this paced turn length in seconds, spread over many more sessions.
    paced_s: float | None = None
    startup_s: float = 30.0


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("opencode", _opencode, "/global/health"),
        Kind("claude_agents", _sim("corral.sim.claude_agents", "--api-key", KEY), "/",
             credentials={"api_key": KEY},
             config={"environment_name": "corral-bench"},
             agent={"model": "claude-sonnet-4-5"}),
        Kind("cursor", _sim("corral.sim.cursor", "--api-key", KEY), "/",
             credentials={"api_key": KEY}),
        Kind("hermes", _sim("corral.sim.hermes"), "/health", credentials={"api_key": KEY},
             env={"API_SERVER_KEY": KEY}, per_process=None),
        Kind("a2a", _sim("corral.sim.a2a"), "/.well-known/agent-card.json",
             config={"protocol": "1.0"}),
        # "[Wed 2026-11-25 19:48 UTC] <text>\n\nRuntime: agent=main | session=... | ..."
        Kind("openclaw", _sim("corral.sim.openclaw", "--token", KEY), "/",
             credentials={"token": KEY}, per_process=None, echo_extra=150, paced_s=10.0),
        Kind("langgraph", _langgraph, "/ok", config={"assistant_id": "agent"},
             per_process=None, startup_s=120.0),
    )
}  # fmt: skip


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here (None: it can)."""
    module = {"opencode": "opencode", "claude_agents": "claude_agents"}.get(kind, kind)
    try:
        importlib.import_module(f"corral.runtimes.{module}.adapter")
    except Exception as exc:  # a runtime still being written may fail in any way
        return f"corral.runtimes.{module} does not import: {type(exc).__name__}: {exc}"
    if kind == "langgraph" and not (LANGGRAPH_ROOT / "bin" / "python").exists():
        return f"langgraph dev is not installed in {LANGGRAPH_ROOT} (make test-slow installs it)"
    return None


@dataclass
class Proc:
    kind: str
    url: str
    child: Child


class Runtimes:
    """Runtime processes per kind, started as needed and reused by every phase."""

    def __init__(self, sup: Supervisor, workdir: Path, llm_url: str) -> None:
        self.sup, self.workdir, self.llm_url = sup, workdir, llm_url
        self.procs: dict[str, list[Proc]] = {}

    def processes_for(self, kind: str, sessions: int) -> int:
        per = KINDS[kind].per_process
        return 1 if per is None else max(1, math.ceil(sessions / per))

    async def ensure(self, wanted: dict[str, int]) -> None:
        """Enough processes of each kind for ``wanted[kind]`` concurrent sessions."""
        started: list[tuple[Kind, Proc]] = []
        for name, sessions in wanted.items():
            kind = KINDS[name]
            have = self.procs.setdefault(name, [])
            for _ in range(self.processes_for(name, sessions) - len(have)):
                port = free_port()
                directory = self.workdir / f"{name}-{len(have)}"
                directory.mkdir(parents=True, exist_ok=True)
                env = {**os.environ, **kind.env, "CORRAL_MOCK_LLM_URL": self.llm_url}
                argv = kind.argv(port, self.llm_url, directory)
                child = self.sup.spawn(f"{name}-{len(have)}", argv, env=env, cwd=directory)
                proc = Proc(name, f"http://127.0.0.1:{port}", child)
                have.append(proc)
                started.append((kind, proc))
        await asyncio.gather(*(_ready(p, k) for k, p in started))

    def pids(self) -> list[int]:
        return [p.child.pid for procs in self.procs.values() for p in procs]

    async def register(
        self, corral_url: str, admin_key: str, dev_key: str, kind: str, sessions: int
    ) -> list[str]:
        """Runtimes and agents in a Corral for ``sessions`` sessions of ``kind``: one agent id
        per :data:`SESSIONS_PER_RUNTIME` sessions (session ``i`` goes to agent ``i // 80``)."""
        spec, procs = KINDS[kind], self.procs[kind]
        agents = []
        count = max(1, math.ceil(sessions / SESSIONS_PER_RUNTIME))
        async with (
            api_client(corral_url, admin_key) as admin,
            api_client(corral_url, dev_key) as dev,
        ):
            for i in range(count):
                name = f"{kind}-{i}-{uuid.uuid4().hex[:6]}"
                body = {"name": name, "kind": kind, "base_url": procs[i % len(procs)].url,
                        "config": spec.config}  # fmt: skip
                runtime = await call(admin, "POST", "/v1/runtimes", body)
                if spec.credentials is not None:
                    path = f"/v1/runtimes/{runtime['id']}/credentials"
                    await call(admin, "PUT", path, {"credentials": spec.credentials})
                agent = {"name": f"agent-{name}", "runtime_id": runtime["id"],
                         "model": "mock/mock-model", **spec.agent}  # fmt: skip
                agents.append(str((await call(dev, "POST", "/v1/agents", agent))["id"]))
        return agents


async def _ready(proc: Proc, kind: Kind) -> None:
    """Until the process answers its ready path (langgraph may move to another port: its log
    names the one it took)."""
    deadline = time.monotonic() + kind.startup_s
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not proc.child.alive():
                raise RuntimeError(f"{proc.child.name} exited:\n{proc.child.tail()}")
            if kind.name == "langgraph":
                found = re.search(r"API: \S*?(http://127\.0\.0\.1:\d+)", proc.child.tail(200))
                proc.url = found.group(1) if found else proc.url
            with contextlib.suppress(httpx.HTTPError):
                answer = await http.get(proc.url + kind.ready)
                if answer.status_code < 500 and (kind.ready == "/" or answer.status_code == 200):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.child.name} not ready:\n{proc.child.tail()}")
            await asyncio.sleep(0.2)


# -- Corral as a process, and its API ------------------------------------------------------


@dataclass
class Corral:
    url: str
    child: Child
    admin_key: str
    dev_key: str

    def rss_mb(self) -> float:
        return status_kb(self.child.pid, "VmRSS") / 1024

    def cpu(self) -> float:
        return cpu_seconds(self.child.pid) or 0.0


def status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


def group_cpu(pids: list[int]) -> float:
    """CPU seconds of every process in the process groups led by ``pids`` (servers may fork)."""
    groups, total = set(pids), 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                if int(raw[raw.rindex(")") + 2 :].split()[2]) in groups:
                    total += cpu_seconds(int(entry.name)) or 0.0
    return total


@contextlib.asynccontextmanager
async def corral_process(
    dbs: Databases, backend: str, sup: Supervisor, workdir: Path
) -> AsyncIterator[Corral]:
    async with database(dbs, backend, "adapters") as url:
        cluster = Cluster(sup, workdir, url)
        replica = cluster.add_replica({})
        try:
            await cluster.start(replica)
            assert cluster.admin_key is not None and replica.child is not None
            async with api_client(replica.url, cluster.admin_key) as admin:
                team = await call(admin, "POST", "/v1/teams", {"name": "bench-adapters"})
                user = {"name": "bench", "email": "bench@example.com", "team_id": team["id"],
                        "role": "developer"}  # fmt: skip
                user = await call(admin, "POST", "/v1/users", user)
                key = await call(admin, "POST", "/v1/keys", {"name": "b", "user_id": user["id"]})
            yield Corral(replica.url, replica.child, cluster.admin_key, str(key["key"]))
        finally:
            if replica.child is not None:  # its turns are gone with its database
                await sup.signal(replica.child, signal.SIGKILL)


async def gather_gated(work: list[Awaitable[Any]]) -> list[Any]:
    """Await all of ``work`` (not yet started coroutines), at most :data:`GATE` at a time."""
    gate = asyncio.Semaphore(GATE)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in work)))


async def create_sessions(dev: httpx.AsyncClient, agents: list[str]) -> list[str]:
    made = await gather_gated([call(dev, "POST", "/v1/sessions", {"agent_id": a}) for a in agents])
    return [str(s["id"]) for s in made]


async def post_messages(dev: httpx.AsyncClient, ids: list[str], prompts: list[str]) -> list[str]:
    """Send each session its prompt; the errors, if any."""
    errors: list[str] = []

    async def one(sid: str, text: str) -> None:
        try:
            await call(dev, "POST", f"/v1/sessions/{sid}/messages", {"text": text})
        except (ApiError, httpx.HTTPError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    await gather_gated([one(s, p) for s, p in zip(ids, prompts, strict=True)])
    return errors


async def wait_idle(dev: httpx.AsyncClient, agents: set[str], timeout: float) -> bool:
    """Until no session of these agents is running (False on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = False
        for agent in agents:
            page = await call(dev, "GET", f"/v1/sessions?agent_id={agent}&state=running&limit=1")
            running = running or bool(page["data"])
        if not running:
            return True
        await asyncio.sleep(0.2)
    return False


def fast_prompt(words: int) -> str:
    return "[[slow:0]] " + " ".join(f"w{i}" for i in range(words))


def slow_prompt(kind: str, chars: int, interval: float) -> str:
    """A reply of ``chars`` characters ("Echo: xxx..."), one character every ``interval`` s."""
    seconds = interval * (chars + KINDS[kind].echo_extra)
    return f"[[slow:{seconds:g}]] " + "x" * max(1, chars - len("Echo: "))


class LiveStream(CorralStream):
    def __init__(self, client: httpx.AsyncClient, session_id: str) -> None:
        super().__init__(client, session_id, 0)
        self.first_delta = asyncio.Event()

    def _seen(self, data: bytes) -> None:
        super()._seen(data)
        if _DELTA in data:
            self.first_delta.set()


async def cancel_all(dev: httpx.AsyncClient, ids: list[str]) -> None:
    """Best effort: stop the runtimes' turns (Corral itself is killed next)."""

    async def one(sid: str) -> None:
        with contextlib.suppress(ApiError, httpx.HTTPError):
            await call(dev, "POST", f"/v1/sessions/{sid}/cancel")

    await gather_gated([one(s) for s in ids])


@contextlib.asynccontextmanager
async def clients(
    c: Corral, streams: int
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The developer's API client, and a client that can hold ``streams`` open streams."""
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=streams + 8)
    headers = {"Authorization": f"Bearer {c.dev_key}"}
    async with (
        api_client(c.url, c.dev_key, connections=GATE * 2, timeout=60) as dev,
        httpx.AsyncClient(base_url=c.url, headers=headers, limits=limits,
                          timeout=httpx.Timeout(None, connect=60)) as stream_client,
    ):  # fmt: skip
        yield dev, stream_client


async def warm_up(c: Corral, dev: httpx.AsyncClient, agents: list[str]) -> float:
    """GATE concurrent turns over ``agents`` grow Corral's pools to their working size; after
    the pumps' grace period, its RSS in MB: the baseline."""
    cycle = itertools.islice(itertools.cycle(agents), max(GATE, len(agents)))
    warm = await create_sessions(dev, list(cycle))
    await post_messages(dev, warm, [fast_prompt(20)] * len(warm))
    await wait_idle(dev, set(agents), 60)
    await asyncio.sleep(PUMP_GRACE + 1.0)
    return c.rss_mb()


async def open_streams(client: httpx.AsyncClient, ids: list[str]) -> list[LiveStream]:
    streams = [LiveStream(client, sid) for sid in ids]
    for stream in streams:
        stream.start()
    with contextlib.suppress(TimeoutError):  # the caller counts the streams that failed
        await asyncio.wait_for(asyncio.gather(*(s.chunks.connected.wait() for s in streams)), 120)
    return streams


async def close_streams(streams: list[LiveStream]) -> None:
    for stream in streams:
        await stream.close()


def stream_flow(
    streams: list[LiveStream], slots: list[tuple[str, str]], t0: float, t1: float, interval: float
) -> dict[str, Any]:
    """Per stream: deltas received in [t0, t1] and the longest gap (window edges included)."""
    gaps: list[float] = []
    counts: list[int] = []
    kept = 0
    per_kind: dict[str, dict[str, Any]] = {}
    for stream, (kind, _) in zip(streams, slots, strict=True):
        times = [t for t, e in stream.chunks.frames() if e.get("type") == "message.delta"]
        inside = [t for t in times if t0 <= t <= t1]
        edges = [t0, *inside, t1]
        gap = max(b - a for a, b in itertools.pairwise(edges))
        ok = bool(inside) and gap <= 2.5 * interval
        kept += ok
        gaps.append(gap)
        counts.append(len(inside))
        row = per_kind.setdefault(kind, {"streams": 0, "kept_receiving": 0, "deltas": 0})
        row["streams"] += 1
        row["kept_receiving"] += ok
        row["deltas"] += len(inside)
    for row in per_kind.values():
        row["deltas_per_s_per_stream"] = round(row.pop("deltas") / row["streams"] / (t1 - t0), 3)
    return {
        "streams_kept_receiving": kept,
        "deltas_in_window": sum(counts),
        "max_gap_s": {k: round(v / 1000, 2) for k, v in Latency.of(gaps).as_dict().items()
                      if k in ("p50", "p99", "max")},
        "deltas_per_stream": {"min": min(counts, default=0), "max": max(counts, default=0)},
        "per_kind": per_kind,
    }  # fmt: skip
