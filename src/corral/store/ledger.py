"""Budget ledger rows: windows (spent, reserved) and the holds replicas lease from them.

Every change is a delta applied under the row's lock, and a hold's delta only counts against its
window when the hold still exists: a hold swept after its holder died, or given back, cannot be
subtracted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.store.tables import budgets, ledger_holds, ledger_windows


@dataclass(frozen=True, slots=True)
class WindowTotals:
    spent: int
    reserved: int
    soft_alerted: bool


async def _ensure_window(conn: AsyncConnection, account: str, window: datetime) -> None:
    values = {"account": account, "window_start": window, "spent": 0, "reserved": 0,
              "soft_alerted": False}  # fmt: skip
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(ledger_windows).values(**values).on_conflict_do_nothing())


async def lock_window(conn: AsyncConnection, account: str, window: datetime) -> WindowTotals:
    """The window's totals, created if new, locked until the transaction ends."""
    await _ensure_window(conn, account, window)
    query = sa.select(
        ledger_windows.c.spent, ledger_windows.c.reserved, ledger_windows.c.soft_alerted
    ).where(ledger_windows.c.account == account, ledger_windows.c.window_start == window)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).one()
    return WindowTotals(int(row.spent), int(row.reserved), bool(row.soft_alerted))


async def budget_limit(conn: AsyncConnection, budget_id: str) -> int | None:
    """A budget's limit as committed now (not as a replica's snapshot last saw it)."""
    query = sa.select(budgets.c.limit_micros).where(budgets.c.id == budget_id)
    value = (await conn.execute(query)).scalar()
    return None if value is None else int(value)


async def add_reserved(conn: AsyncConnection, account: str, window: datetime, amount: int) -> None:
    await conn.execute(
        sa.update(ledger_windows)
        .where(ledger_windows.c.account == account, ledger_windows.c.window_start == window)
        .values(reserved=ledger_windows.c.reserved + amount)
    )


async def grow_hold(conn: AsyncConnection, hold_id: str, amount: int, expires_at: datetime) -> bool:
    """Add to a live hold; False when it is gone (swept after an outage)."""
    result = await conn.execute(
        sa.update(ledger_holds)
        .where(ledger_holds.c.id == hold_id)
        .values(amount=ledger_holds.c.amount + amount, expires_at=expires_at)
    )
    return bool(result.rowcount)


async def insert_hold(
    conn: AsyncConnection,
    *,
    hold_id: str,
    account: str,
    window: datetime,
    holder: str,
    amount: int,
    expires_at: datetime,
) -> None:
    await conn.execute(
        sa.insert(ledger_holds).values(
            id=hold_id,
            account=account,
            window_start=window,
            holder=holder,
            amount=amount,
            expires_at=expires_at,
        )
    )


async def shrink_hold(
    conn: AsyncConnection, hold_id: str, account: str, window: datetime, amount: int
) -> bool:
    """Take ``amount`` out of a hold and out of its window's reservations, if the hold lives."""
    if amount == 0:
        return True
    result = await conn.execute(
        sa.update(ledger_holds)
        .where(ledger_holds.c.id == hold_id)
        .values(amount=ledger_holds.c.amount - amount)
    )
    if not result.rowcount:
        return False
    await add_reserved(conn, account, window, -amount)
    return True


async def drop_hold(conn: AsyncConnection, hold_id: str) -> None:
    """Delete a hold that was emptied; its window was already adjusted."""
    await conn.execute(sa.delete(ledger_holds).where(ledger_holds.c.id == hold_id))


async def add_spent(conn: AsyncConnection, account: str, window: datetime, amount: int) -> None:
    await _ensure_window(conn, account, window)
    await conn.execute(
        sa.update(ledger_windows)
        .where(ledger_windows.c.account == account, ledger_windows.c.window_start == window)
        .values(spent=ledger_windows.c.spent + amount)
    )


async def renew_holds(conn: AsyncConnection, holder: str, expires_at: datetime) -> set[str]:
    """Extend this holder's holds; the ids that still exist."""
    await conn.execute(
        sa.update(ledger_holds).where(ledger_holds.c.holder == holder).values(expires_at=expires_at)
    )
    rows = await conn.execute(sa.select(ledger_holds.c.id).where(ledger_holds.c.holder == holder))
    return {r.id for r in rows}


async def sweep_expired(conn: AsyncConnection, now: datetime, *, limit: int = 500) -> int:
    """Return expired holds (a dead replica's leases) to their windows; how many."""
    query = (
        sa.select(
            ledger_holds.c.id,
            ledger_holds.c.account,
            ledger_holds.c.window_start,
            ledger_holds.c.amount,
        )
        .where(ledger_holds.c.expires_at < now)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    swept = 0
    for row in (await conn.execute(query)).all():
        deleted = await conn.execute(sa.delete(ledger_holds).where(ledger_holds.c.id == row.id))
        if deleted.rowcount:
            await add_reserved(conn, row.account, row.window_start, -int(row.amount))
            swept += 1
    return swept


async def totals(
    conn: AsyncConnection, keys: list[tuple[str, datetime]]
) -> dict[tuple[str, datetime], WindowTotals]:
    if not keys:
        return {}
    accounts = sorted({a for a, _ in keys})
    rows = await conn.execute(
        sa.select(ledger_windows).where(ledger_windows.c.account.in_(accounts))
    )
    wanted = set(keys)
    found = {}
    for row in rows:
        key = (row.account, row.window_start)
        if key in wanted:
            found[key] = WindowTotals(int(row.spent), int(row.reserved), bool(row.soft_alerted))
    return found


async def mark_soft_alerted(conn: AsyncConnection, account: str, window: datetime) -> bool:
    """Flag a window whose soft threshold was crossed; True for the one caller that flipped it."""
    result = await conn.execute(
        sa.update(ledger_windows)
        .where(
            ledger_windows.c.account == account,
            ledger_windows.c.window_start == window,
            ledger_windows.c.soft_alerted.is_(False),
        )
        .values(soft_alerted=True)
    )
    return bool(result.rowcount)
