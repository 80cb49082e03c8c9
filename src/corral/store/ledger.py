"""Budget ledger rows: windows (spent, reserved) and the holds replicas lease from them.

Every change is a delta applied under the row's lock, and a hold's delta only counts against its
window when the hold still exists: a hold swept after its holder died, or given back, cannot be
subtracted twice. Lock order, in every transaction: window rows first (by account, then window
start), then hold rows; so replicas settling, leasing and sweeping at once never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.store.tables import budgets, events, ledger_holds, ledger_windows, turns


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


async def lock_windows(conn: AsyncConnection, keys: list[tuple[str, datetime]]) -> None:
    """Lock these windows, in the one global order (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name != "postgresql" or not keys:
        return
    # One statement; PostgreSQL locks the rows in the order it returns them, sorted here.
    await conn.execute(
        sa.select(ledger_windows.c.account)
        .where(
            sa.tuple_(ledger_windows.c.account, ledger_windows.c.window_start).in_(
                sorted(set(keys))
            )
        )
        .order_by(ledger_windows.c.account, ledger_windows.c.window_start)
        .with_for_update()
    )


async def shrink_hold(
    conn: AsyncConnection, hold_id: str, account: str, window: datetime, amount: int
) -> bool:
    """Take ``amount`` out of a hold and out of its window's reservations, if the hold lives."""
    if amount == 0:
        return True
    await lock_windows(conn, [(account, window)])
    result = await conn.execute(
        sa.update(ledger_holds)
        .where(ledger_holds.c.id == hold_id)
        .values(amount=ledger_holds.c.amount - amount)
    )
    if not result.rowcount:
        return False
    await add_reserved(conn, account, window, -amount)
    return True


async def drop_hold(conn: AsyncConnection, hold_id: str) -> bool:
    """Delete a hold; False when it was already gone."""
    result = await conn.execute(sa.delete(ledger_holds).where(ledger_holds.c.id == hold_id))
    return bool(result.rowcount)


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


#: Holds a turn owns are named after it; they outlive replicas and end with the turn.
TURN_HOLDER = "turn:"


async def sweep_expired(
    conn: AsyncConnection, now: datetime, *, grace: timedelta, limit: int = 500
) -> int:
    """Return expired holds to their windows (a dead replica's slices; a turn's reservation once
    the turn is over or never started); how many. A running turn's holds get more time. A
    turn's hold that nobody settled (its replica died first) is settled from the turn's log."""
    query = (
        sa.select(
            ledger_holds.c.id,
            ledger_holds.c.holder,
            ledger_holds.c.account,
            ledger_holds.c.window_start,
            ledger_holds.c.amount,
        )
        .where(ledger_holds.c.expires_at < now)
        .order_by(ledger_holds.c.account, ledger_holds.c.window_start)
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    await lock_windows(conn, [(r.account, r.window_start) for r in rows])
    turn_ids = {
        r.holder.removeprefix(TURN_HOLDER) for r in rows if r.holder.startswith(TURN_HOLDER)
    }
    status: dict[str, str] = {}
    recent: set[str] = set()  # ended within the grace: their own replica may settle them yet
    if turn_ids:
        found = await conn.execute(
            sa.select(turns.c.id, turns.c.status, turns.c.completed_at).where(
                turns.c.id.in_(turn_ids)
            )
        )
        for r in found:
            status[r.id] = r.status
            if r.status == "running" or (r.completed_at and r.completed_at > now - grace):
                recent.add(r.id)
    swept = 0
    for row in rows:
        turn_id = row.holder.removeprefix(TURN_HOLDER) if row.holder.startswith(TURN_HOLDER) else ""
        if turn_id in recent:
            await conn.execute(
                sa.update(ledger_holds)
                .where(ledger_holds.c.id == row.id)
                .values(expires_at=now + grace)
            )
            continue
        deleted = await conn.execute(sa.delete(ledger_holds).where(ledger_holds.c.id == row.id))
        if deleted.rowcount:
            await add_reserved(conn, row.account, row.window_start, -int(row.amount))
            if turn_id in status:
                spent = await _turn_cost(conn, turn_id, status[turn_id], int(row.amount))
                await add_spent(conn, row.account, row.window_start, spent)
            swept += 1
    return swept


async def _turn_cost(conn: AsyncConnection, turn_id: str, status: str, estimate: int) -> int:
    """What an ended turn cost by its log: its usage events, else its estimate if it ran."""
    rows = await conn.execute(
        sa.select(events.c.data).where(events.c.turn_id == turn_id, events.c.type == "usage")
    )
    costs = [int((r.data or {}).get("cost_micros") or 0) for r in rows]
    if costs:
        return sum(costs)
    return estimate if status in ("completed", "stopped") else 0


async def holds_of(conn: AsyncConnection, holder: str) -> list[tuple[str, str, datetime, int]]:
    """(id, account, window, amount) of one holder's holds (their windows locked first)."""
    query = sa.select(
        ledger_holds.c.id, ledger_holds.c.account, ledger_holds.c.window_start,
        ledger_holds.c.amount,
    ).where(ledger_holds.c.holder == holder)  # fmt: skip
    rows = [(r.id, r.account, r.window_start, int(r.amount)) for r in await conn.execute(query)]
    await lock_windows(conn, [(a, w) for _, a, w, _ in rows])
    return rows


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


async def live_holds(conn: AsyncConnection, hold_ids: list[str]) -> set[str]:
    """Which of these holds still exist, locked until the transaction ends."""
    if not hold_ids:
        return set()
    query = sa.select(ledger_holds.c.id).where(ledger_holds.c.id.in_(hold_ids))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {r.id for r in await conn.execute(query)}


_SHRINK_HOLD = (
    sa.update(ledger_holds)
    .where(ledger_holds.c.id == sa.bindparam("b_id"))
    .values(amount=ledger_holds.c.amount - sa.bindparam("b_amount"))
)
_MOVE_WINDOW = (
    sa.update(ledger_windows)
    .where(
        ledger_windows.c.account == sa.bindparam("b_account"),
        ledger_windows.c.window_start == sa.bindparam("b_window"),
    )
    .values(
        spent=ledger_windows.c.spent + sa.bindparam("b_spent"),
        reserved=ledger_windows.c.reserved - sa.bindparam("b_released"),
    )
)


async def apply_settlements(
    conn: AsyncConnection,
    holds: list[tuple[str, int]],
    windows: dict[tuple[str, datetime], tuple[int, int]],
    *,
    create: list[tuple[str, datetime]],
) -> None:
    """Many settlements in three statements: shrink holds, move windows' reserved to spent
    (``(spent, released)`` per window), creating the windows in ``create`` first."""
    for account, window in create:
        await _ensure_window(conn, account, window)
    if holds:
        await conn.execute(_SHRINK_HOLD, [{"b_id": h, "b_amount": a} for h, a in holds])
    if windows:
        await conn.execute(
            _MOVE_WINDOW,
            [
                {"b_account": a, "b_window": w, "b_spent": s, "b_released": r}
                for (a, w), (s, r) in windows.items()
            ],
        )
