"""Pytest plugin: a real ``langgraph dev`` (in-memory Agent Server) serving a Deep Agents graph
wired to Corral's mock LLM.

The server is installed from PyPI (pinned versions below) into its own venv under
``~/.cache/corral/peers/langgraph-CLIVERSION/`` once and reused; when pip or the install is
unavailable the fixtures *skip*, so a cold cache costs time, never a red run. The graph and
``langgraph.json`` live in ``tests/fixtures/langgraph/`` and are copied into a temp dir.

Fixtures (session-scoped): ``langgraph_python`` (the venv's interpreter), ``real_langgraph_url``,
``langgraph_real_runtime`` (a :class:`profiles.Runtime` for the conformance suite). Helpers are
plain so ``tests/fixtures/langgraph/record.py`` can reuse them outside pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.sim.processes import free_port
from tests.conformance.profiles import Runtime
from tests.support.peers import PeerProcess

CLI_VERSION = "0.4.40"
PINS = {
    "langgraph-cli": CLI_VERSION,
    "langgraph-api": "0.16.7",
    "langgraph": "1.2.24",
    "deepagents": "0.7.32",
    "langgraph-sdk": "0.4.14",
}
EXTRA = ["langgraph-cli[inmem]", "langchain-openai"]
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "langgraph"
PIP_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 90.0

_CHECK = (
    "import importlib.metadata as m, json, sys;"
    "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
)


def _installed(root: Path) -> bool:
    python = root / "bin" / "python"
    if not python.exists():
        return False
    try:
        out = subprocess.run(
            [str(python), "-c", _CHECK, *PINS],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and all(f'"{n}": "{v}"' in out.stdout for n, v in PINS.items())


_ensured: dict[str, Path | None] = {}


def ensure_langgraph() -> Path | None:
    """The venv's python with the pinned server installed (installing it once), or None."""
    if CLI_VERSION in _ensured:
        return _ensured[CLI_VERSION]
    root = PEERS_DIR / f"langgraph-{CLI_VERSION}"
    if not _installed(root):
        _install(root)
    python = root / "bin" / "python"
    _ensured[CLI_VERSION] = python if _installed(root) else None
    return _ensured[CLI_VERSION]


def _install(root: Path) -> None:
    # Build next to the final place and rename (only ``python -m`` is used, so the move is
    # safe), so an interrupted install never leaves a cache that looks usable.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True, timeout=120)
        pins = [f"{n}=={v}" for n, v in PINS.items()]
        cmd = [str(staging / "bin" / "python"), "-m", "pip", "install", "-q", *pins, *EXTRA]
        print(f"installing langgraph-cli {CLI_VERSION} into {root} (one-off, ~1 min)")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            print(f"real langgraph unavailable: pip exited {done.returncode}: {tail}")
            return
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"real langgraph unavailable: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class LangGraphServer(PeerProcess):
    """``langgraph dev`` in its own process group, serving the fixture graph from a temp dir."""

    def __init__(self, python: Path, llm_url: str, root: Path) -> None:
        self.python, self.llm_url, self.root = python, llm_url, root
        self.log_path = root / "langgraph.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        for name in ("langgraph.json", "agent_graph.py"):
            shutil.copy(FIXTURES / name, self.root / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH", "LANGCHAIN"))}
        env.update(
            LANGSMITH_TRACING="false",
            LANGGRAPH_CLI_NO_ANALYTICS="1",
            CORRAL_MOCK_LLM_URL=self.llm_url,
        )
        port = free_port()
        cmd = [str(self.python), "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--n-jobs-per-worker", "4"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.url = self._wait_ready(port)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_ready(self, port: int) -> str:
        # If the port is taken the server silently picks another: trust its log, not our port.
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited with {self.proc.returncode}")
            found = re.search(r"API: \S*?(http://127\.0\.0\.1:\d+)", self.log_tail(20_000))
            url = found.group(1) if found else url
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/ok", timeout=2.0).status_code == 200:
                    return url
            time.sleep(0.3)
        raise TimeoutError(f"langgraph dev not ready after {READY_TIMEOUT_S:.0f} s")


@pytest.fixture(scope="session")
def langgraph_python() -> Path:
    python = ensure_langgraph()
    if python is None:
        pytest.skip(f"real langgraph-cli {CLI_VERSION} unavailable (see captured output)")
    return python


@pytest.fixture(scope="session")
def real_langgraph_url(
    langgraph_python: Path, mock_llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = LangGraphServer(langgraph_python, mock_llm_url, tmp_path_factory.mktemp("langgraph"))
    try:
        url = server.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        pytest.fail(f"langgraph dev did not start: {exc}\n{server.log_tail()}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def langgraph_real_runtime(real_langgraph_url: str) -> Runtime:
    return Runtime(kind="langgraph", base_url=real_langgraph_url, config={"assistant_id": "agent"})
