"""Opaque keyset cursors: newest first, ordered by (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from corral.domain.errors import InvalidRequest
from corral.store.types import UTCDateTime

MAX_LIMIT = 200


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, item_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(item_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidRequest("cursor is not one this API issued", code="invalid_cursor") from exc


def newest_first(
    query: sa.Select[Any], table: sa.Table, cursor: str | None, limit: int
) -> sa.Select[Any]:
    """Apply keyset pagination; fetches ``limit + 1`` rows so the caller can tell if more remain."""
    if cursor:
        created, item_id = decode_cursor(cursor)
        # A row-value comparison, so both databases use it as an index bound (an OR of the
        # two columns makes PostgreSQL scan every row before the page).
        query = query.where(
            sa.tuple_(table.c.created_at, table.c.id)
            < sa.tuple_(sa.literal(created, UTCDateTime), sa.literal(item_id))
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)


def clamp_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    last = kept[-1]
    return kept, encode_cursor(last.created_at, last.id)
