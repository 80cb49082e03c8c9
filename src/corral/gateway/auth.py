"""Who is calling: Corral keys presented the way each SDK presents them, cached in memory.

Every model call authenticates, so the key row is not read per call: a presented key is looked
up once and kept for ``ttl`` seconds. Revocation does not wait for the cache: ``decide()`` refuses
a revoked key as soon as the governance epoch moves (a revocation bumps it), and expiry is checked
on every call against the cached row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from corral.domain.errors import Unauthenticated
from corral.domain.governance import Subject
from corral.domain.records import ApiKey
from corral.identity import keys as keygen
from corral.store import identity as identity_repo
from corral.store.db import Database
from corral.store.types import utcnow

_MAX_CACHED = 50_000


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from ``Authorization: Bearer`` (OpenAI SDKs) or ``x-api-key`` (Anthropic)."""
    for name, value in headers:
        if name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


class KeyCache:
    def __init__(self, db: Database, hash_secret: bytes, ttl: float = 30.0) -> None:
        self._db = db
        self._secret = hash_secret
        self._ttl = ttl
        self._cache: dict[str, tuple[ApiKey, Subject, float]] = {}
        # One lookup per key at a time: a burst of calls with a new key waits for the first
        # one's read instead of taking every database connection at once.
        self._loading: dict[str, asyncio.Future[tuple[ApiKey, Subject, float]]] = {}

    async def subject(self, plaintext: str | None) -> tuple[ApiKey, Subject]:
        if not plaintext:
            raise Unauthenticated("a Corral key is required (Authorization: Bearer, or x-api-key)")
        now = time.monotonic()
        hit = self._cache.get(plaintext)
        if hit is None or now - hit[2] > self._ttl:
            hit = await self._single_load(plaintext, now)
        key = hit[0]
        # A revoked key is not refused here: ``decide()`` refuses it (key_revoked), so the
        # refusal is a recorded decision like any other.
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise Unauthenticated("API key has expired", code="key_expired")
        return key, hit[1]

    async def _single_load(self, plaintext: str, now: float) -> tuple[ApiKey, Subject, float]:
        pending = self._loading.get(plaintext)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[plaintext] = future
        try:
            found = await self._load(plaintext, now)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # marked retrieved: nobody else may be waiting
            else:
                future.cancel()
            raise
        else:
            future.set_result(found)
            return found
        finally:
            del self._loading[plaintext]

    async def _load(self, plaintext: str, now: float) -> tuple[ApiKey, Subject, float]:
        prefix = keygen.prefix_of(plaintext)
        async with self._db.read() as conn:
            key, _epoch = await identity_repo.get_key_and_epoch(conn, prefix)
        if key is None or not keygen.matches(plaintext, key.hash, self._secret):
            self._cache.pop(plaintext, None)
            raise Unauthenticated("API key is not valid")
        subject = Subject(
            org_id=key.org_id, team_id=key.team_id, agent_id=key.agent_id, user_id=key.user_id,
            key_id=key.id, session_id=key.session_id,
        )  # fmt: skip
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()  # crude but bounded: a flood of distinct keys cannot grow it
        entry = self._cache[plaintext] = (key, subject, now)
        return entry

    def forget(self) -> None:
        self._cache.clear()
