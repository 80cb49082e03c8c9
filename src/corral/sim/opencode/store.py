"""In-memory sessions, messages and parts, kept in OpenCode's wire shapes.

Records are plain JSON-ready dicts because the simulator's job is to reproduce exact wire
shapes; a typed model in between would only add a second place for them to drift. Every
mutation goes through a helper here that also publishes the matching bus event, so the
event stream and ``GET`` responses can never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from corral.sim.opencode.bus import Bus
from corral.sim.opencode.config import SimConfig
from corral.sim.opencode.ids import ascending, descending, now_ms

__all__ = ["Json", "MessageRecord", "NotFound", "SessionRecord", "Store", "zero_tokens"]

Json = dict[str, Any]


class NotFound(Exception):
    """An unknown session, message or permission; the app renders OpenCode's 404 body."""


def zero_tokens() -> Json:
    return {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}}


def add_tokens(total: Json, more: Json) -> None:
    for key in ("input", "output", "reasoning"):
        total[key] += more[key]
    for key in ("read", "write"):
        total["cache"][key] += more["cache"][key]


@dataclass
class MessageRecord:
    info: Json
    parts: list[Json] = field(default_factory=list)

    def wire(self) -> Json:
        return {"info": self.info, "parts": self.parts}


@dataclass
class SessionRecord:
    info: Json
    messages: list[MessageRecord] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.info["id"])

    def message(self, message_id: str) -> MessageRecord:
        for record in self.messages:
            if record.info["id"] == message_id:
                return record
        raise NotFound(f"Message not found: {message_id}")


def _slug() -> str:
    # Real slugs are two random words ("brave-comet"); any stable-looking pair will do.
    words = ("quiet", "brave", "swift", "lucky", "misty", "eager", "calm", "proud")
    nouns = ("comet", "river", "falcon", "meadow", "harbor", "cedar", "lantern", "otter")
    raw = int.from_bytes(os.urandom(2), "big")
    return f"{words[raw % len(words)]}-{nouns[(raw >> 8) % len(nouns)]}"


_SESSION_KEYS = (
    "id",
    "slug",
    "projectID",
    "directory",
    "path",
    "parentID",
    "title",
    "agent",
    "model",
    "version",
    "summary",
    "cost",
    "tokens",
    "time",
)


def _reorder(info: Json) -> None:
    # After the first update the real server emits the session in this key order.
    ordered = {key: info[key] for key in _SESSION_KEYS if key in info}
    ordered.update({k: v for k, v in info.items() if k not in ordered})
    info.clear()
    info.update(ordered)


def default_title(created_ms: int) -> str:
    stamp = datetime.fromtimestamp(created_ms / 1000, UTC).isoformat(timespec="milliseconds")
    return "New session - " + stamp.replace("+00:00", "Z")


class Store:
    """All sessions of one simulated instance, plus the bus their changes go out on."""

    def __init__(self, config: SimConfig, bus: Bus) -> None:
        self.config = config
        self.bus = bus
        self.sessions: dict[str, SessionRecord] = {}
        # Outside a git repository every directory belongs to the "global" project.
        self.project_id = "global"

    # -- sessions -----------------------------------------------------------------
    def create_session(self, body: Json) -> SessionRecord:
        created = now_ms()
        title = body.get("title")
        directory = self.config.directory
        # Key order as on the wire at creation; ``set_model`` reorders like the real server.
        info: Json = {
            "id": descending("ses"),
            "slug": _slug(),
            "version": self.config.version,
            "projectID": self.project_id,
            "directory": directory,
            "path": directory.lstrip("/"),  # relative to the worktree root, "/" outside git
            "title": title if isinstance(title, str) and title else default_title(created),
            "cost": 0,
            "tokens": zero_tokens(),
            "time": {"created": created, "updated": created},
        }
        if isinstance(body.get("parentID"), str):
            info["parentID"] = body["parentID"]
        record = SessionRecord(info)
        self.sessions[record.id] = record
        self.bus.publish("session.created", {"sessionID": record.id, "info": info})
        return record

    def set_model(self, session: SessionRecord, agent: str, model: Json) -> None:
        """Remember the prompt's agent and model; ``session.updated`` only on a change."""
        wanted = {"id": model["modelID"], "providerID": model["providerID"], "variant": "default"}
        if session.info.get("agent") == agent and session.info.get("model") == wanted:
            return
        session.info["agent"] = agent
        session.info["model"] = wanted
        self.touch(session)

    def summarize(self, session: SessionRecord, user: MessageRecord) -> None:
        """The per-step diff summary; the simulator never edits files, so it is empty."""
        session.info["summary"] = {"additions": 0, "deletions": 0, "files": 0}
        self.touch(session)
        self.bus.publish("session.diff", {"sessionID": session.id, "diff": []})
        user.info["summary"] = {"diffs": []}
        self.update_message(user)

    def get(self, session_id: str) -> SessionRecord:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise NotFound(f"Session not found: {session_id}") from None

    def delete(self, session_id: str) -> None:
        record = self.get(session_id)
        del self.sessions[session_id]
        self.bus.publish("session.deleted", {"sessionID": session_id, "info": record.info})

    def touch(self, session: SessionRecord) -> None:
        session.info["time"]["updated"] = now_ms()
        _reorder(session.info)
        self.bus.publish("session.updated", {"sessionID": session.id, "info": session.info})

    def add_usage(self, session: SessionRecord, cost: float, tokens: Json) -> None:
        session.info["cost"] += cost
        add_tokens(session.info["tokens"], tokens)

    # -- messages and parts --------------------------------------------------------
    def add_message(self, session: SessionRecord, info: Json) -> MessageRecord:
        record = MessageRecord(info)
        session.messages.append(record)
        self.update_message(record)
        return record

    def update_message(self, record: MessageRecord) -> None:
        info = record.info
        self.bus.publish("message.updated", {"sessionID": info["sessionID"], "info": info})

    def new_part(self, message: MessageRecord, type_: str, **fields: Any) -> Json:
        part: Json = {
            "id": ascending("prt"),
            "sessionID": message.info["sessionID"],
            "messageID": message.info["id"],
            "type": type_,
            **fields,
        }
        message.parts.append(part)
        self.update_part(part)
        return part

    def update_part(self, part: Json) -> None:
        self.bus.publish(
            "message.part.updated", {"sessionID": part["sessionID"], "part": part, "time": now_ms()}
        )

    def part_delta(self, part: Json, delta: str) -> None:
        part["text"] += delta
        self.bus.publish(
            "message.part.delta",
            {
                "sessionID": part["sessionID"],
                "messageID": part["messageID"],
                "partID": part["id"],
                "field": "text",
                "delta": delta,
            },
        )
