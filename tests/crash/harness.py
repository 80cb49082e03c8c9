"""The processes of a crash test and how the test talks to them.

Everything runs as a real process on a loopback port: the mock LLM, simulated OpenCode servers
and ``corral serve``. Each process gets its own process group (so a kill reaches all of it) and,
on Linux, dies with the test process even if pytest itself is killed; :meth:`Processes.stop_all`
ends whatever is left. Output goes to one log file per process start, under the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from corral.sim.processes import die_with_parent, free_port

PYTHON = sys.executable
CORRAL = str(Path(sys.executable).with_name("corral"))
ADMIN_KEY_LINE = re.compile(r"Admin API key: (\S+)")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Every process a crash test starts; :meth:`stop_all` ends them, always."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Proc] = []

    def spawn(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path
    ) -> Proc:
        log = self.logdir / f"{name}.{sum(p.name == name for p in self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group
                preexec_fn=die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def kill(self, proc: Proc, sig: signal.Signals = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
        for _ in range(500):
            if proc.popen.poll() is not None:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"{proc.name} (pid {proc.popen.pid}) survived {sig.name}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            # The group too: a child the process left behind must not outlive the test.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)


async def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    """Until ``GET url`` answers 200; fails early (with the log) if the process died."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready after {timeout}s:\n{proc.tail()}")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class SimRuntime:
    """One simulated OpenCode process and how it acknowledges prompts."""

    name: str
    url: str
    prompt_delay: float = 0.0
    prompt_accept: str = "before"


@dataclass
class Cluster:
    """The mock LLM, the simulated runtimes and one ``corral serve`` that can be killed."""

    workdir: Path
    database_url: str
    procs: Processes
    corral_port: int = field(default_factory=free_port)
    master_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    runtimes: dict[str, SimRuntime] = field(default_factory=dict)
    corral: Proc | None = None
    admin_key: str | None = None
    starts: int = 0
    kill_times: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.corral_port}"

    async def start_runtimes(self, delay: float) -> None:
        llm_port = free_port()
        llm = self.procs.spawn(
            "mock-llm",
            [
                PYTHON,
                "-m",
                "corral.sim.mock_llm",
                "--port",
                str(llm_port),
                "--log-level",
                "warning",
            ],
            cwd=self.workdir,
        )
        await wait_http(f"http://127.0.0.1:{llm_port}/v1/models", llm)
        profiles = [
            ("fast", 0.0, "before"),
            ("ack-late", delay, "before"),  # takes the prompt at once, answers late
            ("accept-late", delay, "after"),  # takes it only if Corral is still there after
        ]
        waits = []
        for name, prompt_delay, accept in profiles:
            port = free_port()
            simdir = self.workdir / f"sim-{name}"
            simdir.mkdir(exist_ok=True)
            argv = [
                PYTHON, "-m", "corral.sim.opencode", "--port", str(port),
                "--llm-url", f"http://127.0.0.1:{llm_port}", "--directory", str(simdir),
                "--heartbeat", "1", "--retry-delay", "0.2", "--log-level", "warning",
                "--prompt-delay", str(prompt_delay), "--prompt-accept", accept,
            ]  # fmt: skip
            proc = self.procs.spawn(f"opencode-{name}", argv, cwd=simdir)
            url = f"http://127.0.0.1:{port}"
            self.runtimes[name] = SimRuntime(name, url, prompt_delay, accept)
            waits.append(wait_http(f"{url}/global/health", proc))
        await asyncio.gather(*waits)

    def _corral_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        env.update(
            PYTHONUNBUFFERED="1",
            CORRAL_DATABASE_URL=self.database_url,
            CORRAL_MASTER_KEY=self.master_key,
            CORRAL_KEY_FILE=str(self.workdir / "master.key"),
            CORRAL_PUMP_GRACE_SECONDS="1",
            CORRAL_PUMP_SILENCE_SECONDS="3",
            CORRAL_SSE_HEARTBEAT_SECONDS="1",
            CORRAL_LOG_LEVEL="warning",
        )
        return env

    async def start_corral(self) -> float:
        """Start ``corral serve`` (again) and wait for ``/readyz``; returns seconds taken."""
        began = time.monotonic()
        argv = [CORRAL, "serve", "--host", "127.0.0.1", "--port", str(self.corral_port)]
        self.corral = self.procs.spawn("corral", argv, env=self._corral_env(), cwd=self.workdir)
        self.starts += 1
        await wait_http(f"{self.url}/readyz", self.corral)
        if self.admin_key is None:
            self.admin_key = await self._read_admin_key(self.corral)
        return time.monotonic() - began

    async def _read_admin_key(self, proc: Proc) -> str:
        for _ in range(200):
            found = ADMIN_KEY_LINE.search(proc.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no admin key in corral serve's output:\n{proc.tail()}")

    async def kill_corral(self) -> None:
        assert self.corral is not None
        self.kill_times.append(time.time())
        await self.procs.kill(self.corral, signal.SIGKILL)


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:300]}")
        self.status = status


