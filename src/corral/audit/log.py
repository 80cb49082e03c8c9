"""The audit log: appends in the caller's transaction, checkpoints, and the signing key.

``append(conn, entry)`` runs inside the transaction of the change it records, as its last
statement, so a change never commits without its record (nor a record without its change). It
locks the chain head row, which serializes appends across replicas on PostgreSQL (SQLite
serializes writers already); holding it only from the append to the commit keeps that short,
and since nothing takes a lock after it, appends cannot deadlock with each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.audit.decisions import AuditQueue
from corral.audit.record import AuditEntry, seal, to_row
from corral.audit.signing import SigningKey, public_pem
from corral.store import audit as repo
from corral.store.db import Database
from corral.store.types import utcnow
from corral.vault.envelope import Sealed
from corral.vault.service import Vault, audit_key_aad

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(
        self,
        db: Database,
        vault: Vault | None,
        *,
        checkpoint_records: int = 1000,
        checkpoint_seconds: float = 300.0,
    ) -> None:
        self._db = db
        self._vault = vault
        self._every = max(1, checkpoint_records)
        self._seconds = checkpoint_seconds
        self._key: SigningKey | None = None
        self._head: repo.Head | None = None  # as this process last wrote it (a guess)
        self._ticker: asyncio.Task[None] | None = None
        #: Decisions and refusals, committed in batches (see ``decisions``).
        self.queue = AuditQueue(self.record_many)

    # -- the signing key ------------------------------------------------------------------

    async def open(self) -> None:
        """Load the checkpoint signing key, creating it (sealed by the vault) the first time."""
        if self._vault is None:
            return
        async with self._db.read() as conn:
            rows = await repo.signing_keys(conn)
        if not rows:
            async with self._db.write() as conn:
                await repo.lock_head(conn)  # replicas starting together create one key
                rows = await repo.signing_keys(conn)
                if not rows:
                    rows = [self._new_key_row()]
                    await repo.insert_signing_key(conn, rows[0])
        self._key = self._unseal(rows[-1])

    def _new_key_row(self) -> dict[str, Any]:
        assert self._vault is not None
        key = SigningKey.generate()
        sealed, version = self._vault.seal(key.raw(), audit_key_aad(key.key_id))
        return {
            "id": key.key_id, "public_key": public_pem(key.public),
            "ciphertext": sealed.ciphertext, "nonce": sealed.nonce,
            "wrapped_dek": sealed.wrapped_dek, "kek_version": version, "created_at": utcnow(),
        }  # fmt: skip

    def _unseal(self, row: dict[str, Any]) -> SigningKey:
        assert self._vault is not None
        sealed = Sealed(row["ciphertext"], row["nonce"], row["wrapped_dek"])
        return SigningKey.from_raw(
            self._vault.unseal(sealed, row["kek_version"], audit_key_aad(row["id"]))
        )

    @property
    def signing_key_id(self) -> str | None:
        return self._key.key_id if self._key else None

    # -- appending ------------------------------------------------------------------------

    async def append(self, conn: AsyncConnection, item: AuditEntry) -> dict[str, Any]:
        """Record ``item`` in the caller's transaction (call it last); the sealed record."""
        return (await self.append_many(conn, [item]))[0]

    async def append_many(
        self, conn: AsyncConnection, items: Iterable[AuditEntry]
    ) -> list[dict[str, Any]]:
        items = list(items)
        if not items:
            return []
        at, head = utcnow(), self._head
        # Optimistic: the head this process last wrote is usually still the head, and the
        # conditional update that checks so also locks it (one statement instead of two). If
        # another replica appended meanwhile (or our last transaction rolled back), it matches
        # nothing and the head is read under lock instead.
        records = _seal_all(items, head, at) if head is not None else []
        if head is None or not await repo.advance_head(
            conn, head, records[-1]["seq"], records[-1]["hash"]
        ):
            head = await repo.lock_head(conn)
            records = _seal_all(items, head, at)
            if not await repo.advance_head(conn, head, records[-1]["seq"], records[-1]["hash"]):
                raise RuntimeError("the audit chain head moved while locked")
        await repo.insert_records(conn, [to_row(r) for r in records])
        last = records[-1]
        self._head = replace(head, seq=last["seq"], hash=last["hash"])
        if self._key is not None and last["seq"] - head.checkpoint_seq >= self._every:
            await self._sign(conn, last["seq"], last["hash"])
        return records

    async def record(self, item: AuditEntry) -> dict[str, Any]:
        """Record ``item`` in a transaction of its own (nothing else changes with it)."""
        return (await self.record_many([item]))[0]

    async def record_many(self, items: list[AuditEntry]) -> list[dict[str, Any]]:
        async with self._db.write() as conn:
            return await self.append_many(conn, items)

    # -- checkpoints ----------------------------------------------------------------------

    async def _sign(self, conn: AsyncConnection, seq: int, hash_: str) -> dict[str, Any]:
        assert self._key is not None
        at = utcnow()
        checkpoint = self._key.sign_checkpoint(seq, hash_, at)
        await repo.insert_checkpoint(conn, {**checkpoint, "ts": at})
        await repo.mark_checkpoint(conn, seq, at)
        if self._head is not None:
            self._head = replace(self._head, checkpoint_seq=seq, checkpoint_at=at)
        return checkpoint

    def _due(self, head: repo.Head, force: bool) -> bool:
        if head.seq <= head.checkpoint_seq:
            return False
        last = head.checkpoint_at
        return force or last is None or (utcnow() - last).total_seconds() >= self._seconds

    async def checkpoint(self, *, force: bool = False) -> dict[str, Any] | None:
        """Sign the head if records came since the last checkpoint and one is due (or forced)."""
        if self._key is None:
            return None
        async with self._db.read() as conn:
            if not self._due(await repo.read_head(conn), force):
                return None
        async with self._db.write() as conn:
            head = await repo.lock_head(conn)
            if not self._due(head, force):
                return None
            return await self._sign(conn, head.seq, head.hash)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.queue.start()
        self._ticker = asyncio.create_task(self._tick(), name="audit-checkpoints")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, min(self._seconds, 30.0)))
            try:
                await self.checkpoint()
            except Exception:
                log.exception("audit checkpoint failed; retrying")

    async def aclose(self) -> None:
        """Commit what is queued, then sign the tail so it is covered too."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.queue.aclose()
        try:
            await self.checkpoint(force=True)
        except Exception:
            log.exception("final audit checkpoint failed")


def _seal_all(items: list[AuditEntry], head: repo.Head, at: datetime) -> list[dict[str, Any]]:
    records, prev = [], head.hash
    for seq, item in enumerate(items, head.seq + 1):
        record = seal(item, seq, prev, at)
        records.append(record)
        prev = record["hash"]
    return records
