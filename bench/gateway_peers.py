"""The proxies the ``gateway`` scenario compares, each made ready to start as its own process.

* **LiteLLM** (the proxy, ``litellm[proxy]``), installed once into its own virtualenv in the
  peers cache, ``~/.cache/corral/peers/litellm-<version>/`` (``CORRAL_PEERS_DIR`` moves it),
  run with a ``model_list`` pointing at the mock upstream and a ``master_key``. It runs without a
  database: LiteLLM needs PostgreSQL for virtual keys and budgets, so it checks only the master
  key and enforces no budget. Its cost map is read locally (no network at startup).
* **Corral**: ``corral gateway`` on a SQLite database configured beforehand through the real
  API (``corral_server``): an OpenAI and an Anthropic upstream at the mock, the two models, a
  large monthly org budget and a model allowlist, so every call is one ``decide()`` plus a
  budget reservation. Its settings (database, master key, key file) go to the gateway as the
  ``CORRAL_*`` environment ``corral serve`` reads.
* **The bare forwarder**: :mod:`bench.gateway_forwarder`.

Every one is started pinned (``taskset -c CORE``) by :mod:`bench.gateway`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The newest release whose ``[proxy]`` extra resolves from PyPI today (1.108.1+ pin
# ``litellm-proxy-extras`` builds that were never published).
LITELLM_VERSION = "1.108.0"
PEERS_DIR = Path(os.environ.get("CORRAL_PEERS_DIR", Path.home() / ".cache" / "corral" / "peers"))
PIP_TIMEOUT_S = 1_200.0
DONE_MARKER = ".corral-complete"  # written last: a half-made venv is never taken for a good one
MASTER_KEY = "sk-bench-master-0123456789"
CHAT_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Launch:
    """How to start one proxy: argv (without the pinning), environment, and its caller key."""

    name: str
    argv: list[str]
    env: dict[str, str]
    key: str
    notes: list[str] = field(default_factory=list)
    database: Path | None = None  # Corral's SQLite file, checked after the run


# -- LiteLLM ---------------------------------------------------------------------------------


def _litellm_python(root: Path) -> Path | None:
    python = root / "bin" / "python"
    if not (root / DONE_MARKER).is_file() or not python.is_file():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return python if probe.stdout.strip() == LITELLM_VERSION else None


def _base_python() -> str:
    return shutil.which("python3.11") or str(getattr(sys, "_base_executable", sys.executable))


def ensure_litellm(log: Any = print) -> tuple[Path | None, str | None]:
    """(the venv's python, None), installing ``litellm[proxy]`` on first use; (None, why) if not.

    The venv is built in place (its scripts hard-code their path), and marked complete last.
    """
    root = PEERS_DIR / f"litellm-{LITELLM_VERSION}"
    python = _litellm_python(root)
    if python is not None:
        return python, None
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {root} (one-off, a few minutes)")
    steps = [
        [_base_python(), "-m", "venv", str(root)],
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", f"litellm[proxy]=={LITELLM_VERSION}"],
    ]  # fmt: skip
    for cmd in steps:
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            return None, f"{' '.join(cmd[1:3])} failed: {exc}"
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = "\n".join(ln for ln in lines if not ln.startswith("WARNING"))[-600:]
            return None, f"{' '.join(cmd[1:3])} exited {done.returncode}: {tail}"
    (root / DONE_MARKER).write_text(LITELLM_VERSION + "\n")
    python = _litellm_python(root)
    return (python, None) if python else (None, "litellm is not importable after install")


def litellm_config(upstream: str, anthropic: bool) -> str:
    """The proxy's YAML (JSON is YAML): the two models at the mock, the master key, no DB."""
    import json

    models: list[dict[str, Any]] = [
        {
            "model_name": CHAT_MODEL,
            "litellm_params": {
                "model": f"openai/{CHAT_MODEL}",
                "api_base": f"{upstream}/v1",
                "api_key": "sk-mock",
            },
        }
    ]
    if anthropic:
        models.append(
            {
                "model_name": ANTHROPIC_MODEL,
                "litellm_params": {
                    "model": f"anthropic/{ANTHROPIC_MODEL}",
                    "api_base": upstream,
                    "api_key": "sk-mock",
                },
            }
        )
    config = {
        "model_list": models,
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"master_key": MASTER_KEY},
    }
    return json.dumps(config, indent=2)


