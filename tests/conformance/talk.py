"""A developer talking to one agent through Corral's public API, for the conformance suite."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conformance.profiles import Profile, Runtime
from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_team, make_user
from tests.support.sse import Frame, events_of, read_stream, turn_done


class Talk:
    def __init__(self, corral: CorralServer, key: str, profile: Profile, agent_id: str) -> None:
        self.corral, self.key, self.profile, self.agent_id = corral, key, profile, agent_id

    @classmethod
    async def start(cls, corral: CorralServer, profile: Profile, runtime: Runtime) -> Talk:
        team = await make_team(corral, "conformance")
        dev = await make_user(corral, team["id"], "developer", "c@x.io")
        talk = cls(corral, dev["key"], profile, "")
        talk.agent_id = await talk.add_agent(runtime)
        return talk

    async def add_agent(self, runtime: Runtime, name: str = "helper") -> str:
        """Register ``runtime`` (credentials into the vault) and an agent on it."""
        async with self.corral.admin() as admin:
            body = {
                "name": f"{name}-{runtime.kind}",
                "kind": runtime.kind,
                "base_url": runtime.base_url,
                "config": runtime.config,
            }
            created = await ok(await admin.post("/v1/runtimes", json=body), 201)
            if runtime.credentials is not None:
                path = f"/v1/runtimes/{created['id']}/credentials"
                await ok(await admin.put(path, json={"credentials": runtime.credentials}))
        agent = {"name": name, "runtime_id": created["id"], "model": "mock/mock-model"}
        agent.update(self.profile.agent)
        async with self.corral.client(self.key) as client:
            return str((await ok(await client.post("/v1/agents", json=agent), 201))["id"])

    async def turn(self, prompt: str, *, until: Any = turn_done) -> tuple[str, list[Frame]]:
        async with self.corral.client(self.key) as client:
            body = {"agent_id": self.agent_id, "input": prompt}
            session = await ok(await client.post("/v1/sessions", json=body), 201)
            frames = events_of(await read_stream(client, session["id"], until=until, timeout=90))
            return session["id"], frames

    async def follow(self, sid: str, after: int, until: Any = turn_done) -> list[Frame]:
        async with self.corral.client(self.key) as client:
            return events_of(
                await read_stream(client, sid, last_event_id=after, until=until, timeout=90)
            )

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await ok(await self.raw(method, path, **kwargs))

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self.corral.client(self.key) as client:
            return await client.request(method, path, **kwargs)


def data(frames: list[Frame], kind: str) -> list[dict[str, Any]]:
    return [f.data["data"] for f in frames if f.event == kind and f.data is not None]


def text_of(frames: list[Frame]) -> str:
    """All the text of the completed messages, in order."""
    parts = []
    for message in data(frames, "message.completed"):
        for block in message.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
    return "\n".join(parts)


def gap_free(frames: list[Frame]) -> None:
    ids = [f.id for f in frames]
    assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else True, ids


def settled(frame: Frame) -> bool:
    return (
        frame.event == "session.state"
        and frame.data is not None
        and frame.data["data"]["state"] in ("idle", "failed")
    )
