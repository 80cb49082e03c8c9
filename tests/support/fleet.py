"""Build an org's fleet through the public API: teams, users with keys, a runtime, agents."""

from __future__ import annotations

from typing import Any

from tests.support.corral import CorralServer, ok


async def make_user(
    corral: CorralServer, team_id: str | None, role: str, email: str
) -> dict[str, Any]:
    """A user and a key of theirs; returns {"user", "key"} (key is the plaintext)."""
    async with corral.admin() as admin:
        user = await ok(
            await admin.post(
                "/v1/users",
                json={
                    "name": email.split("@")[0],
                    "email": email,
                    "team_id": team_id,
                    "role": role,
                },
            ),
            201,
        )
        key = await ok(await admin.post("/v1/keys", json={"name": "k", "user_id": user["id"]}), 201)
    return {"user": user, "key": key["key"], "key_id": key["id"]}


async def make_team(corral: CorralServer, name: str) -> dict[str, Any]:
    async with corral.admin() as admin:
        return await ok(await admin.post("/v1/teams", json={"name": name}), 201)  # type: ignore[no-any-return]


async def make_runtime(corral: CorralServer, base_url: str, name: str = "oc") -> dict[str, Any]:
    async with corral.admin() as admin:
        body = {"name": name, "kind": "opencode", "base_url": base_url}
        return await ok(await admin.post("/v1/runtimes", json=body), 201)  # type: ignore[no-any-return]


async def make_agent(
    corral: CorralServer, key: str, runtime_id: str, name: str = "helper"
) -> dict[str, Any]:
    async with corral.client(key) as client:
        body = {"name": name, "runtime_id": runtime_id, "model": "mock/mock-model"}
        return await ok(await client.post("/v1/agents", json=body), 201)  # type: ignore[no-any-return]


async def developer_agent(
    corral: CorralServer, runtime_url: str, email: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A developer (in a new team) and an agent of theirs on a new runtime at ``runtime_url``."""
    team = await make_team(corral, "t")
    dev = await make_user(corral, team["id"], "developer", email)
    runtime = await make_runtime(corral, runtime_url)
    return dev, await make_agent(corral, dev["key"], runtime["id"])


async def make_session(corral: CorralServer, key: str, agent_id: str) -> dict[str, Any]:
    async with corral.client(key) as client:
        made = await client.post("/v1/sessions", json={"agent_id": agent_id})
        return await ok(made, 201)  # type: ignore[no-any-return]
