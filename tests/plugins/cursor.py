"""Pytest plugin: the simulated Cursor Cloud Agents API and the official ``@cursor/sdk``.

Cursor's cloud agents cannot run here, so Corral is tested against :mod:`corral.sim.cursor`;
the simulator is proved faithful by the official ``@cursor/sdk`` (npm), installed once into
``~/.cache/corral/peers/cursor-sdk-VERSION/`` and run unmodified by node with
``CURSOR_BACKEND_URL`` pointing at the simulator. When npm or node is missing, or the install
fails, the SDK fixture *skips* with the reason.

Fixtures (session-scoped): ``cursor_sim_app``/``cursor_sim_url`` (the simulator wired to the
mock LLM), ``cursor_sim_runtime`` (a conformance ``Runtime``), ``cursor_sdk_dir``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.sim._server import BackgroundServer
from corral.sim.cursor import SimConfig, create_app

CURSOR_SDK_VERSION = "1.0.32"
CURSOR_API_KEY = "cursor-test-key"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
NPM_TIMEOUT_S = 600.0
MIN_NODE_MAJOR = 20  # the package asks for >= 22.13, but 1.0.32's cloud client runs on 20


def _sdk_entry(root: Path) -> Path:
    return root / "node_modules" / "@cursor" / "sdk" / "dist" / "esm" / "index.js"


def _installed(root: Path, version: str) -> bool:
    manifest = root / "node_modules" / "@cursor" / "sdk" / "package.json"
    try:
        return (
            json.loads(manifest.read_text()).get("version") == version
            and _sdk_entry(root).is_file()
        )
    except (OSError, ValueError):
        return False


def node_problem() -> str | None:
    node = shutil.which("node")
    if node is None:
        return "node not found"
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        major = int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"node --version failed: {exc}"
    return (
        None
        if major >= MIN_NODE_MAJOR
        else f"node {out.stdout.strip()} is older than {MIN_NODE_MAJOR}"
    )


def ensure_cursor_sdk(version: str = CURSOR_SDK_VERSION) -> tuple[Path | None, str]:
    """Install ``@cursor/sdk@version`` once into the peers cache: (dir or None, why not)."""
    root = PEERS_DIR / f"cursor-sdk-{version}"
    if _installed(root, version):
        return root, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm not found"
    root.parent.mkdir(parents=True, exist_ok=True)
    # Install beside the final place and rename, so a broken install never looks usable.
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    try:
        (staging / "package.json").write_text(json.dumps({"name": root.name, "private": True}))
        cmd = [
            npm,
            "install",
            f"@cursor/sdk@{version}",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ]
        try:
            done = subprocess.run(
                cmd, cwd=staging, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"npm install failed: {exc}"
        if done.returncode != 0 or not _installed(staging, version):
            return (
                None,
                f"npm install exited {done.returncode}: {(done.stderr or done.stdout)[-600:]}",
            )
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.rename(root)
        return (root, "") if _installed(root, version) else (None, "install vanished")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sim_config(llm_url: str, **overrides: Any) -> SimConfig:
    settings: dict[str, Any] = {
        "llm_url": llm_url,
        "api_keys": frozenset({CURSOR_API_KEY}),
        "heartbeat_interval": 2.0,
    }
    settings.update(overrides)
    return SimConfig(**settings)


@pytest.fixture(scope="session")
def cursor_sim_app(mock_llm_url: str) -> Any:
    return create_app(sim_config(mock_llm_url))


@pytest.fixture(scope="session")
def cursor_sim_url(cursor_sim_app: Any) -> Iterator[str]:
    with BackgroundServer(cursor_sim_app) as url:
        yield url


@pytest.fixture(scope="session")
def cursor_sim_runtime(cursor_sim_url: str) -> Any:
    from tests.conformance.profiles import Runtime

    return Runtime(kind="cursor", base_url=cursor_sim_url, credentials={"api_key": CURSOR_API_KEY})


@pytest.fixture(scope="session")
def cursor_sdk_dir() -> Path:
    problem = node_problem()
    if problem is not None:
        pytest.skip(f"@cursor/sdk {CURSOR_SDK_VERSION} cannot run: {problem}")
    root, why = ensure_cursor_sdk()
    if root is None:
        pytest.skip(f"@cursor/sdk {CURSOR_SDK_VERSION} unavailable: {why}")
    return root
