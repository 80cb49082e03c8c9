"""N `corral serve` replicas on one PostgreSQL database, with the mock LLM and a simulated
OpenCode behind them: the shared setup of the scale-out tests."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path

from tests.crash.harness import CORRAL, PYTHON, Proc, Processes, free_port, wait_http


class Replica:
    def __init__(self, name: str, procs: Processes, env: dict[str, str], workdir: Path) -> None:
        self.name, self.procs, self.env, self.workdir = name, procs, env, workdir
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**self.env, "CORRAL_INSTANCE_ID": self.name}
        argv = [CORRAL, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = self.procs.spawn(self.name, argv, env=env, cwd=self.workdir)
        await wait_http(f"{self.url}/readyz", self.proc)


@dataclass
class Cluster:
    replicas: list[Replica]
    sim_url: str
    admin_key: str

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.proc is not None and r.proc.alive()]


async def start_cluster(
    procs: Processes, workdir: Path, database_url: str, *, replicas: int = 3, **settings: str
) -> Cluster:
    """Start the runtime and the replicas; ``settings`` are CORRAL_* values (without prefix)."""
    llm_port, sim_port = free_port(), free_port()
    llm = procs.spawn("mock-llm", [PYTHON, "-m", "corral.sim.mock_llm", "--port", str(llm_port),
                                   "--log-level", "warning"], cwd=workdir)  # fmt: skip
    await wait_http(f"http://127.0.0.1:{llm_port}/v1/models", llm)
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim = procs.spawn("opencode", [PYTHON, "-m", "corral.sim.opencode", "--port", str(sim_port),
                                   "--llm-url", f"http://127.0.0.1:{llm_port}", "--heartbeat", "1",
                                   "--directory", str(workdir)], cwd=workdir)  # fmt: skip
    await wait_http(f"{sim_url}/global/health", sim)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(
        PYTHONUNBUFFERED="1",
        CORRAL_DATABASE_URL=database_url,
        CORRAL_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
        CORRAL_KEY_FILE=str(workdir / "master.key"),
        CORRAL_LOG_LEVEL="warning",
        **{f"CORRAL_{name.upper()}": value for name, value in settings.items()},
    )
    pool = [Replica(f"replica-{i}", procs, env, workdir) for i in range(replicas)]
    await pool[0].start()  # the first one bootstraps the org and prints the admin key
    await asyncio.gather(*(r.start() for r in pool[1:]))
    assert pool[0].proc is not None
    admin = next(w for w in pool[0].proc.log.read_text().split() if w.startswith("ck_"))
    return Cluster(pool, sim_url, admin)
