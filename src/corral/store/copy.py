"""Copy every row from one Corral database to another (``corral db copy``), e.g. SQLite to
PostgreSQL, so a pilot that outgrows the embedded database keeps its history.

The target is migrated first and must be empty; tables are copied parents first, in batches, in
one transaction on the target, so a failed copy leaves it empty. The source should not be
written meanwhile (stop Corral first). Secrets are copied sealed: the target keeps working with
the same master key.
"""

from __future__ import annotations

import sqlalchemy as sa

from corral.domain.errors import Conflict
from corral.store import migrate
from corral.store.db import Database
from corral.store.tables import audit_head, governance_epoch, metadata

BATCH = 2000
#: Rows the migrations themselves create: replaced by the source's, not counted as "not empty".
_SEEDED = (governance_epoch, audit_head)


async def copy_database(source: Database, target: Database) -> dict[str, int]:
    await migrate.upgrade(target)
    counts: dict[str, int] = {}
    async with source.read() as src, target.write() as dst:
        for table in _SEEDED:
            await dst.execute(sa.delete(table))
        for table in metadata.sorted_tables:
            existing = (
                await dst.execute(sa.select(sa.func.count()).select_from(table))
            ).scalar_one()
            if existing:
                raise Conflict(
                    f"target table {table.name} is not empty; copy into a fresh database"
                )
        for table in metadata.sorted_tables:
            copied = 0
            result = await src.stream(sa.select(table))
            async for chunk in result.partitions(BATCH):
                await dst.execute(sa.insert(table), [dict(row._mapping) for row in chunk])
                copied += len(chunk)
            counts[table.name] = copied
    return counts
