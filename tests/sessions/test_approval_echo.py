"""When Corral answers an approval (a human, a policy, the expiry) and then tells the runtime,
the runtime's echo of that answer may be recorded before Corral's own event: whichever lands
first must name who really answered, and the later one is a duplicate."""

from __future__ import annotations

import pytest

from corral.domain.events import EventDraft, EventType, approval_resolved_native_id
from corral.sessions import recorder
from corral.store import approvals as approval_repo
from corral.store import events as event_repo
from corral.store.types import utcnow
from tests.support.corral import CorralServer, ok
from tests.support.fleet import make_agent, make_runtime, make_team, make_user

NATIVE = "perm_1"


def _requested() -> EventDraft:
    data = {"native_approval_id": NATIVE, "name": "bash", "input": {"command": "ls"},
            "choices": ["allow_once", "deny"]}  # fmt: skip
    return EventDraft(EventType.APPROVAL_REQUESTED, data, f"permission:{NATIVE}")


def _resolved(by: str) -> EventDraft:
    data = {"native_approval_id": NATIVE, "decision": "deny", "by": by}
    return EventDraft(EventType.APPROVAL_RESOLVED, data, approval_resolved_native_id(NATIVE))


@pytest.mark.parametrize(
    ("claimer", "expected"),
    [
        ({"decided_by": "expiry"}, {"by": "expiry", "resolved_by": None}),
        ({"decided_by": "policy", "policy_id": "pol_x", "policy_version": 3},
         {"by": "policy", "policy_id": "pol_x", "policy_version": 3}),
        (None, {"by": "runtime"}),  # answered on the runtime's side: its own report stands
    ],
)  # fmt: skip
async def test_the_runtime_echo_names_who_answered(
    corral: CorralServer, opencode_sim_url: str, claimer: dict | None, expected: dict
) -> None:
    team = await make_team(corral, "t")
    dev = await make_user(corral, team["id"], "developer", "e@x.io")
    agent = await make_agent(
        corral, dev["key"], (await make_runtime(corral, opencode_sim_url))["id"]
    )
    async with corral.client(dev["key"]) as client:
        session = (
            await ok(await client.post("/v1/sessions", json={"agent_id": agent["id"]}), 201)
        )["id"]
    db = corral.services.db
    async with db.write() as conn:
        (asked,) = await recorder.record(conn, session, [_requested()], turn_id=None, at=utcnow())
    approval_id = asked.data["approval_id"]
    if claimer is not None:  # what the expiry and policy paths do before telling the runtime
        async with db.write() as conn:
            assert await approval_repo.claim(conn, approval_id, decision="deny",
                                             message="approval expired", resolved_by=None)  # fmt: skip
            await approval_repo.annotate(conn, approval_id, **claimer)
    async with db.write() as conn:  # the runtime's echo lands first
        (echo,) = await recorder.record(conn, session, [_resolved("runtime")], turn_id=None,
                                        at=utcnow())  # fmt: skip
    assert {k: echo.data.get(k) for k in expected} == expected
    async with db.write() as conn:  # Corral's own report of the same answer: a duplicate
        again = await recorder.record(conn, session, [_resolved(expected["by"])], turn_id=None,
                                      at=utcnow())  # fmt: skip
    assert again == []
    async with db.read() as conn:
        stored = [e for e in await event_repo.after(conn, session, 0, 100)
                  if e.type == EventType.APPROVAL_RESOLVED]  # fmt: skip
        row = await approval_repo.get_approval(conn, session, approval_id)
    assert len(stored) == 1 and row is not None and row.status == "resolved"
