"""Tampering with stored records, on SQLite and PostgreSQL: `corral audit verify` names the record.

On PostgreSQL the server's role is refused first (privileges revoked, then a trigger); the tests
then do what only the table owner or a superuser can (grant itself back, disable the trigger),
which is exactly what verification exists to catch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from corral.store.copy import copy_database
from corral.store.db import Database
from tests.audit.support import cli
from tests.support.corral import corral_settings, ok, running_corral
from tests.support.databases import PostgresFactory

TEAMS = 8  # + 3 bootstrap records = 11 records


@pytest.fixture
async def written(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database holding a short chain (checkpoints every 4 records, and one at shutdown)."""
    settings = corral_settings(database_url, tmp_path, audit_checkpoint_records=4)
    async with running_corral(settings) as server, server.admin() as admin:
        for n in range(TEAMS):
            await ok(await admin.post("/v1/teams", json={"name": f"t{n}"}), 201)
    yield database_url


async def _sql(url: str, *statements: str) -> list[Any]:
    """Run statements as the table owner, triggers off on PostgreSQL; the last one's rows."""
    if url.startswith("sqlite"):
        db = Database(url)
        try:
            async with db.write() as conn:
                for sql in statements:
                    result = await conn.execute(sa.text(sql))
                return list(result.all()) if result.returns_rows else []
        finally:
            await db.dispose()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "GRANT UPDATE, DELETE ON audit_records, audit_checkpoints TO CURRENT_USER"
        )
        await conn.execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only")
        rows: list[Any] = []
        for sql in statements:
            rows = await conn.fetch(sql)
        return rows
    finally:
        await conn.close()


async def _verify(*args: str, database_url: str = "") -> dict[str, Any]:
    run = await cli("audit", "verify", "--json", *args, database_url=database_url)
    assert run.code in (0, 1), run.err
    report: dict[str, Any] = json.loads(run.out)
    assert (run.code == 0) == report["ok"], (run.code, report)
    return report


def _problem(report: dict[str, Any]) -> tuple[int, str]:
    assert report["problem"] is not None, "tampering went unnoticed"
    return report["problem"]["seq"], report["problem"]["fault"]


@pytest.mark.parametrize(
    ("statements", "seq", "fault"),
    [
        (["UPDATE audit_records SET details = '{\"name\":\"evil\"}' WHERE seq = 6"], 6, "hash_mismatch"),
        (["UPDATE audit_records SET user_id = 'usr_someone_else' WHERE seq = 5"], 5, "hash_mismatch"),
        (["UPDATE audit_records SET ts = ts - interval '1 day' WHERE seq = 9"], 9, "hash_mismatch"),
        (["DELETE FROM audit_records WHERE seq = 7"], 7, "seq_gap"),
        (["DELETE FROM audit_records WHERE seq = 1"], 1, "seq_gap"),
        (["DELETE FROM audit_records WHERE seq >= 10"], 10, "truncated"),
        ([
            "UPDATE audit_records SET seq = -1 WHERE seq = 4",
            "UPDATE audit_records SET seq = 4 WHERE seq = 5",
            "UPDATE audit_records SET seq = 5 WHERE seq = -1",
        ], 4, "hash_mismatch"),
    ],
)  # fmt: skip
async def test_editing_deleting_or_reordering_a_record_is_found_at_that_record(
    written: str, statements: list[str], seq: int, fault: str
) -> None:
    assert (await _verify(database_url=written))["records"] == TEAMS + 3
    if written.startswith("sqlite"):  # SQLite has no intervals
        statements = [
            s.replace("ts - interval '1 day'", "datetime(ts, '-1 day')") for s in statements
        ]
    await _sql(written, *statements)
    assert _problem(await _verify(database_url=written)) == (seq, fault)


async def test_a_forged_checkpoint_is_caught(written: str) -> None:
    rows = await _sql(written, "SELECT seq, hash FROM audit_records WHERE seq = 3")
    key_id = (await _sql(written, "SELECT key_id FROM audit_checkpoints LIMIT 1"))[0][0]
    # Inserting is allowed (appending is the point); a signature cannot be made without the key.
    forged = (
        "INSERT INTO audit_checkpoints (seq, hash, ts, key_id, signature) VALUES "
        f"(3, '{rows[0][1]}', '2026-01-01 00:00:00', '{key_id}', '{'A' * 86}==')"
    )
    await _sql(written, forged)
    assert _problem(await _verify(database_url=written)) == (3, "bad_signature")
    # From the last good checkpoint on, the forgery before it is not looked at.
    assert (await _verify("--from-checkpoint", database_url=written))["ok"]


async def test_postgres_refuses_changes_to_audit_rows(
    postgres: PostgresFactory, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    url = await postgres.new_database()
    async with running_corral(corral_settings(url, tmp_path)):
        pass
    conn = await asyncpg.connect(url)
    try:
        for sql in ("UPDATE audit_records SET action = 'x'", "DELETE FROM audit_records",
                    "TRUNCATE audit_records", "DELETE FROM audit_checkpoints"):  # fmt: skip
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(sql)
        # Even with the privileges back, the trigger refuses.
        await conn.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_records TO CURRENT_USER")
        for sql in ("UPDATE audit_records SET action = 'x'", "DELETE FROM audit_records",
                    "TRUNCATE audit_records"):  # fmt: skip
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM audit_records") == 3
    finally:
        await conn.close()
    await postgres.drop(url)


async def test_export_verify_file_and_a_pinned_key(written: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    run = await cli("audit", "export", "--out", str(out), database_url=written)
    assert run.code == 0, run.err
    assert f"exported {TEAMS + 3} records" in run.out
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["export"]["format"] == "corral-audit/1"
    key = json.loads(lines[1])["public_key"]
    pem = tmp_path / "audit.pem"
    pem.write_text(key["pem"])
    report = await _verify("--file", str(out), "--public-key", str(pem))
    assert report["ok"] and report["records"] == TEAMS + 3 and report["checkpoints"] >= 3
    since = await cli("audit", "export", "--out", "-", "--since", "5", database_url=written)
    partial = tmp_path / "partial.jsonl"
    partial.write_text(since.out)
    assert (await _verify("--file", str(partial)))["first_seq"] == 6

    records = [i for i, line in enumerate(lines) if line.startswith('{"action"')]
    edited = json.loads(lines[records[6]])
    edited["details"]["name"] = "renamed"
    lines[records[6]] = json.dumps(edited)
    out.write_text("\n".join(lines) + "\n")
    run = await cli("audit", "verify", "--file", str(out))
    assert run.code == 1 and f"FAILED at seq {edited['seq']}: hash_mismatch" in run.err
    assert _problem(await _verify("--file", str(out))) == (edited["seq"], "hash_mismatch")


async def test_copying_to_postgres_keeps_the_chain_verifiable(
    postgres: PostgresFactory, tmp_path: Path
) -> None:
    if postgres.unavailable:
        pytest.fail(postgres.unavailable)
    sqlite = f"sqlite:///{tmp_path / 'pilot.db'}"
    async with running_corral(corral_settings(sqlite, tmp_path)) as pilot, pilot.admin() as admin:
        await ok(await admin.post("/v1/teams", json={"name": "a"}), 201)
    target = await postgres.new_database()
    source, dest = Database(sqlite), Database(target)
    try:
        counts = await copy_database(source, dest)
    finally:
        await source.dispose()
        await dest.dispose()
    assert counts["audit_records"] == 4 and counts["audit_head"] == 1
    report = await _verify(database_url=target)
    assert report["ok"] and report["records"] == 4 and report["checkpoints"] == 1
    await postgres.drop(target)
