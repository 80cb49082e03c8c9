"""In-memory agents (versioned), environments, sessions and each session's event log.

The log keeps one entry per event id, at the position of its first emission; re-emitting an id
(a queued user event getting its ``processed_at``) replaces the entry in place and is sent to
live streams again, which is why a stream shows user events twice but a listing once. Deltas
(``event_start``/``event_delta``) go only to streams that asked for them and are never stored.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from dataclasses import dataclass, field
from typing import Any

from corral.sim.claude_agents.errors import ApiError
from corral.sim.claude_agents.ids import new_id, now_iso
from corral.sim.claude_agents.tools import normalize_toolset

Json = dict[str, Any]

#: Sent into a stream's queue to end it (the session was deleted, or a test drops streams).
CLOSE: Json = {"type": "__close__"}


def _model(value: Any) -> Json:
    if isinstance(value, dict):
        return {"id": str(value.get("id")), "speed": value.get("speed") or "standard"}
    return {"id": str(value), "speed": "standard"}


def _tools(tools: Any) -> list[Json]:
    out: list[Json] = []
    for entry in tools or []:
        if not isinstance(entry, dict):
            raise ApiError(400, "tools: each entry must be an object")
        if entry.get("type") == "agent_toolset_20260401":
            out.append(normalize_toolset(entry))
        elif entry.get("type") == "custom":
            if not entry.get("name") or "input_schema" not in entry:
                raise ApiError(400, "tools: custom tools need name and input_schema")
            out.append(copy.deepcopy(entry))
        elif entry.get("type") == "mcp_toolset":
            out.append(copy.deepcopy(entry))
        else:
            raise ApiError(400, f"tools: unknown tool type {entry.get('type')!r}")
    return out


@dataclass(eq=False)
class Stream:
    queue: asyncio.Queue[Json] = field(default_factory=asyncio.Queue)
    deltas: frozenset[str] = frozenset()
    #: The loop serving the stream: test hooks running in another thread go through it.
    loop: asyncio.AbstractEventLoop | None = None

    def close_soon(self) -> None:
        if self.loop is None:
            self.queue.put_nowait(CLOSE)
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, CLOSE)


@dataclass
class SessionRecord:
    info: Json
    agent: Json  # the resolved agent snapshot
    events: list[Json] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    streams: set[Stream] = field(default_factory=set)

    @property
    def id(self) -> str:
        return str(self.info["id"])

    def emit(self, event: Json) -> Json:
        """Store (or update) an event and send it to every live stream."""
        position = self.index.get(event["id"])
        if position is None:
            self.index[event["id"]] = len(self.events)
            self.events.append(event)
        else:
            self.events[position] = event
        for stream in list(self.streams):
            stream.queue.put_nowait(event)
        return event

    def preview(self, event: Json, previewed_type: str) -> None:
        """A delta event: only to streams that opted in for ``previewed_type``."""
        for stream in list(self.streams):
            if previewed_type in stream.deltas:
                stream.queue.put_nowait(event)


def _cursor(position: int) -> str:
    return "page_" + base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def _position(page: str | None) -> int:
    if not page:
        return 0
    try:
        raw = page.removeprefix("page_")
        return int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except ValueError:
        raise ApiError(400, "page: invalid cursor") from None


def paginate(items: list[Json], limit: int, page: str | None) -> Json:
    start = _position(page)
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"data": chunk, "next_page": _cursor(start + limit) if more else None}


class Store:
    def __init__(self) -> None:
        self.agents: dict[str, list[Json]] = {}  # id -> versions, oldest first
        self.environments: dict[str, Json] = {}
        self.sessions: dict[str, SessionRecord] = {}

    # -- agents ---------------------------------------------------------------------
    def create_agent(self, body: Json) -> Json:
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise ApiError(400, "name: Field required")
        if "model" not in body:
            raise ApiError(400, "model: Field required")
        now = now_iso()
        agent = {
            "id": new_id("agent"),
            "type": "agent",
            "name": body["name"],
            "description": body.get("description"),
            "model": _model(body["model"]),
            "system": body.get("system"),
            "tools": _tools(body.get("tools")),
            "mcp_servers": list(body.get("mcp_servers") or []),
            "skills": list(body.get("skills") or []),
            "metadata": {str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
            "multiagent": body.get("multiagent"),
            "execution_identity": {"type": "service_account"},
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
        }
        self.agents[agent["id"]] = [agent]
        return agent

    def agent(self, agent_id: str, version: int | None = None) -> Json:
        versions = self.agents.get(agent_id)
        if not versions:
            raise ApiError(404, f"agent {agent_id} not found")
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate["version"] == version:
                return candidate
        raise ApiError(404, f"agent {agent_id} has no version {version}")

    def update_agent(self, agent_id: str, body: Json) -> Json:
        current = self.agent(agent_id)
        if body.get("version") is not None and body["version"] != current["version"]:
            raise ApiError(409, "version: the agent was modified since that version")
        updated = copy.deepcopy(current)
        for key in ("name", "description", "system", "mcp_servers", "skills", "multiagent"):
            if key in body:
                updated[key] = body[key]
        if "model" in body:
            updated["model"] = _model(body["model"])
        if "tools" in body:
            updated["tools"] = _tools(body["tools"])
        if "metadata" in body:
            updated["metadata"] = {str(k): str(v) for k, v in (body["metadata"] or {}).items()}
        updated["version"] = current["version"] + 1
        updated["updated_at"] = now_iso()
        self.agents[agent_id].append(updated)
        return updated

    # -- environments -----------------------------------------------------------------
    def create_environment(self, body: Json) -> Json:
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise ApiError(400, "name: Field required")
        config = body.get("config") or {"type": "cloud"}
        if config.get("type") == "cloud":
            config = {
                "type": "cloud",
                "networking": config.get("networking") or {"type": "unrestricted"},
                "packages": config.get("packages") or {},
            }
        now = now_iso()
        env = {
            "id": new_id("env"),
            "type": "environment",
            "name": body["name"],
            "description": body.get("description"),
            "config": config,
            "metadata": {str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
            "scope": body.get("scope") or "organization",
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
        }
        self.environments[env["id"]] = env
        return env

    def environment(self, env_id: str) -> Json:
        env = self.environments.get(env_id)
        if env is None:
            raise ApiError(404, f"environment {env_id} not found")
        return env

    # -- sessions ----------------------------------------------------------------------
    def create_session(self, body: Json) -> SessionRecord:
        ref = body.get("agent")
        if isinstance(ref, str):
            agent = self.agent(ref)
        elif isinstance(ref, dict) and isinstance(ref.get("id"), str):
            agent = self.agent(ref["id"], ref.get("version"))
        else:
            raise ApiError(400, "agent: Field required")
        env_id = body.get("environment_id")
        if not isinstance(env_id, str):
            raise ApiError(400, "environment_id: Field required")
        self.environment(env_id)
        now = now_iso()
        snapshot = {k: v for k, v in agent.items() if k not in ("created_at", "updated_at")}
        snapshot.pop("archived_at", None)
        snapshot.pop("metadata", None)
        info = {
            "id": new_id("sesn"),
            "type": "session",
            "status": "idle",
            "agent": snapshot,
            "environment_id": env_id,
            "title": body.get("title"),
            "metadata": {str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
            "resources": list(body.get("resources") or []),
            "vault_ids": list(body.get("vault_ids") or []),
            "budget": body.get("budget"),
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0},
            "stats": {"active_seconds": 0.0, "duration_seconds": 0.0},
            "outcome_evaluations": [],
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
        }
        record = SessionRecord(info=info, agent=snapshot)
        self.sessions[record.id] = record
        return record

    def session(self, session_id: str) -> SessionRecord:
        record = self.sessions.get(session_id)
        if record is None:
            raise ApiError(404, f"session {session_id} not found")
        return record
