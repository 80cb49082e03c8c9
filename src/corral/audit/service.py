"""Reading the audit trail: listing (scoped to the caller), exporting, verifying, the public key.

Who sees what: an admin sees every record of the org; anyone else sees the records about their
team's resources (``team_id`` is their team) and the records of their own actions (``user_id``
is theirs). Exporting (the whole chain, for a SIEM) is for admins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.audit import batches, export
from corral.audit.canonical import format_ts
from corral.audit.chain import ChainVerifier, Fault, Problem, Report, last_good_checkpoint
from corral.audit.record import from_row
from corral.audit.signing import load_public
from corral.domain.errors import InvalidRequest, NotFound
from corral.domain.records import Page
from corral.identity.authz import Action, Principal, authorize, authorize_org_scope
from corral.store import audit as repo
from corral.store import gateway as gateway_repo
from corral.store.audit import RecordFilter
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow

_BATCH = 2000


def checkpoint_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"], "hash": row["hash"], "ts": format_ts(row["ts"]),
        "key_id": row["key_id"], "signature": row["signature"],
    }  # fmt: skip


async def public_keys(db: Database) -> dict[str, Ed25519PublicKey]:
    async with db.read() as conn:
        rows = await repo.signing_keys(conn)
    return {row["id"]: load_public(row["public_key"]) for row in rows}


async def records_from(db: Database, after_seq: int) -> AsyncIterator[dict[str, Any]]:
    """Every record after ``after_seq``, oldest first, read in batches."""
    while True:
        async with db.read() as conn:
            rows = await repo.records_after(conn, after_seq, _BATCH)
        for row in rows:
            yield from_row(row)
        if len(rows) < _BATCH:
            return
        after_seq = rows[-1]["seq"]


async def verify_database(
    db: Database,
    *,
    from_checkpoint: bool = False,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> Report:
    """Verify the stored chain from genesis, or from the last checkpoint that verifies."""
    keys = keys if keys is not None else await public_keys(db)
    async with db.read() as conn:
        checkpoints = [checkpoint_of(row) for row in await repo.checkpoints(conn)]
    start, anchor = 1, None
    if from_checkpoint:
        found = last_good_checkpoint(checkpoints, keys)
        if found is not None:
            start = anchor = int(found["seq"])
    verifier = ChainVerifier(checkpoints, keys, start=start, anchor=anchor)
    seals: list[Mapping[str, Any]] = []
    async for record in records_from(db, start - 1):
        if not verifier.feed(record):
            break
        if record.get("action") == batches.ACTION:
            seals.append(record)
    report = verifier.finish()
    if report.ok:
        problem = await _check_call_batches(db, seals, whole=start == 1)
        if problem is not None:
            report = replace(report, problem=problem)
    return report


async def _check_call_batches(
    db: Database, seals: list[Mapping[str, Any]], *, whole: bool
) -> Problem | None:
    """Each sealed batch of model-call rows still hashes to its digest; no row is unsealed."""
    sealed: set[str] = set()
    for seal in seals:
        batch_id, details = str(seal["resource_id"]), seal.get("details") or {}
        sealed.add(batch_id)
        async with db.read() as conn:
            rows = await gateway_repo.calls_of_batch(conn, batch_id, str(seal["org_id"]))
        if batches.digest(rows) != details.get("digest") or len(rows) != details.get("calls"):
            return Problem(int(seal["seq"]), Fault.CALLS_MISMATCH,
                           f"the model-call rows of batch {batch_id} are not the "
                           f"{details.get('calls')} this record sealed")  # fmt: skip
    if whole:
        async with db.read() as conn:
            found = await gateway_repo.batch_ids(conn)
        stray = sorted(b or "(none)" for b in found - sealed)
        if stray:
            last = int(seals[-1]["seq"]) if seals else 0
            detail = f"model-call rows of batch {stray[0]} are sealed by no record"
            return Problem(last, Fault.CALLS_UNSEALED, detail)
    return None


async def export_lines(db: Database, since: int = 0) -> AsyncIterator[str]:
    """The export file (see ``export``), line by line, records after seq ``since``."""
    yield export.header_line(since, utcnow())
    async with db.read() as conn:
        keys = await repo.signing_keys(conn)
        pending = [checkpoint_of(row) for row in await repo.checkpoints(conn, since)]
    for key in keys:
        yield export.key_line(key["id"], key["public_key"])
    async for record in records_from(db, since):
        yield export.record_line(record)
        while pending and pending[0]["seq"] <= record["seq"]:
            yield export.checkpoint_line(pending.pop(0))
    # Checkpoints past the records read (appended meanwhile) are left for the next export.


def _utc(bound: datetime | None) -> datetime | None:
    if bound is None:
        return None
    if bound.tzinfo is None:
        raise InvalidRequest("time bounds need a timezone (e.g. 2026-01-01T00:00:00Z)")
    try:
        return bound.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest("time bound out of range", code="invalid_time_range") from None


class AuditService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_records(
        self,
        who: Principal,
        *,
        key_id: str | None = None,
        user_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[dict[str, Any]]:
        """Newest first, within what the caller may see (module docstring)."""
        authorize(who, Action.AUDIT_READ)
        since, until = _utc(since), _utc(until)
        if since is not None and until is not None and since >= until:
            raise InvalidRequest("since must be before until", code="invalid_time_range")
        filters = RecordFilter(
            key_id=key_id, user_id=user_id, resource_type=resource_type,
            resource_id=resource_id, action=action, decision=decision, outcome=outcome,
            since=since, until=until,
        )  # fmt: skip
        visible = None if who.is_admin else (who.team_id or "", who.user_id)
        async with self._db.read() as conn:
            page = await repo.list_records(
                conn, who.org_id, filters, visible_to=visible, cursor=cursor,
                limit=clamp_limit(limit),
            )  # fmt: skip
        return Page([from_row(row) for row in page.items], page.next_cursor)

    async def public_key(self, who: Principal) -> tuple[str, str]:
        """(key id, PEM) of the key that signs new checkpoints."""
        authorize(who, Action.AUDIT_READ)
        async with self._db.read() as conn:
            rows = await repo.signing_keys(conn)
        if not rows:
            raise NotFound("no audit signing key yet", code="no_signing_key")
        return rows[-1]["id"], rows[-1]["public_key"]

    def export(self, who: Principal, since: int) -> AsyncIterator[str]:
        """The whole chain after ``since``, as export lines (admins only)."""
        authorize_org_scope(who, Action.AUDIT_READ)
        return export_lines(self._db, since)
