"""Governance decisions as audit records, written in batches off the decision path.

``decide()`` tells its listeners synchronously and must never wait on them, so the listener only
turns a decision into an entry (capturing the request's ids while still in its context) and
queues it. One writer task commits whatever has queued in one transaction (group commit). The
queue is bounded: if the database stalls long enough to fill it, further decisions are counted,
not kept, and the count itself goes into the trail as ``audit.dropped`` once writes resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from corral.audit import context
from corral.audit.canonical import digest
from corral.audit.record import ActorType, AuditEntry, AuditOutcome, entry
from corral.domain.governance import Act, Decision, DecisionRequest, Outcome

log = logging.getLogger(__name__)

#: Allows are recorded only for these acts; denials and asks always. (An allowed session or
#: turn is recorded by what it starts; an allowed tool or model call is nowhere else.)
_RECORDED_ALLOWS = frozenset({Act.TOOL_USE})
# (Allowed model calls are sealed in batches by the gateway: see ``audit.batches``.)
_OUTCOMES = {
    Outcome.ALLOW: AuditOutcome.SUCCESS,
    Outcome.DENY: AuditOutcome.DENIED,
    Outcome.ASK: AuditOutcome.PENDING,
}

#: How long a refusal waits for its record to commit, and shutdown for the queue to drain.
_SUBMIT_WAIT = 5.0
_CLOSE_WAIT = 10.0

Writer = Callable[[list[AuditEntry]], Awaitable[Any]]


def decision_entry(request: DecisionRequest, decision: Decision) -> AuditEntry | None:
    """The record of one decision, or None for an allow nobody needs recorded."""
    if decision.outcome is Outcome.ALLOW and request.act not in _RECORDED_ALLOWS:
        return None
    subject = request.subject
    caller = context.actor()
    role = str(caller.role) if caller is not None and caller.key_id == subject.key_id else None
    if subject.session_id and request.act in (Act.TOOL_USE, Act.MODEL_CALL):
        kind = ActorType.AGENT
    else:
        kind = ActorType.KEY if subject.key_id else ActorType.SYSTEM
    if subject.session_id:
        resource: tuple[str, str | None] = ("session", subject.session_id)
    elif subject.agent_id:
        resource = ("agent", subject.agent_id)
    elif request.model:
        resource = ("model", request.model)
    else:
        resource = ("org", subject.org_id)
    tool = request.tool
    details: dict[str, Any] = {
        "code": decision.code, "reason": decision.reason, "scope": decision.scope,
        "epoch": decision.epoch, "agent_id": subject.agent_id, "session_id": subject.session_id,
        "runtime_id": request.runtime_id, "model": request.model,
        "tool": tool.name if tool else None, "tool_server": tool.server if tool else None,
        "arguments_sha256": digest(tool.arguments) if tool and tool.arguments else None,
        "cost_micros": request.cost_micros,
    }  # fmt: skip
    return AuditEntry(
        action=request.act.value, resource_type=resource[0], resource_id=resource[1],
        org_id=subject.org_id, team_id=subject.team_id, actor_type=kind.value,
        key_id=subject.key_id, user_id=subject.user_id, role=role,
        decision=decision.outcome.value, policy_id=decision.policy_id,
        policy_version=decision.policy_version, outcome=_OUTCOMES[decision.outcome].value,
        details={k: v for k, v in details.items() if v is not None},
        request_id=context.request_id(), trace_id=context.trace_id(),
    )  # fmt: skip


class AuditQueue:
    """Bounded queue plus one writer task: entries committed in batches, in order."""

    def __init__(
        self, write: Writer, *, max_size: int = 10_000, batch: int = 500, linger: float = 0.05
    ) -> None:
        self._write_batch = write
        self._linger = linger
        self._queue: asyncio.Queue[tuple[AuditEntry, asyncio.Future[None] | None]] = asyncio.Queue(
            max_size
        )
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.dropped = 0

    def on_decision(self, request: DecisionRequest, decision: Decision, _seconds: float) -> None:
        """The governor's listener: never waits, never raises."""
        found = decision_entry(request, decision)
        if found is not None:
            self.put(found)

    def put(self, item: AuditEntry) -> None:
        try:
            self._queue.put_nowait((item, None))
        except asyncio.QueueFull:
            self._drop()

    async def submit(self, item: AuditEntry) -> None:
        """Queue ``item`` and wait until it (and all queued before it) is committed."""
        if self._task is None:  # not started (a tool, a test): write it now
            await self._write_batch([item])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, done))
        except asyncio.QueueFull:
            self._drop()
            return
        try:
            await asyncio.wait_for(asyncio.shield(done), _SUBMIT_WAIT)
        except TimeoutError:
            log.warning("audit record %s not committed within %ss; still queued", item.action,
                        _SUBMIT_WAIT)  # fmt: skip

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error("audit queue full: %d decision record(s) dropped so far", self.dropped)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if batch[0][1] is None and self._linger:
                # Nobody waits on this record: let a few more gather, so a steady trickle of
                # decisions (one model call after another) costs one commit per linger, not
                # one each.
                await asyncio.sleep(self._linger)
            while len(batch) < self._batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # Shielded: shutting down waits for a batch in flight instead of losing it.
            self._inflight = asyncio.ensure_future(self._commit(batch))
            await asyncio.shield(self._inflight)

    async def _commit(self, batch: list[tuple[AuditEntry, asyncio.Future[None] | None]]) -> None:
        items = [item for item, _ in batch]
        if self.dropped:
            items.append(_dropped(self.dropped))
            self.dropped = 0
        delay = 0.1
        while True:
            try:
                await self._write_batch(items)
                break
            except Exception:
                log.exception("writing %d audit record(s) failed; retrying", len(items))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    async def aclose(self) -> None:
        """Stop the writer and commit what is still queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._inflight), _CLOSE_WAIT)
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        if left or self.dropped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._commit(left), _CLOSE_WAIT)


def _dropped(count: int) -> AuditEntry:
    return entry(
        "audit.dropped", ("audit", None), actor=None, org_id=None, outcome=AuditOutcome.ERROR,
        details={"count": count, "reason": "the audit queue was full"},
    )  # fmt: skip
