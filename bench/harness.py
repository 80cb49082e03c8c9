"""What every scenario needs: fresh databases, a simulated OpenCode, a Corral server, statistics.

PostgreSQL databases are cloned from a migrated template (``tests.support.databases``) and
dropped again by :meth:`Databases.aclose`, which the runner calls even when a scenario fails.
SQLite databases are files under the run's temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import secrets
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from corral.sim._server import bind_socket
from tests.support.corral import CorralServer, running_corral, corral_settings
from tests.support.databases import PostgresFactory

BACKENDS = ("sqlite", "postgres")


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency summary in milliseconds."""

    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000.0 for s in seconds]
        return cls(
            n=len(ms),
            p50=percentile(ms, 50),
            p99=percentile(ms, 99),
            mean=sum(ms) / len(ms) if ms else math.nan,
            max=max(ms) if ms else math.nan,
        )

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


# -- databases ----------------------------------------------------------------------------


class Databases:
    """Fresh, empty, migrated databases per scenario; PostgreSQL ones are dropped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.postgres = PostgresFactory()
        self.postgres_error: str | None = None

    async def check_postgres(self) -> str | None:
        self.postgres_error = await self.postgres.check()
        return self.postgres_error

    async def new(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            directory = self.workdir / f"{label}-{uuid.uuid4().hex[:8]}"
            directory.mkdir(parents=True)
            return f"sqlite:///{directory / 'corral.db'}"
        return await self.postgres.new_database()

    async def release(self, url: str) -> None:
        """Drop a PostgreSQL database as soon as its scenario is over (they can be large)."""
        if url.startswith("postgresql"):
            await self.postgres.drop(url)

    async def aclose(self) -> None:
        if self.postgres_error is None:
            await self.postgres.drop_all()


@asynccontextmanager
async def database(dbs: Databases, backend: str, label: str) -> AsyncIterator[str]:
    url = await dbs.new(backend, label)
    try:
        yield url
    finally:
        await dbs.release(url)


@asynccontextmanager
async def corral_server(url: str, workdir: Path) -> AsyncIterator[CorralServer]:
    home = workdir / f"corral-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    async with running_corral(corral_settings(url, home)) as server:
        yield server


# -- the simulated OpenCode, in its own process like a real ``opencode serve`` -------------


@dataclass(frozen=True, slots=True)
class SimulatedOpenCode:
    url: str
    username: str
    password: str


@asynccontextmanager
async def simulated_opencode(workdir: Path) -> AsyncIterator[SimulatedOpenCode]:
    """``python -m corral.sim.opencode`` on a free loopback port, with HTTP Basic auth on.

    No turn is ever run against it, so its upstream LLM URL points nowhere.
    """
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    password = secrets.token_urlsafe(16)
    env = {**os.environ, "OPENCODE_SERVER_PASSWORD": password, "OPENCODE_SERVER_USERNAME": "oc"}
    log_path = workdir / f"opencode-sim-{port}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "corral.sim.opencode", "--port", str(port),
            "--llm-url", "http://127.0.0.1:9", "--log-level", "warning",
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
    sim = SimulatedOpenCode(f"http://127.0.0.1:{port}", "oc", password)
    try:
        await _wait_healthy(sim, proc, log_path)
        yield sim
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_healthy(
    sim: SimulatedOpenCode, proc: asyncio.subprocess.Process, log_path: Path
) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(auth=(sim.username, sim.password), timeout=2) as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"simulated OpenCode exited: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{sim.url}/global/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("simulated OpenCode did not become healthy in 20 s")
            await asyncio.sleep(0.1)


# -- HTTP helpers -------------------------------------------------------------------------


async def expect(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"expected {status}, got {response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


# -- machine ------------------------------------------------------------------------------


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


async def postgres_info(admin_url: str) -> dict[str, str]:
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        info: dict[str, str] = {}
        for setting in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "shared_buffers",
            "max_connections",
        ):
            info[setting] = str(await conn.fetchval(f"SHOW {setting}"))
        return info
    finally:
        await conn.close()


def machine_info(loop_name: str) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "event_loop": loop_name,
        "sqlite": sqlite3.sqlite_version,
    }
