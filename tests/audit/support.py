"""Helpers for the audit tests: a small fleet, reading the trail, running ``corral audit``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.corral import CorralServer, ok

CORRAL = str(Path(sys.executable).with_name("corral"))


async def world(corral: CorralServer, sim_url: str) -> dict[str, Any]:
    """A team with a developer and a team admin, an OpenCode runtime, and an agent."""
    async with corral.admin() as admin:
        team = await ok(await admin.post("/v1/teams", json={"name": "platform"}), 201)
        keys, users, key_ids = {}, {}, {}
        for role in ("developer", "team_admin"):
            body = {"name": role, "email": f"{role}@x.io", "team_id": team["id"], "role": role}
            user = await ok(await admin.post("/v1/users", json=body), 201)
            key = await ok(
                await admin.post("/v1/keys", json={"name": role, "user_id": user["id"]}), 201
            )
            keys[role], users[role], key_ids[role] = key["key"], user["id"], key["id"]
        runtime = await ok(
            await admin.post(
                "/v1/runtimes", json={"name": "oc", "kind": "opencode", "base_url": sim_url}
            ),
            201,
        )
        creds = {"credentials": {"username": "opencode", "password": "s3cret-pw"}}
        await ok(await admin.put(f"/v1/runtimes/{runtime['id']}/credentials", json=creds))
        me = await ok(await admin.get("/v1/me"))
    async with corral.client(keys["developer"]) as dev:
        body = {"name": "helper", "runtime_id": runtime["id"], "model": "mock/mock-model"}
        agent = await ok(await dev.post("/v1/agents", json=body), 201)
    return {"team": team, "keys": keys, "users": users, "key_ids": key_ids, "runtime": runtime,
            "agent": agent, "admin": me}  # fmt: skip


async def records(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every audit record the client may see (newest first), following the cursor."""
    found: list[dict[str, Any]] = []
    query = {"limit": 200, **params}
    while True:
        page = await ok(await client.get("/v1/audit", params=query))
        found += page["data"]
        if not page["next_cursor"]:
            return found
        query["cursor"] = page["next_cursor"]


async def wait_for(
    client: httpx.AsyncClient, timeout: float = 10.0, **params: Any
) -> list[dict[str, Any]]:
    """Records matching ``params``, waiting for batched (decision) records to land."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await records(client, **params)
        if found or asyncio.get_running_loop().time() > deadline:
            assert found, f"no audit record matching {params}"
            return found
        await asyncio.sleep(0.05)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(*args: str, url: str = "", key: str = "", database_url: str = "") -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(CORRAL_URL=url, CORRAL_API_KEY=key, PYTHONIOENCODING="utf-8")
    if database_url:
        env["CORRAL_DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        CORRAL, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())
