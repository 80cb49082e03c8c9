"""Pytest plugin: a real Hermes Agent API server (``hermes-agent`` 0.19.0) on the mock LLM.

``hermes-agent`` and ``aiohttp`` (the API server needs it; it is not a base dependency) are
installed once into their own venv under ``~/.cache/corral/peers/hermes-VERSION/``; when that
cannot be done the fixtures *skip* with the reason, so a cold cache costs time, never a red run.

Fixtures (session-scoped): ``hermes_venv`` (the venv), ``real_hermes_url`` (``hermes gateway run``
with a private ``HERMES_HOME`` whose model is the mock LLM; its process group is always ended),
``real_hermes_runtime`` (a conformance :class:`Runtime`), and the simulator
:mod:`corral.sim.hermes` as ``hermes_sim_url`` / ``hermes_sim_runtime``. :class:`HermesServer` is a plain class
so ``tests/fixtures/hermes/record.py`` can start one outside pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.sim.processes import free_port
from tests.support.peers import PeerProcess

HERMES_VERSION = "0.19.0"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
#: Hermes refuses keys shorter than 16 characters or that look like placeholders.
API_KEY = "corral-hermes-test-3f9a1c7e5b2d"
PIP_TIMEOUT_S = 900.0
HEALTH_TIMEOUT_S = 60.0

_CHECK = "import importlib.metadata as m, aiohttp; print(m.version('hermes-agent'))"


def _usable(root: Path, version: str) -> bool:
    python = root / "bin" / "python"
    if not (python.is_file() and (root / "bin" / "hermes").is_file()):
        return False
    try:
        out = subprocess.run(
            [str(python), "-c", _CHECK], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


_ensured: dict[str, Path | None] = {}


def ensure_hermes(version: str = HERMES_VERSION) -> Path | None:
    """The venv holding ``hermes-agent==version`` + aiohttp, installed on first use, or None."""
    if version in _ensured:
        return _ensured[version]
    root = PEERS_DIR / f"hermes-{version}"
    found = root if _usable(root, version) else _install(root, version)
    _ensured[version] = found
    return found


def _install(root: Path, version: str) -> Path | None:
    # A venv's scripts hard-code its path, so it is built in place; ``_usable`` (hermes-agent
    # of this version importable with aiohttp) is what marks it complete, and a leftover of an
    # interrupted install is wiped first.
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing hermes-agent=={version} into {root} (one-off, ~1-2 min)")
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q"]
    for cmd in (
        [sys.executable, "-m", "venv", str(root)],
        [*pip, f"hermes-agent=={version}", "aiohttp"],
    ):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"real hermes unavailable: {cmd[:3]} failed: {exc}")
            return None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            print(f"real hermes unavailable: {cmd[:3]} exited {done.returncode}: {tail}")
            shutil.rmtree(root, ignore_errors=True)
            return None
    return root if _usable(root, version) else None


def hermes_config(llm_base_url: str) -> str:
    """``config.yaml``: the mock LLM as a custom OpenAI-compatible provider."""
    return (
        "model:\n"
        "  default: mock-model\n"
        "  provider: custom\n"
        f"  base_url: {llm_base_url.rstrip('/')}/v1\n"
        "  api_key: mock-key\n"
    )


class HermesServer(PeerProcess):
    """``hermes gateway run`` with only the API server, in its own process group."""

    def __init__(self, venv: Path, llm_base_url: str, root: Path) -> None:
        self.venv, self.llm_base_url, self.root = venv, llm_base_url, root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "hermes.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        home = self.root / "hermes-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(hermes_config(self.llm_base_url))
        (self.root / "home").mkdir(exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HERMES_", "API_SERVER_", "OPENAI_", "OPENROUTER_"))
            and not k.endswith("_API_KEY")
        }
        env.update(
            HOME=str(self.root / "home"),
            HERMES_HOME=str(home),
            API_SERVER_ENABLED="true",
            API_SERVER_KEY=API_KEY,
            API_SERVER_HOST="127.0.0.1",
            API_SERVER_PORT=str(self.port),
        )
        return env

    def start(self) -> str:
        env = self._env()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "hermes"), "gateway", "run"],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches children
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        last: object = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"hermes gateway exited with {self.proc.returncode}")
            try:
                resp = httpx.get(self.url + "/health", timeout=httpx.Timeout(3.0, connect=1.0))
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.25)
        raise TimeoutError(f"hermes gateway not healthy after {HEALTH_TIMEOUT_S:.0f} s: {last}")


@pytest.fixture(scope="session")
def hermes_venv() -> Path:
    venv = ensure_hermes()
    if venv is None:
        pytest.skip(f"real hermes-agent {HERMES_VERSION} unavailable (see captured output)")
    return venv


@pytest.fixture(scope="session")
def real_hermes_url(
    hermes_venv: Path, mock_llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = HermesServer(hermes_venv, mock_llm_url, tmp_path_factory.mktemp("hermes"))
    try:
        url = server.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"hermes gateway did not start: {exc}\n{server.log_tail()}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def real_hermes_runtime(real_hermes_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(kind="hermes", base_url=real_hermes_url, credentials={"api_key": API_KEY})


@pytest.fixture(scope="session")
def hermes_sim_url(mock_llm_url: str) -> Iterator[str]:
    from corral.sim._server import BackgroundServer
    from corral.sim.hermes import SimConfig, create_app

    config = SimConfig(llm_url=mock_llm_url, api_key=API_KEY, keepalive=1.0)
    with BackgroundServer(create_app(config)) as url:
        yield url


@pytest.fixture(scope="session")
def hermes_sim_runtime(hermes_sim_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(kind="hermes", base_url=hermes_sim_url, credentials={"api_key": API_KEY})
