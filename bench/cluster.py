"""Real processes for the recovery scenarios: mock LLM, simulated OpenCodes, ``corral serve``s.

Each process listens on its own loopback port. Replicas share one database and one master key
and differ in ``CORRAL_INSTANCE_ID``; the first one started on a fresh database prints the
bootstrap admin key, which is read from its log. Runtimes are registered without credentials
(the simulators run without HTTP Basic auth).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import Child, Supervisor, free_port, wait_http

PYTHON = sys.executable
CORRAL = str(Path(sys.executable).with_name("corral"))
ADMIN_KEY = re.compile(r"Admin API key: (\S+)")


@dataclass
class Replica:
    index: int
    instance_id: str
    port: int
    env: dict[str, str]
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Sim:
    url: str
    child: Child
    runtime_id: str | None = None
    agent_id: str | None = None


@dataclass
class Cluster:
    """The processes of one measurement; everything is stopped by the supervisor's exit."""

    sup: Supervisor
    workdir: Path
    database_url: str
    master_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    llm_url: str | None = None
    llm: Child | None = None
    sims: list[Sim] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)
    admin_key: str | None = None
    user_key: str | None = None
    team_id: str | None = None

    # -- runtimes ---------------------------------------------------------------------------

    async def start_llm(self) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "corral.sim.mock_llm", "--port", str(port), "--log-level", "warning"]
        self.llm = self.sup.spawn("mock-llm", argv, cwd=self.workdir)
        self.llm_url = f"http://127.0.0.1:{port}"
        await wait_http(f"{self.llm_url}/v1/models", self.llm)

    def use_local_llm(self) -> None:
        """Simulators answer the mock LLM's script in their own process (``--llm-url local``):
        no mock LLM process, no HTTP hop per chunk. For load runs, where the model's side
        should cost the machine as little as possible."""
        self.llm_url = "local"

    async def add_sims(self, count: int) -> list[Sim]:
        """Start ``count`` more simulated OpenCodes (each its own process and directory)."""
        assert self.llm_url is not None
        started: list[Sim] = []
        for _ in range(count):
            port = free_port()
            directory = self.workdir / f"sim-{len(self.sims)}"
            directory.mkdir(exist_ok=True)
            argv = [
                PYTHON, "-m", "corral.sim.opencode", "--port", str(port),
                "--llm-url", self.llm_url, "--directory", str(directory),
                "--log-level", "warning",
            ]  # fmt: skip
            child = self.sup.spawn(f"opencode-sim-{len(self.sims)}", argv, cwd=directory)
            sim = Sim(f"http://127.0.0.1:{port}", child)
            self.sims.append(sim)
            started.append(sim)
        await asyncio.gather(*(wait_http(f"{s.url}/global/health", s.child) for s in started))
        if self.user_key is not None:
            await self._register(started)
        return started

    # -- Corral -----------------------------------------------------------------------------

    def add_replica(self, settings: Mapping[str, str]) -> Replica:
        index = len(self.replicas)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        env.update(
            PYTHONUNBUFFERED="1",
            CORRAL_DATABASE_URL=self.database_url,
            CORRAL_MASTER_KEY=self.master_key,
            CORRAL_KEY_FILE=str(self.workdir / "unused-master.key"),
            CORRAL_INSTANCE_ID=f"bench-replica-{index}",
            CORRAL_LOG_LEVEL="warning",
        )
        env.update(settings)
        replica = Replica(index, env["CORRAL_INSTANCE_ID"], free_port(), env)
        self.replicas.append(replica)
        return replica

    async def start(self, replica: Replica) -> float:
        """Start (or restart) ``corral serve`` for a replica; seconds until ``/readyz``."""
        began = time.monotonic()
        argv = [CORRAL, "serve", "--host", "127.0.0.1", "--port", str(replica.port)]
        replica.child = self.sup.spawn(
            f"corral-{replica.index}", argv, env=replica.env, cwd=self.workdir
        )
        await wait_http(f"{replica.url}/readyz", replica.child)
        if self.admin_key is None:
            self.admin_key = await _admin_key(replica.child)
        return time.monotonic() - began

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.child is not None and r.child.alive()]

    # -- API setup --------------------------------------------------------------------------

    async def setup(self) -> None:
        """Team, developer and key through the first replica; a runtime and agent per sim."""
        assert self.admin_key is not None
        url = self.replicas[0].url
        async with api_client(url, self.admin_key) as admin:
            team = await call(admin, "POST", "/v1/teams", {"name": "bench-recovery"})
            user = await call(
                admin, "POST", "/v1/users",
                {"name": "bench", "email": "bench@example.com", "team_id": team["id"],
                 "role": "developer"},
            )  # fmt: skip
            key = await call(admin, "POST", "/v1/keys", {"name": "bench", "user_id": user["id"]})
        self.team_id, self.user_key = str(team["id"]), str(key["key"])
        await self._register(self.sims)

    async def _register(self, sims: list[Sim]) -> None:
        assert self.admin_key is not None and self.user_key is not None
        url = self.replicas[0].url
        async with api_client(url, self.admin_key) as admin, api_client(url, self.user_key) as dev:
            for sim in sims:
                number = self.sims.index(sim)
                runtime = await call(
                    admin, "POST", "/v1/runtimes",
                    {"name": f"sim-{number}", "kind": "opencode", "base_url": sim.url},
                )  # fmt: skip
                agent = await call(
                    dev, "POST", "/v1/agents",
                    {"name": f"agent-{number}", "runtime_id": runtime["id"],
                     "model": "mock/mock-model"},
                )  # fmt: skip
                sim.runtime_id, sim.agent_id = str(runtime["id"]), str(agent["id"])


async def _admin_key(child: Child) -> str:
    for _ in range(200):
        found = ADMIN_KEY.search(child.log.read_text(errors="replace"))
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no admin key in the output of corral serve:\n{child.tail()}")


# -- HTTP ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def api_client(
    url: str, key: str, *, connections: int = 64, timeout: float = 30.0
) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=timeout, limits=limits
    ) as client:
        yield client


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:300]}")
        self.status = status


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await client.request(method, path, json=body)
    if response.status_code >= 300:
        raise ApiError(method, path, response.status_code, response.text)
    return response.json() if response.content else None


def parse_sse(buffer: bytes) -> tuple[list[dict[str, str]], bytes]:
    """Complete SSE frames in ``buffer`` (as field dicts) and the unparsed rest."""
    frames: list[dict[str, str]] = []
    buffer = buffer.replace(b"\r\n", b"\n")
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return frames, buffer
        block, buffer = buffer[:end], buffer[end + 2 :]
        fields: dict[str, str] = {}
        for line in block.decode().split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            frames.append(fields)


def frame_json(fields: dict[str, str]) -> dict[str, Any] | None:
    data = fields.get("data")
    if data is None:
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return None
