"""The chain stays linear when replicas append at once; `corral audit list` and `public-key`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.audit.service import verify_database
from tests.audit.support import cli, records
from tests.support.corral import corral_settings, ok, running_corral


async def test_fifty_concurrent_appends_across_two_replicas_keep_one_linear_chain(
    database_url: str, tmp_path: Path
) -> None:
    first = corral_settings(database_url, tmp_path, audit_checkpoint_records=7)
    second = corral_settings(
        database_url, tmp_path, master_key=first.master_key, port=8701,
        audit_checkpoint_records=7,
    )  # fmt: skip
    async with running_corral(first) as a, running_corral(second, bootstrap=False) as b:
        async with a.admin() as on_a, b.client(a.admin_key) as on_b:

            async def team(n: int) -> None:
                client = on_a if n % 2 else on_b
                await ok(await client.post("/v1/teams", json={"name": f"t{n}"}), 201)

            await asyncio.gather(*(team(n) for n in range(50)))
            found = await records(on_a, action="team.create")
        assert len(found) == 50
        report = await verify_database(a.services.db)
    assert report.ok, report.problem
    assert report.records == 53 and report.last_seq == 53 and report.checkpoints >= 7


async def test_list_and_public_key_through_the_api(database_url: str, tmp_path: Path) -> None:
    async with running_corral(corral_settings(database_url, tmp_path)) as server:
        async with server.admin() as admin:
            team = await ok(await admin.post("/v1/teams", json={"name": "a"}), 201)
        env = {"url": server.url, "key": server.admin_key}
        listed = await cli("audit", "list", "--action", "team.create", "--json", **env)
        assert listed.code == 0, listed.err
        assert [r["resource_id"] for r in listed.json()["data"]] == [team["id"]]
        table = await cli("audit", "list", "--resource", f"team:{team['id']}", **env)
        assert table.code == 0 and "team.create" in table.out and "(admin)" in table.out
        limited = await cli("audit", "list", "--limit", "2", "--json", **env)
        assert [r["seq"] for r in limited.json()["data"]] == [4, 3]
        pem = await cli("audit", "public-key", **env)
        assert pem.code == 0 and pem.out.startswith("-----BEGIN PUBLIC KEY-----")
        out = tmp_path / "key.pem"
        saved = await cli("audit", "public-key", "--out", str(out), **env)
        assert saved.code == 0 and out.read_text() == pem.out
        pinned = await cli("audit", "verify", "--public-key", str(out), database_url=database_url)
        assert pinned.code == 0 and "audit trail verified: 4 records" in pinned.out
        bad = await cli("audit", "list", "--decision", "maybe", **env)
        assert bad.code == 2
