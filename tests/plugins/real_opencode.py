"""Pytest plugin: a real ``opencode serve`` (1.18.33) wired to Corral's mock LLM.

The real server is the oracle the simulated OpenCode and the OpenCode adapter are checked
against. It is installed from npm into ``~/.cache/corral/peers/opencode-VERSION/`` once and
reused; when npm or the install is unavailable the fixtures *skip*, so a cold cache costs
time, never a red test run.

Fixtures (all session-scoped):

* ``mock_llm_app`` / ``mock_llm_url``: :mod:`corral.sim.mock_llm` on a loopback port;
* ``real_opencode_url``: ``opencode serve`` with isolated ``HOME``/``XDG_*`` dirs, a provider
  ``mock`` pointed at the mock LLM, ``permission.bash = "ask"``; the process group is always
  terminated at the end.

The helpers (:func:`ensure_opencode`, :class:`OpenCodeServer`, :class:`EventCollector`) are
plain functions/classes so ``tests/fixtures/opencode/record.py`` can reuse them outside
pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.sim._server import BackgroundServer
from corral.sim.mock_llm import create_app
from corral.sim.processes import free_port
from tests.support.peers import PeerProcess

OPENCODE_VERSION = "1.18.33"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
HEALTH_TIMEOUT_S = 60.0
NPM_TIMEOUT_S = 900.0

# Keep the real server offline and quiet (see research/real-peers.md).
OPENCODE_ENV = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
}

# ---------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------


def _platform_packages() -> list[str]:
    """npm packages that carry the native binary for this machine, best first."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    base = f"opencode-{system}-{arch}"
    return [base, f"{base}-baseline"]


