"""A permission prompt left to a human is decided again when governance changes: revoking the
session's key denies it, so the turn does not wait on a prompt nobody may answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.governance.test_enforcement import BASH, _events, _session, _world
from tests.support.corral import CorralServer, corral_settings, ok, running_corral
from tests.support.sse import read_stream, turn_done


@pytest.fixture
async def governed(database_url: str, tmp_path: Path) -> AsyncIterator[CorralServer]:
    settings = corral_settings(database_url, tmp_path, governance_tick_seconds=0.2)
    async with running_corral(settings) as server:
        yield server


async def test_revoking_the_key_denies_a_prompt_already_waiting(
    governed: CorralServer, opencode_sim_url: str
) -> None:
    w = await _world(governed, opencode_sim_url)
    async with governed.client(w["keys"]["developer"]) as dev:
        session = await _session(dev, w["agent"]["id"], BASH)
        # Decided before the revocation: no rule speaks to bash, so it waits for a person.
        await read_stream(dev, session["id"], until=lambda f: f.event == "approval.requested")
        key_id = (await ok(await dev.get("/v1/keys")))["data"][0]["id"]
    async with governed.admin() as admin:
        await ok(await admin.post(f"/v1/keys/{key_id}/revoke"))
        await read_stream(admin, session["id"], until=turn_done, timeout=20)
        events = await _events(admin, session["id"])
    decisions = [e["data"] for e in events if e["type"] == "governance.decision"]
    assert [d["code"] for d in decisions] == ["key_revoked"]
    resolved = [e["data"] for e in events if e["type"] == "approval.resolved"]
    assert len(resolved) == 1
    assert resolved[0]["decision"] == "deny" and resolved[0]["by"] == "policy"


async def test_a_prompt_waiting_across_a_restart_is_denied_after_a_revocation(
    database_url: str, opencode_sim_url: str, tmp_path: Path
) -> None:
    """The process that takes the turn up (here: the same instance restarted, which reclaims
    its turns at start) never saw the prompt asked; it still applies the revocation."""
    settings = corral_settings(
        database_url, tmp_path, instance_id="solo", governance_tick_seconds=0.2
    )
    async with running_corral(settings) as first:
        w = await _world(first, opencode_sim_url)
        async with first.client(w["keys"]["developer"]) as dev:
            session = await _session(dev, w["agent"]["id"], BASH)
            await read_stream(dev, session["id"], until=lambda f: f.event == "approval.requested")
            key_id = (await ok(await dev.get("/v1/keys")))["data"][0]["id"]
        admin_key = first.admin_key
    async with running_corral(settings, bootstrap=False) as again:
        again.admin_key = admin_key
        async with again.admin() as admin:
            pending = await ok(await admin.get(f"/v1/sessions/{session['id']}/approvals"))
            assert [a["status"] for a in pending] == ["pending"]
            await ok(await admin.post(f"/v1/keys/{key_id}/revoke"))
            await read_stream(admin, session["id"], until=turn_done, timeout=20)
            events = await _events(admin, session["id"])
    resolved = [e["data"] for e in events if e["type"] == "approval.resolved"]
    assert len(resolved) == 1
    assert resolved[0]["decision"] == "deny" and resolved[0]["by"] == "policy"
    decisions = [e["data"]["code"] for e in events if e["type"] == "governance.decision"]
    assert decisions == ["key_revoked"]
