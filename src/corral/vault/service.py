"""The credential vault: write-only secrets per runtime, scoped to org, team or agent.

Values are sealed on write and opened only at call time, in :meth:`Vault.resolve`, for the one
session that needs them; nothing here returns a value to an API caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.errors import CorralError
from corral.domain.ids import new_id
from corral.store import audit as audit_repo
from corral.store import gateway as gateway_repo
from corral.store import runtimes as runtime_repo
from corral.store.db import Database
from corral.vault import envelope
from corral.vault.keyring import Keyring, KeyringError

#: Narrowest first: the first scope that has a secret wins.
SCOPE_ORDER = ("agent", "team", "org")


class VaultError(CorralError):
    code = "vault_error"
    title = "Vault error"


def audit_key_aad(key_id: str) -> bytes:
    """What binds a sealed audit signing key to its row."""
    return f"corral-audit-key|{key_id}".encode()


def upstream_key_aad(upstream_id: str) -> bytes:
    """Binds a gateway upstream's sealed API key to its row."""
    return f"corral-upstream|{upstream_id}".encode()


def _aad(secret_id: str, runtime_id: str, scope_type: str, scope_id: str) -> bytes:
    return f"corral-secret|{secret_id}|{runtime_id}|{scope_type}|{scope_id}".encode()


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A located secret row, still sealed; ``version_stamp`` changes whenever it is replaced."""

    row: dict[str, Any]
    version_stamp: str


@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    values: dict[str, Any]
    secret_id: str
    version_stamp: str  # changes whenever the secret is replaced: a cache key, not a secret


class Vault:
    def __init__(self, keyring: Keyring, reload: Callable[[], Keyring] | None = None) -> None:
        self._keyring = keyring
        self._reload = reload

    @property
    def hash_key(self) -> bytes:
        return self._keyring.hash_key

    def _kek(self, version: int) -> bytes:
        try:
            return self._keyring.key(version)
        except KeyringError:
            # Another process rotated the master key; pick up the new keyring file.
            if self._reload is None:
                raise
            self._keyring = self._reload()
            return self._keyring.key(version)

    async def put(
        self,
        conn: AsyncConnection,
        *,
        org_id: str,
        runtime_id: str,
        scope_type: str,
        scope_id: str,
        values: dict[str, Any],
        at: datetime,
    ) -> None:
        existing = await runtime_repo.secret_id_for(conn, runtime_id, scope_type, scope_id)
        secret_id = existing or new_id("secret")
        sealed = envelope.seal(
            json.dumps(values).encode(),
            self._keyring.active_key,
            _aad(secret_id, runtime_id, scope_type, scope_id),
        )
        await runtime_repo.upsert_secret(
            conn,
            {
                "id": secret_id,
                "org_id": org_id,
                "runtime_id": runtime_id,
                "scope_type": scope_type,
                "scope_id": scope_id,
                "ciphertext": sealed.ciphertext,
                "nonce": sealed.nonce,
                "wrapped_dek": sealed.wrapped_dek,
                "kek_version": self._keyring.active,
                "created_at": at,
                "updated_at": at,
            },
            exists=existing is not None,
        )

    async def locate(
        self,
        conn: AsyncConnection,
        *,
        runtime_id: str,
        org_id: str,
        team_id: str | None,
        agent_id: str | None,
    ) -> SecretRef | None:
        """The stored secret that applies (narrowest scope), without decrypting it."""
        scopes = [("org", org_id)]
        if team_id:
            scopes.append(("team", team_id))
        if agent_id:
            scopes.append(("agent", agent_id))
        rows = await runtime_repo.secrets_for(conn, runtime_id, scopes)
        if not rows:
            return None
        row = min(rows, key=lambda r: SCOPE_ORDER.index(r["scope_type"]))
        return SecretRef(row, f"{row['id']}:{row['updated_at'].isoformat()}")

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[envelope.Sealed, int]:
        """Seal one of Corral's own secrets (not a credential) under the active master key."""
        return envelope.seal(plaintext, self._keyring.active_key, aad), self._keyring.active

    def unseal(self, sealed: envelope.Sealed, kek_version: int, aad: bytes) -> bytes:
        try:
            return envelope.open_sealed(sealed, self._kek(kek_version), aad)
        except (InvalidTag, KeyringError) as exc:
            raise VaultError("a sealed value cannot be decrypted with this master key") from exc

    def open(self, ref: SecretRef) -> dict[str, Any]:
        row = ref.row
        aad = _aad(row["id"], row["runtime_id"], row["scope_type"], row["scope_id"])
        sealed = envelope.Sealed(row["ciphertext"], row["nonce"], row["wrapped_dek"])
        try:
            plaintext = envelope.open_sealed(sealed, self._kek(row["kek_version"]), aad)
        except (InvalidTag, KeyringError) as exc:
            raise VaultError("stored credentials cannot be decrypted with this master key") from exc
        values: dict[str, Any] = json.loads(plaintext)
        return values

    async def resolve(
        self,
        conn: AsyncConnection,
        *,
        runtime_id: str,
        org_id: str,
        team_id: str | None,
        agent_id: str | None,
    ) -> ResolvedCredentials | None:
        ref = await self.locate(
            conn, runtime_id=runtime_id, org_id=org_id, team_id=team_id, agent_id=agent_id
        )
        if ref is None:
            return None
        return ResolvedCredentials(self.open(ref), ref.row["id"], ref.version_stamp)


async def rotate_master_key(db: Database, keyring: Keyring) -> tuple[Keyring, int]:
    """Add a new KEK version, re-wrap every data key under it, then make it active.

    Order matters for zero downtime: the file with both versions is written first, so running
    servers that meet a data key wrapped under the new version can reload and read it; the old
    version stays in the ring so rows not yet re-wrapped still open.
    """
    rotated = keyring.with_new_key()
    rotated.save()
    count = 0
    async with db.write() as conn:
        for row in await runtime_repo.all_secrets(conn):
            aad = _aad(row["id"], row["runtime_id"], row["scope_type"], row["scope_id"])
            wrapped = envelope.rewrap(
                row["wrapped_dek"], rotated.key(row["kek_version"]), rotated.active_key, aad
            )
            await runtime_repo.rewrap_secret(conn, row["id"], wrapped, rotated.active)
            count += 1
        for row in await audit_repo.signing_keys(conn):  # not counted: not a credential
            aad = audit_key_aad(row["id"])
            wrapped = envelope.rewrap(
                row["wrapped_dek"], rotated.key(row["kek_version"]), rotated.active_key, aad
            )
            await audit_repo.rewrap_signing_key(conn, row["id"], wrapped, rotated.active)
        for upstream, row in await gateway_repo.sealed_upstreams(conn):
            if row["wrapped_dek"] is None:
                continue
            aad = upstream_key_aad(upstream.id)
            wrapped = envelope.rewrap(
                row["wrapped_dek"], rotated.key(row["kek_version"]), rotated.active_key, aad
            )
            await gateway_repo.rewrap_upstream_key(conn, upstream.id, wrapped, rotated.active)
            count += 1
    return rotated, count
