"""Appending directly: rolled-back appends leave no trace, and two writers (two replicas' logs,
each guessing the head from its own last write) still build one chain."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest

from corral.audit.log import AuditLog
from corral.audit.record import AuditEntry
from corral.audit.service import verify_database
from corral.store import migrate
from corral.store.db import Database
from corral.vault import keyring
from corral.vault.keyring import parse
from corral.vault.service import Vault, rotate_master_key


def _item(n: int) -> AuditEntry:
    return AuditEntry(f"a.{n}", "thing", str(n), "org_1")


async def test_rollbacks_and_interleaved_writers_keep_one_chain(database_url: str) -> None:
    vault = Vault(parse(base64.b64encode(os.urandom(32)).decode()))
    first, second = Database(database_url), Database(database_url)
    await migrate.upgrade(first)
    a = AuditLog(first, vault, checkpoint_records=3)
    b = AuditLog(second, vault, checkpoint_records=3)
    try:
        await a.open()
        await b.open()
        assert a.signing_key_id == b.signing_key_id  # created once, shared through the database
        await a.record(_item(1))
        with pytest.raises(ZeroDivisionError):
            async with first.write() as conn:
                await a.append(conn, _item(2))
                raise ZeroDivisionError  # the change fails: its record goes with it
        await b.record(_item(3))  # takes seq 2, which a's rolled-back guess also named
        await a.record(_item(4))
        await asyncio.gather(*(log.record(_item(n)) for n in range(5, 25) for log in (a, b)))
        assert (await a.checkpoint(force=True)) is not None
        report = await verify_database(first)
        assert report.ok, report.problem
        assert report.records == 43 and report.checkpoints >= 10
    finally:
        await first.dispose()
        await second.dispose()


async def test_rotating_the_master_key_rewraps_the_signing_key(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    await migrate.upgrade(db)
    ring = keyring.load(None, tmp_path / "master.key")
    try:
        log = AuditLog(db, Vault(ring))
        await log.open()
        rotated, _ = await rotate_master_key(db, ring)
        only_new = keyring.Keyring(
            {rotated.active: rotated.active_key}, rotated.active, ring.hash_key
        )
        again = AuditLog(db, Vault(only_new))
        await again.open()  # opens with the new version alone
        assert again.signing_key_id == log.signing_key_id
    finally:
        await db.dispose()
