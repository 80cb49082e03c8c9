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
