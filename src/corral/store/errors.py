"""Turn driver integrity errors into domain conflicts, once, for every repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy.exc

from corral.domain.errors import Conflict


@asynccontextmanager
async def conflict_on_duplicate(detail: str) -> AsyncIterator[None]:
    try:
        yield
    except sqlalchemy.exc.IntegrityError as exc:
        raise Conflict(detail) from exc


def is_transient(exc: BaseException) -> bool:
    """A failure that retrying the same transaction can cure (a deadlock or serialization
    failure PostgreSQL chose this transaction to lose)."""
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    text = str(exc.orig or exc).lower()
    return "deadlock" in text or "could not serialize" in text
