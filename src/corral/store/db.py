"""Engine creation and transactions, the only place that knows SQLite from PostgreSQL setup.

Repositories take an ``AsyncConnection`` and never commit; services open the transaction with
:meth:`Database.write` (or :meth:`Database.read`) and compose repository calls inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from corral.domain.errors import InvalidRequest

log = logging.getLogger(__name__)

_WRITE = "corral_write"
#: SQLite: how often a running service checkpoints the WAL, and the WAL size (pages of 4 KB) at
#: which a commit does it itself when no checkpointer runs (SQLite's default is 1,000).
CHECKPOINT_SECONDS = 1.0
_AUTOCHECKPOINT_PAGES = 10_000
#: Execution option on write connections naming the writer (see ``Database.origin``).
ORIGIN_OPTION = "corral_origin"
#: Set in a connection's ``info`` by a transaction that moved the governance epoch.
EPOCH_BUMPED = "corral_epoch_bumped"


def normalize_url(url: str) -> str:
    """Accept the URLs people type (``postgresql://``, ``sqlite:///x``) and pick async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # The driver's own transaction handling is switched off so that we can say BEGIN IMMEDIATE for
    # writes: two deferred transactions upgrading to write locks at once would deadlock instead of
    # waiting on busy_timeout.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A safety net only: a running service folds the WAL into the database from a
        # background task (``Database.start_checkpoints``), so no commit pays for a checkpoint.
        cursor.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        conn.exec_driver_sql(mode)


#: PostgreSQL refuses NUL characters in text and JSON (SQLite stores them): the caller's input
#: is at fault, so it is a 422, not a server error.
_BAD_TEXT_STATES = frozenset({"22021", "22P05"})


@asynccontextmanager
async def _text_refused() -> AsyncIterator[None]:
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _BAD_TEXT_STATES:
            raise InvalidRequest(
                "text must not contain NUL characters (\\u0000)", code="invalid_characters"
            ) from exc
        raise


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 20
    ) -> None:
        self.url = normalize_url(url)
        #: Who writes through this handle (the instance id); carried by change notifications so
        #: a replica can tell its own commits, already handed to its readers, from others'.
        self.origin = ""
        #: Called after a commit that moved the governance epoch (``bump_epoch``), so this
        #: process's caches follow at once, before any NOTIFY or periodic check.
        self.epoch_listeners: list[Callable[[], None]] = []
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Each aiosqlite connection is a thread: a process that asks for fewer gets fewer.
            kwargs["pool_size"] = min(8, pool_size)
            kwargs["max_overflow"] = min(8, max_overflow)
        else:
            # Every connection opened is kept (up to pool_size + max_overflow): SQLAlchemy
            # closes an overflow connection as soon as it is returned, so a replica whose
            # load hovers above pool_size opened and closed tens of connections a second,
            # each a PostgreSQL backend fork, authentication and driver setup (three replicas
            # streaming 250 sessions: 40-65 a second, about a core of the machine).
            kwargs["pool_size"] = pool_size + max_overflow
            kwargs["max_overflow"] = 0
            # No pre-ping: it costs a round trip per checkout on the hot path. A connection
            # PostgreSQL dropped fails its next use instead; SQLAlchemy then invalidates the
            # pool, callers retry (pumps and streams do), and recycling bounds idle ones.
            kwargs["pool_recycle"] = 1800
        self.engine = create_async_engine(self.url, **kwargs)
        # SQLite has one writer at a time anyway; queueing writers here, instead of letting
        # them sleep and retry on busy_timeout, cuts the tail latency of concurrent writes.
        # (Write transactions never nest, so this cannot deadlock.)
        self._write_lock: asyncio.Lock | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            self._write_lock = asyncio.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction; committed on success, rolled back on any exception."""
        async with _text_refused(), contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            conn = await stack.enter_async_context(self.engine.connect())
            conn = await conn.execution_options(**{_WRITE: True, ORIGIN_OPTION: self.origin})
            # Read the flag while the connection is surely alive (touching ``info`` after a
            # failed or cancelled transaction can try to reconnect, outside any greenlet).
            conn.info.pop(EPOCH_BUMPED, None)
            async with conn.begin():
                yield conn
                bumped = conn.info.pop(EPOCH_BUMPED, False)
            if bumped:
                for listener in self.epoch_listeners:
                    listener()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads.

        On PostgreSQL its statements run in autocommit: under READ COMMITTED each statement
        sees its own snapshot inside a transaction anyway, so BEGIN and COMMIT would only add
        two round trips to every read (on this hot path, most of a small read's cost). On
        SQLite a read transaction keeps one snapshot for all its statements, and it stays.
        """
        async with _text_refused(), self.engine.connect() as conn:
            if self.is_postgres:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            async with conn.begin():
                yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def optimize(self) -> None:
        """Refresh SQLite's planner statistics (it never gathers them by itself)."""
        if self.dialect == "sqlite":
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA optimize=0x10002")

    def start_checkpoints(self, every: float = CHECKPOINT_SECONDS) -> None:
        """SQLite: fold the WAL into the database every ``every`` seconds from a background task.

        Left to itself SQLite checkpoints inside whichever commit grows the WAL past its mark,
        fsync included: that commit's caller waits several milliseconds (it was most of the p99
        of an audited transaction). A passive checkpoint never blocks writers or readers.
        """
        if self.dialect == "sqlite" and self._checkpointer is None:
            self._checkpointer = asyncio.create_task(
                self._checkpoint_loop(every), name="sqlite-checkpoint"
            )

    async def _checkpoint_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                async with self.engine.connect() as conn:
                    # The driver's connection, outside any transaction (a checkpoint cannot run
                    # inside one of its own connection's).
                    raw: Any = (await conn.get_raw_connection()).driver_connection
                    cursor = await raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    await cursor.close()
            except Exception:
                log.warning("SQLite WAL checkpoint failed; retrying", exc_info=True)

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        await self.engine.dispose()
