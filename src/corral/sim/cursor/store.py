"""Agents, runs and each run's event log: the simulator's whole state, in memory.

A run's log is what ``GET …/runs/{id}/stream`` replays: frames with opaque ids (resume point
for ``Last-Event-ID``), appended by the engine and read by any number of streams. Readers
wait on the run's ``wake`` event, which is swapped on every append.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ACTIVE", "TERMINAL", "Agent", "Frame", "Run", "Store", "iso_now"]

Json = dict[str, Any]
ACTIVE = frozenset({"CREATING", "RUNNING"})
TERMINAL = frozenset({"FINISHED", "ERROR", "CANCELLED", "EXPIRED"})


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str
    data: Json


@dataclass
class Run:
    id: str
    agent_id: str
    prompt: str
    model: str | None
    status: str = "CREATING"
    created_at: str = field(default_factory=iso_now)
    updated_at: str = field(default_factory=iso_now)
    started_mono: float = field(default_factory=time.monotonic)
    finished_mono: float | None = None
    duration_ms: int | None = None
    result: str | None = None
    error: Json | None = None
    usage: Json = field(default_factory=lambda: {"inputTokens": 0, "outputTokens": 0})
    frames: list[Frame] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    _seq: int = 0

    def emit(self, event: str, data: Json) -> Frame:
        self._seq += 1
        # Opaque to clients; unique per run so Last-Event-ID names one point in this log.
        frame = Frame(f"{self._seq:06d}.{self.id[4:12]}", event, data)
        self.frames.append(frame)
        self.updated_at = iso_now()
        self.wake.set()
        self.wake = asyncio.Event()
        return frame

    def finish(self, status: str, *, error: Json | None = None) -> None:
        self.status, self.error = status, error
        self.finished_mono = time.monotonic()
        self.duration_ms = int((self.finished_mono - self.started_mono) * 1000)
        self.updated_at = iso_now()

    def body(self) -> Json:
        out: Json = {
            "id": self.id,
            "agentId": self.agent_id,
            "status": self.status,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.duration_ms is not None:
            out["durationMs"] = self.duration_ms
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Agent:
    id: str
    name: str
    repos: list[Json]
    metadata: dict[str, str]
    model: str | None
    files: dict[str, str]
    archived: bool = False
    created_at: str = field(default_factory=iso_now)
    updated_at: str = field(default_factory=iso_now)
    runs: list[Run] = field(default_factory=list)

    @property
    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    @property
    def busy(self) -> bool:
        return self.latest is not None and self.latest.status in ACTIVE

    def body(self) -> Json:
        status = "ARCHIVED" if self.archived else ("ACTIVE" if self.busy else "IDLE")
        out: Json = {
            "id": self.id,
            "name": self.name,
            "status": status,
            "env": {"type": "cloud"},
            "repos": self.repos,
            "url": f"https://cursor.com/agents?id={self.id}",
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.metadata:
            out["metadata"] = self.metadata
        if self.latest is not None:
            out["latestRunId"] = self.latest.id
        return out


class Store:
    def __init__(self) -> None:
        self.agents: dict[str, Agent] = {}
        #: Fault hook: bumping it cuts every open stream without its ``done`` frame.
        self.drop_generation = 0

    def new_run(self, agent: Agent, prompt: str, model: str | None) -> Run:
        run = Run(id=f"run-{uuid.uuid4()}", agent_id=agent.id, prompt=prompt, model=model)
        agent.runs.append(run)
        agent.updated_at = run.created_at
        return run

    def find_run(self, run_id: str) -> Run | None:
        for agent in self.agents.values():
            for run in agent.runs:
                if run.id == run_id:
                    return run
        return None

    def drop_streams(self) -> None:
        self.drop_generation += 1
        for agent in self.agents.values():
            for run in agent.runs:
                run.wake.set()
                run.wake = asyncio.Event()
