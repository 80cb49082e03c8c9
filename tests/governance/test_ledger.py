"""The budget ledger against real databases: exact under concurrency, nothing leaked."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import sqlalchemy as sa

from corral.governance.ledger import BudgetLedger, LedgerTimings, Part, Reservation, Shortfall
from corral.store import migrate
from corral.store.db import Database
from corral.store.tables import ledger_holds, ledger_windows

WINDOW = datetime(1970, 1, 1, tzinfo=UTC)
FIVE_USD = 5_000_000


async def _db(url: str) -> Database:
    db = Database(url)
    await migrate.upgrade(db)
    return db


async def _window(db: Database, account: str) -> tuple[int, int]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(ledger_windows.c.spent, ledger_windows.c.reserved).where(
                    ledger_windows.c.account == account
                )
            )
        ).one()
    return int(row.spent), int(row.reserved)


async def _holds(db: Database) -> int:
    async with db.read() as conn:
        return int(
            (await conn.execute(sa.select(sa.func.count()).select_from(ledger_holds))).scalar_one()
        )


async def _spend(
    ledger: BudgetLedger, account: str, worst: int, actual: int, limit: int = FIVE_USD
) -> bool:
    got = await ledger.reserve([Part(account, WINDOW, limit, worst)], ttl=60)
    if isinstance(got, Shortfall):
        assert got.account == account
        return False
    await asyncio.sleep(random.random() / 200)  # the "call"
    await ledger.settle(got, actual)
    return True


async def test_256_concurrent_against_five_dollars(database_url: str) -> None:
    db = await _db(database_url)
    ledger = BudgetLedger(db, "replica-a", LedgerTimings(hold_ttl=30, idle=0.2, tick=0.1))
    ledger.start()
    try:
        # worst case 5 cents, real cost 3 to 5 cents: at most 100 calls fit
        results = await asyncio.gather(
            *[
                _spend(ledger, "budget:b1", 50_000, random.randint(30_000, 50_000))
                for _ in range(256)
            ]
        )
    finally:
        await ledger.aclose()
    spent, reserved = await _window(db, "budget:b1")
    assert spent <= FIVE_USD
    assert reserved == 0
    assert await _holds(db) == 0
    assert sum(results) >= 100  # nothing refused while a worst case still fitted
    await db.dispose()


async def test_three_ledgers_share_one_budget(database_url: str) -> None:
    dbs = [await _db(database_url) for _ in range(3)]
    ledgers = [
        BudgetLedger(db, f"replica-{i}", LedgerTimings(idle=0.1, tick=0.05))
        for i, db in enumerate(dbs)
    ]
    for ledger in ledgers:
        ledger.start()
    try:
        results = await asyncio.gather(
            *[_spend(ledgers[i % 3], "budget:b2", 50_000, 50_000) for i in range(256)]
        )
    finally:
        for ledger in ledgers:
            await ledger.aclose()
    spent, reserved = await _window(dbs[0], "budget:b2")
    assert spent == 50_000 * sum(results) <= FIVE_USD
    assert reserved == 0
    for db in dbs:
        await db.dispose()


async def test_dead_replica_holds_are_swept(database_url: str) -> None:
    db = await _db(database_url)
    dead = BudgetLedger(db, "dead", LedgerTimings(hold_ttl=0.2))
    got = await dead.reserve([Part("budget:b3", WINDOW, FIVE_USD, 1_000_000)], ttl=60)
    assert isinstance(got, Reservation)
    assert (await _window(db, "budget:b3"))[1] > 0
    # "dead" never settles nor renews; a live replica sweeps its hold after the TTL.
    live = BudgetLedger(db, "live", LedgerTimings(hold_ttl=5))
    await asyncio.sleep(0.3)
    await live.upkeep()
    assert await _window(db, "budget:b3") == (0, 0)
    assert await _holds(db) == 0
    got = await live.reserve([Part("budget:b3", WINDOW, FIVE_USD, FIVE_USD)], ttl=60)
    assert isinstance(got, Reservation)  # the whole budget is available again
    await live.settle(got, 0)
    await live.aclose()
    await db.dispose()


async def test_reservation_is_all_or_nothing(database_url: str) -> None:
    db = await _db(database_url)
    ledger = BudgetLedger(db, "a")
    small = Part("budget:small", WINDOW, 100, 200)
    big = Part("budget:big", WINDOW, FIVE_USD, 200)
    got = await ledger.reserve([big, small], ttl=60)
    assert isinstance(got, Shortfall) and got.account == "budget:small"
    ok = await ledger.reserve([big], ttl=60)
    assert isinstance(ok, Reservation)
    await ledger.settle(ok, 150)
    await ledger.aclose()
    assert await _window(db, "budget:big") == (150, 0)
    await db.dispose()


async def test_lowered_limit_applies_to_the_next_reservation(database_url: str) -> None:
    db = await _db(database_url)
    ledger = BudgetLedger(db, "a")
    first = await ledger.reserve([Part("rate:k", WINDOW, 100, 1, version=1, fixed=True)], ttl=60)
    assert isinstance(first, Reservation)
    await ledger.settle(first, 0)
    # limit dropped to 1 (already used): the slice leased under the old limit is not reused
    again = await ledger.reserve([Part("rate:k", WINDOW, 1, 1, version=2, fixed=True)], ttl=60)
    assert isinstance(again, Shortfall)
    await ledger.aclose()
    assert await _window(db, "rate:k") == (1, 0)
    await db.dispose()
