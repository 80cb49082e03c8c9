"""Is the database at the code's schema? Answered without loading Alembic.

Gateway workers check this at startup and must stay small: Alembic (with Mako) costs about ten
megabytes per process just to ask. The head is read from the migration files' own
``revision`` / ``down_revision`` lines (a test keeps this in step with Alembic's answer).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import sqlalchemy as sa

from corral.store.db import Database

_VERSIONS = Path(__file__).parent / "migrations" / "versions"
_FIELD = re.compile(r'^(revision|down_revision)\s*=\s*["\']?([0-9a-f]+|None)["\']?', re.M)


@cache
def head_revision() -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        fields = dict(_FIELD.findall(path.read_text()))
        if "revision" in fields:
            revisions.add(fields["revision"])
        if fields.get("down_revision", "None") != "None":
            parents.add(fields["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def current_revision(db: Database) -> str | None:
    try:
        async with db.read() as conn:
            value = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar()
    except sa.exc.DBAPIError:
        return None  # no table: never migrated
    return str(value) if value is not None else None
