"""Pytest plugin: the simulated Claude Managed Agents API, and the SDK versions that prove it.

The cloud service cannot run here; :mod:`corral.sim.claude_agents` stands in for it. The
official ``anthropic`` SDK checks it: 2.14.0 from Corral's own venv, and 1.17 (older auth
headers: ``X-Api-Key`` + ``anthropic-version: 2023-06-01``) installed once into
``~/.cache/corral/peers/anthropic-1.17/``; when pip cannot install it, the tests that need it
skip with the reason.

Fixtures (session-scoped):

* ``claude_agents_sim``: ``(url, SimState)`` of a simulator whose model is the mock LLM and
  whose only accepted key is :data:`API_KEY`;
* ``claude_agents_sim_url`` / ``claude_agents_sim_runtime`` (a ``profiles.Runtime``);
* ``anthropic_117_python``: the cache venv's python.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.claude_agents import SimConfig, SimState, create_app

API_KEY = "sk-ant-sim-corral"
SDK_117 = "1.17"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
#: The price both the simulator (list cost) and Corral's runtime config use.
PRICE = {"input": 3.0, "output": 15.0}


def sim_config(llm_url: str) -> SimConfig:
    return SimConfig(
        llm_url=llm_url,
        api_keys=frozenset({API_KEY}),
        retry_delay=0.05,
        ping_interval=1.0,
        files={"hello.txt": "hello from the corral fixture\n"},
    )


@pytest.fixture(scope="session")
def claude_agents_sim(mock_llm_url: str) -> Iterator[tuple[str, SimState]]:
    app = create_app(sim_config(mock_llm_url))
    with BackgroundServer(app) as url:
        yield url, app.state.sim


@pytest.fixture(scope="session")
def claude_agents_sim_url(claude_agents_sim: tuple[str, SimState]) -> str:
    return claude_agents_sim[0]


@pytest.fixture(scope="session")
def claude_agents_sim_runtime(claude_agents_sim_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(
        kind="claude_agents",
        base_url=claude_agents_sim_url,
        config={"price": PRICE, "environment_name": "corral-conformance"},
        credentials={"api_key": API_KEY},
    )


def _python_of(root: Path) -> Path:
    return root / "bin" / "python"


def _version_of(python: Path) -> str | None:
    if not python.is_file():
        return None
    try:
        done = subprocess.run(
            [str(python), "-c", "import anthropic; print(anthropic.__version__)"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_anthropic(series: str = SDK_117) -> tuple[Path | None, str]:
    """A python with ``anthropic=={series}.*``, installed once; (None, why) when impossible."""
    root = PEERS_DIR / f"anthropic-{series}"
    version = _version_of(_python_of(root))
    if version and version.startswith(series + "."):
        return _python_of(root), version
    root.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the final place and rename, so a cut install never looks usable.
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        steps = [
            [sys.executable, "-m", "venv", str(staging)],
            [str(_python_of(staging)), "-m", "pip", "install", "-q", f"anthropic=={series}.*"],
        ]
        for cmd in steps:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.SubprocessError) as exc:
                return None, f"anthropic {series} unavailable: {exc}"
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-500:]
                return (
                    None,
                    f"anthropic {series} unavailable: {cmd[2]} exited {done.returncode}: {tail}",
                )
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
        # A venv's scripts name its own path, so it is only used from where it now lives.
        version = _version_of(_python_of(root))
        if not version:
            return None, f"anthropic {series} unavailable: the cached venv does not import it"
        return _python_of(root), version
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="session")
def anthropic_117_python() -> Path:
    python, why = ensure_anthropic()
    if python is None:
        pytest.skip(why)
    return python