def _find_binary(root: Path, version: str) -> Path | None:
    """A working binary of ``version`` under ``root/node_modules``, if any."""
    for package in _platform_packages():
        candidate = root / "node_modules" / package / "bin" / "opencode"
        if not candidate.is_file():
            continue
        try:
            out = subprocess.run(
                [str(candidate), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


_ensured: dict[str, Path | None] = {}


def ensure_opencode(version: str = OPENCODE_VERSION) -> Path | None:
    """Install ``opencode-ai@version`` once into the peers cache; return the binary or None.

    npm 11 skips the package's postinstall (which only links the platform binary into
    ``opencode-ai/bin``), so the binary of the optional platform package is used directly.
    Returns None, after printing why, when npm is missing or the install fails.
    """
    if version in _ensured:
        return _ensured[version]
    root = PEERS_DIR / f"opencode-{version}"
    binary = _find_binary(root, version)
    if binary is None:
        binary = _npm_install(root, version)
    _ensured[version] = binary
    return binary


def _npm_install(root: Path, version: str) -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        print(f"real opencode unavailable: npm not found (wanted opencode-ai@{version})")
        return None
    # Install next to the final place and rename, so an interrupted install never
    # leaves a half-populated cache that looks usable.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        (staging / "package.json").write_text(json.dumps({"name": root.name, "private": True}))
        cmd = [npm, "install", f"opencode-ai@{version}", "--no-audit", "--no-fund"]
        print(f"installing opencode-ai@{version} into {root} (one-off, ~15 s)")
        try:
            done = subprocess.run(
                cmd, cwd=staging, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
            )
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"real opencode unavailable: npm install failed: {exc}")
            return None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            print(f"real opencode unavailable: npm install exited {done.returncode}: {tail}")
            return None
        if _find_binary(staging, version) is None:
            print(f"real opencode unavailable: no runnable binary for {_platform_packages()}")
            return None
        if root.exists():  # a concurrent run won the race, or a broken leftover
            if _find_binary(root, version) is None:
                shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
        return _find_binary(root, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------
# Running the server
# ---------------------------------------------------------------------------


def opencode_config(llm_base_url: str) -> dict[str, Any]:
    """The ``opencode.json`` content: one provider ``mock`` pointed at the mock LLM."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "mock": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Mock LLM",
                "options": {"baseURL": llm_base_url.rstrip("/") + "/v1", "apiKey": "mock-key"},
                "models": {
                    "mock-model": {
                        "name": "Mock Model",
                        "tool_call": True,
                        "limit": {"context": 128_000, "output": 8_192},
                        "cost": {"input": 1.0, "output": 2.0},
                    }
                },
            }
        },
        "model": "mock/mock-model",
        "small_model": "mock/mock-model",
        "enabled_providers": ["mock"],
        "autoupdate": False,
        "share": "disabled",
        "permission": {"bash": "ask"},
    }


def wait_healthy(url: str, timeout: float = HEALTH_TIMEOUT_S, proc: Any = None) -> dict[str, Any]:
    """Poll ``GET /global/health`` with short client timeouts (a first call once hung)."""
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"opencode serve exited with {proc.returncode}")
        try:
            resp = httpx.get(url + "/global/health", timeout=httpx.Timeout(3.0, connect=1.0))
            if resp.status_code == 200:
                body: dict[str, Any] = resp.json()
                return body
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"opencode serve not healthy after {timeout:.0f} s: {last}")


class OpenCodeServer(PeerProcess):
    """``opencode serve`` in its own process group, with private HOME/XDG dirs."""

    def __init__(self, binary: Path, llm_base_url: str, root: Path) -> None:
        self.binary = binary
        self.llm_base_url = llm_base_url
        self.root = root
        self.workdir = root / "work"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "opencode.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _prepare(self) -> dict[str, str]:
        home = self.root / "home"
        for sub in ("home", "xdg/config", "xdg/data", "xdg/state", "xdg/cache", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "hello.txt").write_text("hello from the corral fixture\n")
        (self.workdir / "notes.txt").write_text("two\nlines\n")
        (self.workdir / "README.md").write_text("# scratch project for opencode tests\n")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENCODE_", "XDG_")) and not k.endswith("_API_KEY")
        }
        env.update(OPENCODE_ENV)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(self.root / "xdg/config"),
            XDG_DATA_HOME=str(self.root / "xdg/data"),
            XDG_STATE_HOME=str(self.root / "xdg/state"),
            XDG_CACHE_HOME=str(self.root / "xdg/cache"),
            OPENCODE_CONFIG_CONTENT=json.dumps(opencode_config(self.llm_base_url)),
        )
        return env

    def start(self) -> str:
        env = self._prepare()
        log = self.log_path.open("wb")
        cmd = [str(self.binary), "serve", "--port", str(self.port), "--hostname", "127.0.0.1"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches children
        )
        log.close()
        try:
            wait_healthy(self.url, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self.url

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# Reading GET /event
# ---------------------------------------------------------------------------


def session_of(event: dict[str, Any]) -> str | None:
    """The session an event belongs to, wherever this event type keeps it."""
    props = event.get("properties") or {}
    for holder in (props, props.get("info") or {}, props.get("part") or {}):
        sid = holder.get("sessionID") if isinstance(holder, dict) else None
        if isinstance(sid, str):
            return sid
    info = props.get("info")
    if event.get("type", "").startswith("session.") and isinstance(info, dict):
        sid = info.get("id")
        if isinstance(sid, str):
            return sid
    return None


class EventCollector:
    """Reads ``GET /event`` in a thread and queues every parsed ``data:`` frame."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._response: httpx.Response | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="opencode-events", daemon=True)

    def __enter__(self) -> EventCollector:
        self._thread.start()
        if not self._connected.wait(15):
            raise TimeoutError("no server.connected frame from GET /event")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
        # A blocked read only wakes on the next frame (heartbeats come every 10 s); the
        # thread is a daemon, so do not wait for it long.
        self._thread.join(0.5)

    def _run(self) -> None:
        # No read timeout: the stream is legitimately quiet between heartbeats (10 s).
        timeout = httpx.Timeout(5.0, read=None)
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self.base_url + "/event") as resp,
            ):
                self._response = resp
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    self._handle(line)
        except (httpx.HTTPError, RuntimeError) as exc:
            if not self._stop.is_set():
                self.error = exc

    def _handle(self, line: str) -> None:
        if not line.startswith("data:"):
            return
        event = json.loads(line[5:].strip())
        if event.get("type") == "server.connected":
            self._connected.set()
        self.events.append(event)
        self._queue.put(event)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Block until an event (arriving from now on) matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("expected event did not arrive")
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(event):
                return event

    def for_session(self, session_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if session_of(e) == session_id]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mock_llm_app() -> Any:
    return create_app()


@pytest.fixture(scope="session")
def mock_llm_url(mock_llm_app: Any) -> Iterator[str]:
    with BackgroundServer(mock_llm_app) as url:
        yield url


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    binary = ensure_opencode()
    if binary is None:
        pytest.skip(f"real opencode {OPENCODE_VERSION} unavailable (see captured output)")
    return binary


@pytest.fixture(scope="session")
def real_opencode_url(
    opencode_binary: Path, mock_llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = OpenCodeServer(opencode_binary, mock_llm_url, tmp_path_factory.mktemp("opencode"))
    try:
        url = server.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"opencode serve did not start: {exc}\n{server.log_tail()}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def real_opencode_runtime(real_opencode_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(kind="opencode", base_url=real_opencode_url)


@pytest.fixture(scope="session")
def opencode_sim_runtime(opencode_sim_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(kind="opencode", base_url=opencode_sim_url)