def litellm_launch(python: Path, upstream: str, workdir: Path, port: int) -> Launch:
    cfg = workdir / "litellm.yaml"
    cfg.write_text(litellm_config(upstream, anthropic=True))
    env = {
        **_clean_env(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map at startup
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "True",
        "NO_DOCS": "True",
    }
    argv = [str(python.parent / "litellm"), "--config", str(cfg), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1"]  # fmt: skip
    return Launch(
        "LiteLLM",
        argv,
        env,
        MASTER_KEY,
        notes=[
            f"LiteLLM {LITELLM_VERSION} proxy, 1 worker, master key only: no database, so no "
            "virtual keys and no budgets (those need PostgreSQL)"
        ],
    )


def governance_check(database: Path) -> dict[str, Any]:
    """What the governed calls left in Corral's database: calls recorded, budget spent."""
    import sqlite3

    out: dict[str, Any] = {}
    queries = {
        "calls_recorded": "SELECT COUNT(*) FROM gateway_calls",
        "budget_spent_usd": "SELECT SUM(spent) / 1e6 FROM ledger_windows",
        "budget_reserved_usd": "SELECT SUM(reserved) / 1e6 FROM ledger_windows",
    }
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as conn:
        for name, sql in queries.items():
            try:
                out[name] = conn.execute(sql).fetchone()[0]
            except sqlite3.Error as exc:
                out[name] = f"{exc}"
    return out


def _clean_env() -> dict[str, str]:
    """This environment minus what would leak into a peer (our venv, Corral's settings)."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "DATABASE_URL")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("CORRAL_")}


# -- the bare forwarder ----------------------------------------------------------------------


def forwarder_launch(upstream: str, port: int) -> Launch:
    argv = [sys.executable, "-m", "bench.gateway_forwarder", "--port", str(port),
            "--upstream", upstream]  # fmt: skip
    env = {**_clean_env(), "PYTHONPATH": str(ROOT)}
    return Launch(
        "bare forwarder",
        argv,
        env,
        "none",
        notes=["bare forwarder: uvicorn (httptools, uvloop), raw ASGI, aiohttp upstream; "
               "no auth, no policy"],
    )  # fmt: skip


# -- Corral ----------------------------------------------------------------------------------


async def _call(http: httpx.AsyncClient, method: str, path: str, body: Any, ok: int) -> Any:
    response = await http.request(method, path, json=body)
    if response.status_code != ok:
        raise RuntimeError(
            f"{method} {path}: expected {ok}, got {response.status_code}: {response.text[:300]}"
        )
    return response.json() if response.content else None


async def corral_launch(upstream: str, workdir: Path, port: int) -> Launch:
    """Configure a fresh SQLite Corral through its API, then describe ``corral gateway``."""
    from bench.harness import corral_server

    home = workdir / "corral"
    home.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{home / 'gw.db'}"
    async with corral_server(database_url, home) as server, server.admin() as http:
        settings = server.services.settings
        me = await _call(http, "GET", "/v1/me", None, 200)
        org = f"org:{me['org_id']}"
        upstreams: list[dict[str, Any]] = [
            {"name": "mock", "kind": "openai", "base_url": f"{upstream}/v1", "api_key": "sk-mock"},
            {"name": "mock-anthropic", "kind": "anthropic", "base_url": upstream,
             "api_key": "sk-mock"},
        ]  # fmt: skip
        for body in upstreams:
            await _call(http, "POST", "/v1/gateway/upstreams", body, 201)
        for name, up in ((CHAT_MODEL, "mock"), (ANTHROPIC_MODEL, "mock-anthropic")):
            route = {"name": name, "targets": [{"upstream": up, "model": name}]}
            await _call(http, "POST", "/v1/gateway/models", route, 201)
        await _call(
            http,
            "PUT",
            "/v1/budgets",
            {"scope": org, "limit_usd": 1_000_000, "period": "monthly", "soft_percent": 80},
            200,
        )
        policy = {"effect": "allow", "models": [CHAT_MODEL, ANTHROPIC_MODEL]}
        await _call(
            http, "POST", "/v1/policies", {"scope": org, "kind": "model", "body": policy}, 201
        )
        key = server.admin_key
        env = {
            **_clean_env(),
            "CORRAL_DATABASE_URL": settings.database_url,
            "CORRAL_MASTER_KEY": settings.master_key or "",
            "CORRAL_KEY_FILE": str(settings.key_file),
            "CORRAL_LOG_LEVEL": "warning",
        }
    corral = Path(sys.executable).parent / "corral"
    argv = [str(corral), "gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return Launch(
        "Corral",
        argv,
        env,
        key,
        notes=[
            "Corral: corral gateway, 1 worker, SQLite; governance on: model allowlist + "
            "monthly org budget (decide() + a budget reservation per call)"
        ],
        database=home / "gw.db",
    )
