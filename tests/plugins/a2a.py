"""Pytest plugin: A2A agents for the a2a adapter's tests and the conformance suite.

* ``a2a_agent_url``: the test agent :mod:`corral.sim.a2a` (a real a2a-sdk 1.3.0 server, 1.0 and
  0.3-compat on one endpoint) on a loopback port, its model the mock LLM;
* ``a2a_v10_runtime`` / ``a2a_v03_runtime``: that agent registered with protocol 1.0 / 0.3;
* ``a2a_peer_v03_url`` / ``a2a_peer_v03_runtime``: an agent on the OLD a2a-sdk 0.3.26 (a
  0.3-only peer), installed once with pip into ``~/.cache/corral/peers/a2a-sdk-0.3.26/`` and run
  from ``tests/fixtures/a2a/peer_v03_server.py`` in its own process group. When the install is
  impossible (no network, pip failure) the fixtures skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.sim._server import BackgroundServer
from corral.sim.a2a import create_app
from corral.sim.processes import die_with_parent, free_port
from tests.conformance.profiles import Runtime
from tests.support.peers import PeerProcess

PEER_SDK_VERSION = "0.3.26"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
PEER_SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "a2a" / "peer_v03_server.py"
PIP_TIMEOUT_S = 900.0


@pytest.fixture(scope="session")
def a2a_agent_url(mock_llm_url: str) -> Iterator[str]:
    with BackgroundServer(create_app(mock_llm_url)) as url:
        yield url


@pytest.fixture(scope="session")
def a2a_v10_runtime(a2a_agent_url: str) -> Runtime:
    return Runtime(kind="a2a", base_url=a2a_agent_url, config={"protocol": "1.0"})


@pytest.fixture(scope="session")
def a2a_v03_runtime(a2a_agent_url: str) -> Runtime:
    return Runtime(kind="a2a", base_url=a2a_agent_url, config={"protocol": "0.3"})


def _peer_python(root: Path) -> Path | None:
    python = root / "bin" / "python"
    if not python.is_file():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import a2a.server.apps, uvicorn, importlib.metadata as m;"
         "print(m.version('a2a-sdk'))"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return python if probe.stdout.strip() == PEER_SDK_VERSION else None


_ensured: dict[str, Path | None] = {}


def ensure_peer_sdk() -> Path | None:
    """A Python with a2a-sdk 0.3.26 (+ uvicorn), installed once into the peers cache; None
    (after printing why) when that cannot be done here."""
    if "peer" in _ensured:
        return _ensured["peer"]
    root = PEERS_DIR / f"a2a-sdk-{PEER_SDK_VERSION}"
    python = _peer_python(root)
    if python is None:
        python = _install(root)
    _ensured["peer"] = python
    return python


def _install(root: Path) -> Path | None:
    root.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the final place and rename, so a broken install never looks usable.
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        print(f"installing a2a-sdk=={PEER_SDK_VERSION} into {root} (one-off)")
        steps = [
            [sys.executable, "-m", "venv", str(staging)],
            [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet",
             f"a2a-sdk[http-server]=={PEER_SDK_VERSION}", "uvicorn"],
        ]  # fmt: skip
        for cmd in steps:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError) as exc:
                print(f"a2a 0.3 peer unavailable: {cmd[2]} failed: {exc}")
                return None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-800:]
                print(f"a2a 0.3 peer unavailable: {' '.join(cmd[1:4])} exited "
                      f"{done.returncode}: {tail}")  # fmt: skip
                return None
        if root.exists() and _peer_python(root) is None:
            shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
        # A venv's scripts hard-code its path: the interpreter symlink survives the rename.
        return _peer_python(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class PeerServer(PeerProcess):
    """``peer_v03_server.py`` under the peer venv, in its own process group."""

    tail_chars = 2000

    def __init__(self, python: Path, llm_url: str, log_path: Path) -> None:
        self.python, self.llm_url, self.log_path = python, llm_url, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> str:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.python), str(PEER_SCRIPT), str(self.port), self.llm_url],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"peer exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                card = self.url + "/.well-known/agent-card.json"
                if httpx.get(card, timeout=2.0).status_code == 200:
                    return self.url
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"a2a 0.3 peer did not start: {self.log_tail()}")


@pytest.fixture(scope="session")
def a2a_peer_v03_url(mock_llm_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = ensure_peer_sdk()
    if python is None:
        pytest.skip(f"a2a-sdk {PEER_SDK_VERSION} could not be installed (see captured output)")
    server = PeerServer(python, mock_llm_url, tmp_path_factory.mktemp("a2a-peer") / "peer.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def a2a_peer_v03_runtime(a2a_peer_v03_url: str) -> Runtime:
    return Runtime(kind="a2a", base_url=a2a_peer_v03_url)
