"""SIGTERM on a real `corral serve`: streams end with a reconnect hint, the process exits in time."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from corral.sim.processes import free_port

BIN = Path(sys.executable).parent / "corral"


def test_sigterm_drains_streams_and_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CORRAL_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "CORRAL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CORRAL_KEY_FILE": str(tmp_path / "master.key"),
        "CORRAL_SHUTDOWN_GRACE_SECONDS": "5",
        "CORRAL_SSE_HEARTBEAT_SECONDS": "30",
    }
    proc = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        key = ""
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline and not key:
            line = proc.stdout.readline()
            if "ck_" in line:
                key = next(word for word in line.split() if word.startswith("ck_"))
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {key}"}
        # A session needs an agent; a stream on a missing one is a 404, so set one up.
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            team = client.post("/v1/teams", json={"name": "t"}).json()
            runtime = client.post(
                "/v1/runtimes",
                json={"name": "r", "kind": "opencode", "base_url": "http://127.0.0.1:9"},
            ).json()
            agent = client.post(
                "/v1/agents", json={"name": "a", "runtime_id": runtime["id"], "team_id": team["id"]}
            ).json()
            failed = client.post("/v1/sessions", json={"agent_id": agent["id"]})
            sid = failed.json()["session_id"]
            with client.stream("GET", f"/v1/sessions/{sid}/stream", timeout=20) as stream:
                lines = stream.iter_lines()
                seen: list[str] = []
                for line in lines:
                    seen.append(line)
                    if line.startswith("event: session.state"):
                        break
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                seen += list(lines)
        assert "event: reconnect" in seen, seen
        # uvicorn re-raises the signal once it has shut down cleanly, as a well-behaved server does.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
