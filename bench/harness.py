"""What every scenario needs: fresh databases, a simulated OpenCode, a Corral server, statistics.

PostgreSQL databases are cloned from a migrated template and dropped again, each right after its
scenario and all of them in :meth:`Databases.aclose`, which the runner calls even on failure.
SQLite databases are files under the run's temporary directory. (The few helpers shared with
``tests/support`` are restated here so the benchmark does not depend on the test suite.)
"""

from __future__ import annotations

import asyncio
import base64
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

from corral.api.app import create_app
from corral.config import Settings
from corral.services import Services, build
from corral.sim._server import bind_socket, serve_in_loop
from corral.store import migrate
from corral.store.db import Database

BACKENDS = ("sqlite", "postgres")
DEFAULT_PG = "postgresql://corral:corral@127.0.0.1:5432/corral_test"
DROP_ATTEMPTS = 20


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


def postgres_admin_url() -> str:
    return os.environ.get("CORRAL_TEST_DATABASE_URL", DEFAULT_PG)


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _pg_execute(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=8)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Databases:
    """Fresh, migrated databases per scenario; every PostgreSQL one made here is dropped.

    PostgreSQL databases are cloned from a template migrated once (``CREATE DATABASE ...
    TEMPLATE`` is fast); SQLite ones are files under ``workdir`` (Corral migrates them).
    """

    def __init__(self, workdir: Path, admin_url: str | None = None) -> None:
        self.workdir = workdir
        #: Where PostgreSQL databases are made: the shared server unless told otherwise.
        self.admin_url = admin_url or postgres_admin_url()
        self.postgres_error: str | None = None
        self._template: str | None = None
        self._created: list[str] = []

    async def check_postgres(self) -> str | None:
        try:
            await asyncio.wait_for(_pg_execute(self.admin_url, "SELECT 1"), 10)
        except Exception as exc:
            self.postgres_error = f"PostgreSQL not reachable at {self.admin_url}: {exc}"
        return self.postgres_error

    async def _create(self, name: str, template: str | None = None) -> None:
        self._created.append(name)  # before CREATE: a half-made database is dropped too
        suffix = f' TEMPLATE "{template}"' if template else ""
        await _pg_execute(self.admin_url, f'CREATE DATABASE "{name}"{suffix}')

    async def _template_name(self) -> str:
        if self._template is None:
            name = f"corral_bench_tpl_{uuid.uuid4().hex[:8]}"
            await self._create(name)
            db = Database(asyncpg_dsn(self.admin_url, name))
            try:
                await migrate.upgrade(db)
            finally:
                await db.dispose()
            self._template = name
        return self._template

    async def new(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            directory = self.workdir / f"{label}-{uuid.uuid4().hex[:8]}"
            directory.mkdir(parents=True)
            return f"sqlite:///{directory / 'corral.db'}"
        template = await self._template_name()
        name = f"corral_bench_{label}_{uuid.uuid4().hex[:8]}"
        await self._create(name, template)
        return asyncpg_dsn(self.admin_url, name)

    async def _drop(self, name: str) -> None:
        # WITH (FORCE) ends our own leftover connections, but PostgreSQL 15 refuses to end an
        # autovacuum worker that happens to be in the database ("must be a member of the role
        # whose process is being terminated"); that worker leaves within moments, so retry.
        for attempt in range(DROP_ATTEMPTS):
            try:
                await _pg_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == DROP_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        if name in self._created:
            self._created.remove(name)

    async def release(self, url: str) -> None:
        """Drop a PostgreSQL database as soon as its scenario is over (they can be large)."""
        name = make_url(url).database
        if url.startswith("postgresql") and name in self._created:
            await self._drop(name)

    async def aclose(self) -> None:
        """Drop everything still around, the template last; keep going past errors."""
        errors: list[str] = []
        for name in list(reversed(self._created)):
            try:
                await self._drop(name)
            except Exception as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            raise RuntimeError("could not drop PostgreSQL databases: " + "; ".join(errors))


@asynccontextmanager
async def database(dbs: Databases, backend: str, label: str) -> AsyncIterator[str]:
    url = await dbs.new(backend, label)
    try:
        yield url
    finally:
        await dbs.release(url)


# -- Corral itself ------------------------------------------------------------------------


def corral_settings(database_url: str, home: Path) -> Settings:
    """Settings for a throwaway Corral: its own master key, a migrated database."""
    return Settings(
        database_url=database_url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        key_file=home / "master.key",
        log_level="warning",
    )


async def build_services(database_url: str, workdir: Path) -> Services:
    home = workdir / f"corral-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    return await build(corral_settings(database_url, home))


@dataclass
class CorralServer:
    url: str
    admin_key: str
    services: Services

    def client(self, key: str, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30.0, **kwargs)

    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_key)


@asynccontextmanager
async def corral_server(database_url: str, workdir: Path) -> AsyncIterator[CorralServer]:
    """The real API app under uvicorn on a loopback port, as a task on this event loop."""
    services = await build_services(database_url, workdir)
    try:
        if services.bootstrap is None or services.bootstrap.key is None:
            raise RuntimeError("a fresh database should have bootstrapped an admin key")
        url, stop = await serve_in_loop(create_app(services=services))
        try:
            yield CorralServer(url, services.bootstrap.key.plaintext, services)
        finally:
            await stop()
    finally:
        await services.aclose()


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
                tail = await asyncio.to_thread(log_path.read_text)
                raise RuntimeError(f"simulated OpenCode exited: {tail[-2000:]}")
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


async def postgres_info() -> dict[str, str]:
    conn = await asyncpg.connect(asyncpg_dsn(postgres_admin_url()), timeout=5)
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
