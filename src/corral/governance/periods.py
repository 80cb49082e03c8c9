"""Budget and rate windows: where the window holding an instant starts, in the budget's timezone.

A daily budget in ``Europe/Paris`` resets at local midnight, DST included; weeks start on Monday.
Window starts are returned in UTC so the ledger keys windows the same way on every replica.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from corral.domain.errors import InvalidRequest
from corral.domain.governance import Period

#: The one window a ``total`` budget has.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"unknown timezone {name!r}; use an IANA name such as 'UTC' or 'Europe/Paris'",
            code="invalid_timezone",
        ) from None


def window_start(period: Period, tz: str, at: datetime) -> datetime:
    """Start (UTC) of the ``period`` window that contains ``at``."""
    if period is Period.TOTAL:
        return EPOCH
    if period is Period.MINUTE:
        return at.astimezone(UTC).replace(second=0, microsecond=0)
    return _local_midnight(_first_day(period, tz, at), zone(tz))


def window_end(period: Period, tz: str, at: datetime) -> datetime | None:
    """When the window containing ``at`` ends (``None`` for ``total``)."""
    if period is Period.TOTAL:
        return None
    if period is Period.MINUTE:
        return window_start(period, tz, at) + timedelta(minutes=1)
    # From the local calendar day, not from the start instant: on a day whose midnight a DST
    # jump skips, the window starts at 01:00 but the next one still starts at midnight.
    day = _first_day(period, tz, at)
    if period is Period.DAILY:
        nxt = day + timedelta(days=1)
    elif period is Period.WEEKLY:
        nxt = day + timedelta(days=7)
    else:
        nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _local_midnight(nxt, zone(tz))


def _first_day(period: Period, tz: str, at: datetime) -> datetime:
    """Local (naive) midnight of the first day of the window that contains ``at``."""
    local = at.astimezone(zone(tz))
    # fold=0: an instant in a repeated hour must not make its day start at the second midnight
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None, fold=0)
    if period is Period.WEEKLY:
        day -= timedelta(days=day.weekday())
    elif period is Period.MONTHLY:
        day = day.replace(day=1)
    return day


def _local_midnight(naive: datetime, tz: ZoneInfo) -> datetime:
    # A wall-clock midnight skipped by a DST jump (a few zones switch at 00:00) resolves to the
    # first instant of that day: fold=0 maps it forward consistently on every replica.
    return naive.replace(tzinfo=tz).astimezone(UTC)
