"""The decision queue: never blocks the caller, commits in order and in batches, and says so
in the trail itself when it had to drop records."""

from __future__ import annotations

import asyncio

from corral.audit import context
from corral.audit.decisions import AuditQueue, decision_entry
from corral.audit.record import AuditEntry
from corral.domain.governance import (
    Act,
    Decision,
    DecisionRequest,
    Outcome,
    PolicyRef,
    Subject,
    ToolUse,
    allow,
)

SUBJECT = Subject("org_1", "team_1", "agt_1", "usr_1", "key_1", "ses_1")


def _item(n: int) -> AuditEntry:
    return AuditEntry(f"a.{n}", "thing", str(n), "org_1")


async def test_entries_are_committed_in_order_in_batches_and_drops_are_recorded() -> None:
    batches: list[list[str]] = []
    gate = asyncio.Event()

    async def write(items: list[AuditEntry]) -> None:
        await gate.wait()
        batches.append([i.action for i in items])

    queue = AuditQueue(write, max_size=5, batch=3, linger=0)
    queue.start()
    for n in range(8):  # the writer holds one, five wait, two are dropped
        queue.put(_item(n))
        await asyncio.sleep(0)
    assert queue.dropped == 2
    gate.set()
    await asyncio.sleep(0.01)  # the backlog drains
    await queue.submit(_item(99))  # waits until it is committed
    await queue.aclose()
    flat = [a for batch in batches for a in batch]
    assert [a for a in flat if a != "audit.dropped"] == [*(f"a.{n}" for n in range(6)), "a.99"]
    assert flat.count("audit.dropped") == 1 and all(len(b) <= 4 for b in batches)


async def test_a_failing_write_is_retried_not_lost() -> None:
    attempts: list[int] = []

    async def write(items: list[AuditEntry]) -> None:
        attempts.append(len(items))
        if len(attempts) < 3:
            raise OSError("database down")

    queue = AuditQueue(write)
    queue.start()
    await queue.submit(_item(1))
    await queue.aclose()
    assert attempts == [1, 1, 1]


def test_which_decisions_are_recorded_and_how() -> None:
    tool = DecisionRequest(Act.TOOL_USE, SUBJECT, tool=ToolUse("bash", None, {"cmd": "ls"}))
    assert decision_entry(tool, allow()) is not None
    assert decision_entry(DecisionRequest(Act.SESSION_CREATE, SUBJECT), allow()) is None
    denied = Decision(Outcome.DENY, "tool_denied", "no", policy=PolicyRef("pol_1", 3), scope="x")
    context.set_request_id("req-1")
    found = decision_entry(tool, denied)
    assert found is not None
    assert (found.action, found.decision, found.outcome) == ("tool.use", "deny", "denied")
    assert (found.policy_id, found.policy_version, found.request_id) == ("pol_1", 3, "req-1")
    assert (found.resource_type, found.resource_id, found.actor_type) == (
        "session",
        "ses_1",
        "agent",
    )
    assert found.details["tool"] == "bash" and "cmd" not in str(found.details)
    ask = Decision(Outcome.ASK, "approval_required", "ask")
    message = decision_entry(
        DecisionRequest(Act.MESSAGE_SEND, Subject("org_1", agent_id="agt_2", key_id="k")), ask
    )
    assert message is not None and message.outcome == "pending"
    assert (message.resource_type, message.actor_type) == ("agent", "key")
