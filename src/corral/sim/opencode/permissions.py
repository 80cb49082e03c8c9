"""Permission rules, pending requests and replies (the ``permission.asked`` API).

A tool call is checked against the configured rules (``permission: {"bash": "ask"}``)
and against patterns the user approved with ``always``. An ``ask`` publishes
``permission.asked`` and parks the tool until ``POST /permission/{id}/reply``. Reply side
effects follow OpenCode: ``reject`` also rejects every other pending request of the same
session; ``always`` remembers the patterns and resolves other pending requests they cover.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from corral.sim.opencode.bus import Bus
from corral.sim.opencode.ids import ascending
from corral.sim.opencode.store import NotFound
from corral.sim.opencode.tools import PermissionAsk

__all__ = ["Denied", "Permissions", "Rejected", "wildcard_match"]

Json = dict[str, Any]
REPLIES = ("once", "always", "reject")


class Rejected(Exception):
    """The user said no. With feedback the model is told and the turn goes on."""

    def __init__(self, feedback: str | None = None) -> None:
        self.feedback = feedback
        if feedback:
            text = (
                "The user rejected permission to use this specific tool call with the "
                f"following feedback: {feedback}"
            )
        else:
            text = "The user rejected permission to use this specific tool call."
        super().__init__(text)


class Denied(Exception):
    """A ``deny`` rule matched; the model gets an error but the turn goes on."""


def wildcard_match(text: str, pattern: str) -> bool:
    # "*" is any run of characters, "?" one character; a trailing " *" also matches the
    # bare command, so approving "echo *" covers a plain "echo" too.
    optional_tail = pattern.endswith(" *")
    body = pattern[:-2] if optional_tail else pattern
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in body)
    if optional_tail:
        regex += "( .*)?"
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


@dataclass
class _Pending:
    request: Json
    future: asyncio.Future[str]


class Permissions:
    def __init__(self, rules: dict[str, str], bus: Bus) -> None:
        self._rules = dict(rules)
        self._bus = bus
        self._pending: dict[str, _Pending] = {}
        self._approved: list[tuple[str, str]] = []  # (permission, pattern) from "always"

    def pending(self) -> list[Json]:
        return [entry.request for entry in self._pending.values()]

    def has_pending(self, session_id: str) -> bool:
        return any(p.request["sessionID"] == session_id for p in self._pending.values())

    def _approved_all(self, permission: str, patterns: list[str]) -> bool:
        return all(
            any(perm == permission and wildcard_match(pat, ok) for perm, ok in self._approved)
            for pat in patterns
        )

    async def check(self, session_id: str, ask: PermissionAsk, tool: Json) -> None:
        """Return when the call may run; raise :class:`Rejected` or :class:`Denied`."""
        action = self._rules.get(ask.permission, self._rules.get("*", "allow"))
        if action == "deny":
            raise Denied(
                "The user has specified a rule which prevents you from using this specific "
                f"tool call. Here are some of the relevant rules {self._rules}"
            )
        if action != "ask" or self._approved_all(ask.permission, ask.patterns):
            return
        request: Json = {
            "id": ascending("per"),
            "sessionID": session_id,
            "permission": ask.permission,
            "patterns": ask.patterns,
            "metadata": ask.metadata,
            "always": ask.always,
            "tool": tool,
        }
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[request["id"]] = _Pending(request, future)
        self._bus.publish("permission.asked", request)
        # On abort this wait is cancelled but the request stays listed (stale), as on the
        # real server; a late reply still answers true.
        await future

    def reply(self, request_id: str, reply: str, message: str | None = None) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is None:
            raise NotFound(f"Permission not found: {request_id}")
        session_id = entry.request["sessionID"]
        self._settle(entry, reply, Rejected(message) if reply == "reject" else None)
        if reply == "reject":
            # One "no" stops the whole turn: every other question of the session goes too.
            for other_id, other in list(self._pending.items()):
                if other.request["sessionID"] == session_id:
                    del self._pending[other_id]
                    self._settle(other, "reject", Rejected())
        elif reply == "always":
            for pattern in entry.request["always"]:
                self._approved.append((entry.request["permission"], pattern))
            for other_id, other in list(self._pending.items()):
                req = other.request
                if req["sessionID"] == session_id and self._approved_all(
                    req["permission"], req["patterns"]
                ):
                    del self._pending[other_id]
                    self._settle(other, "always", None)

    def _settle(self, entry: _Pending, reply: str, error: Exception | None) -> None:
        request = entry.request
        self._bus.publish(
            "permission.replied",
            {"sessionID": request["sessionID"], "requestID": request["id"], "reply": reply},
        )
        if entry.future.done():
            return
        if error is not None:
            entry.future.set_exception(error)
        else:
            entry.future.set_result(reply)