class Api:
    """A typed sliver of Corral's HTTP API, for one key against one process."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = await self.http.request(method, path, json=body, params=params, headers=headers)
        if response.status_code >= 300:
            raise ApiError(response.status_code, response.text)
        return response.json() if response.content else None

    async def session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/v1/sessions/{session_id}")
        return result

    async def events(self, session_id: str) -> list[dict[str, Any]]:
        """The whole log, page by page (``next_cursor`` is the last seq of a full page)."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.call(
                "GET", f"/v1/sessions/{session_id}/events", params={"after": after, "limit": 200}
            )
            out += page["data"]
            if page["next_cursor"] is None:
                return out
            after = int(page["next_cursor"])

    async def pending_approvals(self, session_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call(
            "GET", f"/v1/sessions/{session_id}/approvals", params={"status": "pending"}
        )
        return result


async def setup_fleet(cluster: Cluster) -> tuple[str, dict[str, str]]:
    """Team, developer, key, one runtime and agent per simulator; (user key, agent id by name)."""
    assert cluster.admin_key is not None
    admin = Api(cluster.url, cluster.admin_key)
    try:
        team = await admin.call("POST", "/v1/teams", {"name": "crash"})
        user = await admin.call(
            "POST",
            "/v1/users",
            {"name": "dev", "email": "dev@crash.test", "team_id": team["id"], "role": "developer"},
        )
        key = await admin.call("POST", "/v1/keys", {"name": "crash", "user_id": user["id"]})
        runtime_ids = {}
        for name, sim in cluster.runtimes.items():
            body = {"name": f"oc-{name}", "kind": "opencode", "base_url": sim.url}
            runtime_ids[name] = (await admin.call("POST", "/v1/runtimes", body))["id"]
    finally:
        await admin.aclose()
    dev = Api(cluster.url, key["key"])
    try:
        agents = {}
        for name, runtime_id in runtime_ids.items():
            body = {"name": f"agent-{name}", "runtime_id": runtime_id, "model": "mock/mock-model"}
            agents[name] = (await dev.call("POST", "/v1/agents", body))["id"]
    finally:
        await dev.aclose()
    return str(key["key"]), agents


class StreamReader:
    """One ``GET /v1/sessions/{id}/stream`` connection read by a task, frames kept in order."""

    def __init__(self, url: str, key: str, session_id: str, last_event_id: int) -> None:
        self.session_id = session_id
        self.last_event_id = last_event_id
        self.frames: list[dict[str, Any]] = []
        self.error: str | None = None
        self._url, self._key = url, key
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> StreamReader:
        self._task = asyncio.create_task(self._read(), name=f"sse-{self.session_id}")
        return self

    @property
    def last_seq(self) -> int:
        return int(self.frames[-1]["seq"]) if self.frames else self.last_event_id

    async def _read(self) -> None:
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Last-Event-ID": str(self.last_event_id),
        }
        timeout = httpx.Timeout(None, connect=5.0)
        try:
            async with (
                httpx.AsyncClient(base_url=self._url, timeout=timeout) as http,
                http.stream(
                    "GET", f"/v1/sessions/{self.session_id}/stream", headers=headers
                ) as response,
            ):
                if response.status_code != 200:
                    self.error = f"stream answered {response.status_code}"
                    return
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line == "":
                        if "data" in fields:
                            data = json.loads(fields["data"])
                            self.frames.append(data)
                            if str(data.get("seq")) != fields.get("id"):
                                self.error = f"frame id {fields.get('id')} != seq {data.get('seq')}"
                            self._changed.set()
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Until ``predicate(frames)`` holds; False on timeout or when the stream ended."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.frames):
            if self._task is None or self._task.done():
                return bool(predicate(self.frames))
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class RuntimeView:
    """What a simulated OpenCode itself says: history, busy sessions, pending permissions."""

    def __init__(self, sim: SimRuntime) -> None:
        self.sim = sim
        self.http = httpx.AsyncClient(base_url=sim.url, timeout=10.0)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def history(self, native_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.http.get(f"/session/{native_id}/message")).json()
        return result

    async def busy(self, native_id: str) -> bool:
        return native_id in (await self.http.get("/session/status")).json()

    async def permissions(self, native_id: str) -> list[dict[str, Any]]:
        pending = (await self.http.get("/permission")).json()
        return [p for p in pending if p.get("sessionID") == native_id]

    async def abort(self, native_id: str) -> None:
        await self.http.post(f"/session/{native_id}/abort")
