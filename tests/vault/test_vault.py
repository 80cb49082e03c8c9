"""Envelope encryption, the keyring, scoped resolution and master-key rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from corral.domain.ids import new_id
from corral.domain.records import Org, Runtime
from corral.store import identity as identity_repo
from corral.store import migrate
from corral.store import runtimes as runtime_repo
from corral.store.db import Database
from corral.store.types import utcnow
from corral.vault import envelope, keyring
from corral.vault.service import Vault, VaultError, rotate_master_key


def test_seal_and_open_round_trip_and_bind_to_row() -> None:
    kek = os.urandom(32)
    sealed = envelope.seal(b"secret", kek, b"row-1")
    assert b"secret" not in sealed.ciphertext
    assert envelope.open_sealed(sealed, kek, b"row-1") == b"secret"
    with pytest.raises(InvalidTag):
        envelope.open_sealed(sealed, kek, b"row-2")
    with pytest.raises(InvalidTag):
        envelope.open_sealed(sealed, os.urandom(32), b"row-1")


def test_rewrap_keeps_the_ciphertext_readable_under_the_new_kek() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = envelope.seal(b"v", old, b"a")
    moved = envelope.Sealed(
        sealed.ciphertext, sealed.nonce, envelope.rewrap(sealed.wrapped_dek, old, new, b"a")
    )
    assert envelope.open_sealed(moved, new, b"a") == b"v"


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "master.key"
    ring = keyring.load(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = keyring.load(None, path)
    assert again.active_key == ring.active_key and again.hash_key == ring.hash_key


def test_env_key_and_bad_keys() -> None:
    raw = os.urandom(32)
    ring = keyring.load(base64.b64encode(raw).decode(), Path("/nonexistent"))
    assert ring.active == 1 and ring.active_key == raw
    with pytest.raises(keyring.KeyringError):
        keyring.parse(base64.b64encode(b"short").decode())
    with pytest.raises(keyring.KeyringError):
        ring.save()


async def _seed(db: Database) -> tuple[str, str]:
    now = utcnow()
    org = Org(new_id("org"), "o", now)
    rt = Runtime(new_id("runtime"), org.id, "rt", "opencode", "http://x", {}, now, now)
    async with db.write() as conn:
        await identity_repo.insert_org(conn, org)
        await runtime_repo.insert_runtime(conn, rt)
    return org.id, rt.id


async def test_narrowest_scope_wins_and_rotation_keeps_secrets(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    await migrate.upgrade(db)
    ring = keyring.load(None, tmp_path / "master.key")
    vault = Vault(ring, reload=lambda: keyring.load(None, tmp_path / "master.key"))
    org_id, rt_id = await _seed(db)
    async with db.write() as conn:
        for scope_type, scope_id, value in (
            ("org", org_id, "o"),
            ("team", "team_a", "t"),
            ("agent", "agt_a", "a"),
        ):
            await vault.put(conn, org_id=org_id, runtime_id=rt_id, scope_type=scope_type,
                            scope_id=scope_id, values={"password": value}, at=utcnow())  # fmt: skip
    async with db.read() as conn:
        resolve = vault.resolve
        assert (
            await resolve(conn, runtime_id=rt_id, org_id=org_id, team_id="team_a", agent_id="agt_a")
        ).values == {"password": "a"}  # type: ignore[union-attr]
        assert (
            await resolve(conn, runtime_id=rt_id, org_id=org_id, team_id="team_a", agent_id="agt_b")
        ).values == {"password": "t"}  # type: ignore[union-attr]
        assert (
            await resolve(conn, runtime_id=rt_id, org_id=org_id, team_id="team_b", agent_id=None)
        ).values == {"password": "o"}  # type: ignore[union-attr]
        raw = await runtime_repo.all_secrets(conn)
    assert all(b"password" not in r["ciphertext"] for r in raw)

    rotated, count = await rotate_master_key(db, ring)
    assert count == 3 and rotated.active == 2
    # A running process that still holds the old ring reloads it from the file on demand.
    async with db.read() as conn:
        got = await vault.resolve(
            conn, runtime_id=rt_id, org_id=org_id, team_id=None, agent_id=None
        )
    assert got is not None and got.values == {"password": "o"}
    # A process that never saw the new file cannot read version-2 data keys.
    stale = Vault(ring)
    async with db.read() as conn:
        with pytest.raises(VaultError):
            await stale.resolve(conn, runtime_id=rt_id, org_id=org_id, team_id=None, agent_id=None)
    await db.dispose()
