"""The simulated gateway's state: connected clients, sessions with their transcripts, approvals.

Event delivery follows what openclaw 2026.9.6 does: ``chat`` and ``agent`` events go to every
operator connection (``agent`` tool streams only to clients with the ``tool-events`` cap),
``session.message`` only to connections that called ``sessions.messages.subscribe`` for that
key, exec approvals only to approval-capable clients (scope ``operator.admin`` plus cap
``approvals``/``exec-approvals``). Every event frame carries the connection's own ``seq``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.sim.openclaw.config import SimConfig

APPROVER_CAPS = {"approvals", "exec-approvals"}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Client:
    conn_id: str
    client_id: str
    scopes: set[str]
    caps: set[str]
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    subscriptions: set[str] = field(default_factory=set)
    seq: int = 0

    @property
    def approver(self) -> bool:
        return "operator.admin" in self.scopes and bool(self.caps & APPROVER_CAPS)

    def send(self, frame: dict[str, Any]) -> None:
        self.outbox.put_nowait(json.dumps(frame, separators=(",", ":")))

    def event(self, name: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        self.send({"type": "event", "event": name, "payload": payload, "seq": self.seq})


@dataclass
class Run:
    run_id: str
    text: str
    #: The sending connection's scopes: tools act with them (an exec approval is registered
    #: under the caller's authority, so a caller without operator.approvals cannot ask).
    scopes: frozenset[str] = frozenset()
    task: asyncio.Task[None] | None = None
    seq: int = 0  # the run's own event counter (``payload.seq``)
    partial: str = ""  # assistant text streamed so far, for an abort's injected row

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class Session:
    key: str
    session_id: str
    agent_id: str
    display_name: str | None
    model: str
    created_at: int = field(default_factory=now_ms)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    run: Run | None = None
    queued: list[Run] = field(default_factory=list)
    last_run_id: str | None = None
    aborted_last_run: bool = False

    def append(self, row: dict[str, Any], run_id: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": str(uuid.uuid4()), "seq": len(self.transcript) + 1}
        if run_id is not None and row.get("role") != "user":
            meta["runId"] = run_id
        if "idempotencyKey" in row:
            meta["idempotencyKey"] = row["idempotencyKey"]
        meta["recordTimestampMs"] = now_ms()
        row["__openclaw"] = meta
        self.transcript.append(row)
        return row

    def info(self) -> dict[str, Any]:
        active = [self.run.run_id] if self.run is not None else []
        return {
            "key": self.key,
            "agentId": self.agent_id,
            "hasActiveRun": bool(active),
            "activeRunIds": active,
            "status": "running" if active else "done",
            "lastRunId": self.last_run_id,
            "abortedLastRun": self.aborted_last_run,
        }


@dataclass
class Approval:
    approval_id: str
    request: dict[str, Any]
    created_at: int
    expires_at: int
    decision: asyncio.Future[str]

    def record(self) -> dict[str, Any]:
        return {
            "id": self.approval_id,
            "request": self.request,
            "createdAtMs": self.created_at,
            "expiresAtMs": self.expires_at,
            "approvalKind": "exec",
        }


class GatewayState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clients: dict[str, Client] = {}
        self.sessions: dict[str, Session] = {}
        self.approvals: dict[str, Approval] = {}

    def broadcast(
        self, name: str, payload: dict[str, Any], to: Callable[[Client], bool] | None = None
    ) -> None:
        for client in list(self.clients.values()):
            if to is None or to(client):
                client.event(name, payload)

    def to_subscribers(self, key: str, name: str, payload: dict[str, Any]) -> None:
        self.broadcast(name, payload, lambda c: key in c.subscriptions)

    def has_approver(self) -> bool:
        return any(c.approver for c in self.clients.values())

    # -- fault hooks for tests ---------------------------------------------------------------

    def drop_connections(self) -> int:
        """Close every client socket at once (a gateway restart or a network cut)."""
        clients = list(self.clients.values())
        for client in clients:
            client.outbox.put_nowait(None)
        return len(clients)

    def send_garbage(self, text: str = "{not json") -> None:
        """Send a malformed frame to every connection."""
        for client in self.clients.values():
            client.outbox.put_nowait(text)
