"""Upstream API keys are sealed in the vault and follow a master-key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.store import gateway as repo
from corral.store import migrate
from corral.store.db import Database
from corral.store.types import utcnow
from corral.vault import envelope, keyring
from corral.vault.service import Vault, VaultError, rotate_master_key, upstream_key_aad
from tests.support.databases import sqlite_url


async def test_upstream_keys_are_sealed_and_rewrapped_on_rotation(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path))
    await migrate.upgrade(db)
    ring = keyring.load(None, tmp_path / "master.key")
    vault = Vault(ring, reload=lambda: keyring.load(None, tmp_path / "master.key"))
    sealed, version = vault.seal(b"sk-upstream", upstream_key_aad("ups_1"))
    async with db.write() as conn:
        org = "org_1"
        await conn.exec_driver_sql(
            "INSERT INTO orgs (id, name, created_at) VALUES ('org_1', 'o', '2026-01-01')"
        )
        await repo.insert_upstream(conn, {
            "id": "ups_1", "org_id": org, "name": "u", "kind": "openai",
            "base_url": "http://x/v1", "timeout_seconds": 5.0, "headers": {},
            "ciphertext": sealed.ciphertext, "nonce": sealed.nonce,
            "wrapped_dek": sealed.wrapped_dek, "kek_version": version,
            "created_at": utcnow(), "updated_at": utcnow(),
        })  # fmt: skip
    rotated, count = await rotate_master_key(db, ring)
    assert count == 1 and rotated.active == version + 1
    async with db.read() as conn:
        ((_, row),) = await repo.sealed_upstreams(conn)
    box = envelope.Sealed(row["ciphertext"], row["nonce"], row["wrapped_dek"])
    assert row["kek_version"] == rotated.active and b"sk-upstream" not in row["ciphertext"]
    assert vault.unseal(box, row["kek_version"], upstream_key_aad("ups_1")) == b"sk-upstream"
    with pytest.raises(VaultError):  # bound to its row
        vault.unseal(box, row["kek_version"], upstream_key_aad("ups_2"))
    await db.dispose()
