"""The ledger's vocabulary, and reservations held in the database itself (turns).

A turn's budget reservation must outlive the process that made it: a replica that dies mid-turn
leaves the turn to another, which settles it when the turn ends. So a turn reserves with hold
rows named after it (``turn:<id>``), in one transaction under the windows' row locks, and any
replica settles it by that name. (Calls reserve from in-memory slices instead: see ``ledger``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.domain.ids import new_id
from corral.store import ledger as repo
from corral.store.db import Database


@dataclass(frozen=True, slots=True)
class Part:
    """One account a reservation draws on."""

    account: str
    window: datetime
    limit: int
    amount: int
    #: Bumps when the account's limit changes: slices leased under an old limit are given back.
    version: int = 0
    #: Settles at ``amount`` whatever the call cost (request counters), not at the cost.
    fixed: bool = False


@dataclass
class Reservation:
    id: str
    parts: tuple[Part, ...]
    expires: float  # monotonic
    settled: bool = False
    #: Set for a durable reservation (its own hold rows, named so): any replica settles it.
    holder: str | None = None


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why a reservation failed: the account that had no room left."""

    account: str
    limit: int
    available: int


class _Refused(Exception):
    def __init__(self, shortfall: Shortfall) -> None:
        super().__init__(shortfall.account)
        self.shortfall = shortfall


async def room(conn: AsyncConnection, part: Part) -> tuple[int, int]:
    """(limit, room left) of the part's window, locked for this transaction. A budget's limit
    is read as committed now, not as the caller's snapshot saw it."""
    totals = await repo.lock_window(conn, part.account, part.window)
    limit = part.limit
    if part.account.startswith("budget:"):
        current = await repo.budget_limit(conn, part.account.removeprefix("budget:"))
        limit = part.limit if current is None else current
    return limit, limit - totals.spent - totals.reserved


async def reserve(
    db: Database, holder: str, parts: Sequence[Part], expires: datetime
) -> Shortfall | None:
    """Reserve every part under ``holder``, or none (the transaction rolls back)."""
    try:
        async with db.write() as conn:
            for p in sorted(parts, key=lambda p: (p.account, p.window)):
                limit, left = await room(conn, p)
                if left < p.amount:
                    raise _Refused(Shortfall(p.account, limit, max(0, left)))
                await repo.add_reserved(conn, p.account, p.window, p.amount)
                await repo.insert_hold(
                    conn, hold_id=new_id("hold"), account=p.account, window=p.window,
                    holder=holder, amount=p.amount, expires_at=expires,
                )  # fmt: skip
    except _Refused as refused:
        return refused.shortfall
    return None


async def settle(db: Database, holder: str, cost: int) -> list[tuple[str, datetime]]:
    """Replace ``holder``'s holds by ``cost`` on each window; the windows it touched."""
    async with db.write() as conn:
        held = await repo.holds_of(conn, holder)
        for hold_id, account, window, amount in held:
            # Deleting is the claim: a sweeper that got there first already gave it back.
            if await repo.drop_hold(conn, hold_id):
                await repo.add_reserved(conn, account, window, -amount)
            await repo.add_spent(conn, account, window, cost)
    return [(account, window) for _, account, window, _ in held]
