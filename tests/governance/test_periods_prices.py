"""Budget windows in local time (DST included) and model prices in integer micro-dollars.

Expected instants are written out by hand in UTC, so a wrong offset or a wrong week start shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.domain.errors import InvalidRequest
from corral.domain.governance import Period
from corral.domain.records import ModelPriceRow
from corral.governance.periods import EPOCH, window_end, window_start, zone
from corral.governance.prices import (
    SHIPPED_PRICES,
    ModelPrice,
    PriceTable,
    candidates,
    cost_micros,
    worst_case_micros,
)
from corral.governance.snapshot import compile_snapshot


def z(text: str) -> datetime:
    """An instant written in UTC, e.g. ``z("2026-03-28 23:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


D, W, M = Period.DAILY, Period.WEEKLY, Period.MONTHLY

WINDOWS = [
    # UTC; 2026-03-15 is a Sunday, weeks start on Monday
    (D, "UTC", z("2026-03-15 13:45"), z("2026-03-15 00:00"), z("2026-03-16 00:00")),
    (D, "UTC", z("2026-03-16 00:00"), z("2026-03-16 00:00"), z("2026-03-17 00:00")),
    (D, "UTC", z("2026-03-15 23:59:59.999999"), z("2026-03-15 00:00"), z("2026-03-16 00:00")),
    (W, "UTC", z("2026-03-15 13:45"), z("2026-03-09 00:00"), z("2026-03-16 00:00")),
    (W, "UTC", z("2026-03-16 00:00"), z("2026-03-16 00:00"), z("2026-03-23 00:00")),
    (W, "UTC", z("2026-01-01 12:00"), z("2025-12-29 00:00"), z("2026-01-05 00:00")),
    (M, "UTC", z("2026-03-15 13:45"), z("2026-03-01 00:00"), z("2026-04-01 00:00")),
    (M, "UTC", z("2026-12-31 23:59"), z("2026-12-01 00:00"), z("2027-01-01 00:00")),
    (M, "UTC", z("2028-02-29 12:00"), z("2028-02-01 00:00"), z("2028-03-01 00:00")),
    (M, "UTC", z("2026-01-31 12:00"), z("2026-01-01 00:00"), z("2026-02-01 00:00")),
    # Europe/Paris: CET (+1) until 2026-03-29 02:00 local, then CEST (+2) until 2026-10-25 03:00
    (D, "Europe/Paris", z("2026-03-15 13:45"), z("2026-03-14 23:00"), z("2026-03-15 23:00")),
    (D, "Europe/Paris", z("2026-03-29 10:00"), z("2026-03-28 23:00"), z("2026-03-29 22:00")),
    (D, "Europe/Paris", z("2026-03-28 23:30"), z("2026-03-28 23:00"), z("2026-03-29 22:00")),
    (D, "Europe/Paris", z("2026-03-28 22:59"), z("2026-03-27 23:00"), z("2026-03-28 23:00")),
    (D, "Europe/Paris", z("2026-03-29 01:00"), z("2026-03-28 23:00"), z("2026-03-29 22:00")),
    (D, "Europe/Paris", z("2026-10-25 12:00"), z("2026-10-24 22:00"), z("2026-10-25 23:00")),
    (D, "Europe/Paris", z("2026-10-25 00:30"), z("2026-10-24 22:00"), z("2026-10-25 23:00")),
    (D, "Europe/Paris", z("2026-10-25 01:30"), z("2026-10-24 22:00"), z("2026-10-25 23:00")),
    (W, "Europe/Paris", z("2026-03-29 10:00"), z("2026-03-22 23:00"), z("2026-03-29 22:00")),
    (W, "Europe/Paris", z("2026-03-22 23:30"), z("2026-03-22 23:00"), z("2026-03-29 22:00")),
    (W, "Europe/Paris", z("2026-03-22 22:30"), z("2026-03-15 23:00"), z("2026-03-22 23:00")),
    (W, "Europe/Paris", z("2026-10-25 12:00"), z("2026-10-18 22:00"), z("2026-10-25 23:00")),
    (M, "Europe/Paris", z("2026-03-29 10:00"), z("2026-02-28 23:00"), z("2026-03-31 22:00")),
    (M, "Europe/Paris", z("2026-03-31 21:59"), z("2026-02-28 23:00"), z("2026-03-31 22:00")),
    (M, "Europe/Paris", z("2026-03-31 22:00"), z("2026-03-31 22:00"), z("2026-04-30 22:00")),
    (M, "Europe/Paris", z("2026-10-25 12:00"), z("2026-09-30 22:00"), z("2026-10-31 23:00")),
    (M, "Europe/Paris", z("2026-12-31 23:30"), z("2026-12-31 23:00"), z("2027-01-31 23:00")),
    # America/New_York: EDT (-4) from 2026-03-08 02:00 local until 2026-11-01 02:00, else EST
    (D, "America/New_York", z("2026-03-08 12:00"), z("2026-03-08 05:00"), z("2026-03-09 04:00")),
    (D, "America/New_York", z("2026-11-01 17:00"), z("2026-11-01 04:00"), z("2026-11-02 05:00")),
    (D, "America/New_York", z("2026-11-01 05:30"), z("2026-11-01 04:00"), z("2026-11-02 05:00")),
    (D, "America/New_York", z("2026-11-01 06:30"), z("2026-11-01 04:00"), z("2026-11-02 05:00")),
    (D, "America/New_York", z("2026-11-01 03:59"), z("2026-10-31 04:00"), z("2026-11-01 04:00")),
    (D, "America/New_York", z("2026-11-02 04:59"), z("2026-11-01 04:00"), z("2026-11-02 05:00")),
    (W, "America/New_York", z("2026-11-01 17:00"), z("2026-10-26 04:00"), z("2026-11-02 05:00")),
    (W, "America/New_York", z("2026-03-08 12:00"), z("2026-03-02 05:00"), z("2026-03-09 04:00")),
    (M, "America/New_York", z("2026-10-15 12:00"), z("2026-10-01 04:00"), z("2026-11-01 04:00")),
    (M, "America/New_York", z("2026-11-01 04:00"), z("2026-11-01 04:00"), z("2026-12-01 05:00")),
    (M, "America/New_York", z("2026-11-01 03:59"), z("2026-10-01 04:00"), z("2026-11-01 04:00")),
    (M, "America/New_York", z("2026-01-01 03:00"), z("2025-12-01 05:00"), z("2026-01-01 05:00")),
    # America/Santiago skips local midnight (00:00 -> 01:00) on 2025-09-07: the day starts at
    # 01:00 -03 and the next one at 00:00 -03.
    (D, "America/Santiago", z("2025-09-07 15:00"), z("2025-09-07 04:00"), z("2025-09-08 03:00")),
    (D, "America/Santiago", z("2025-09-08 03:30"), z("2025-09-08 03:00"), z("2025-09-09 03:00")),
    (D, "America/Santiago", z("2025-09-07 03:59"), z("2025-09-06 04:00"), z("2025-09-07 04:00")),
    # Asia/Kathmandu is +05:45 all year
    (D, "Asia/Kathmandu", z("2026-06-01 18:14"), z("2026-05-31 18:15"), z("2026-06-01 18:15")),
    (D, "Asia/Kathmandu", z("2026-06-01 18:15"), z("2026-06-01 18:15"), z("2026-06-02 18:15")),
]


@pytest.mark.parametrize(("period", "tz", "at", "start", "end"), WINDOWS)
def test_windows(period: Period, tz: str, at: datetime, start: datetime, end: datetime) -> None:
    got_start, got_end = window_start(period, tz, at), window_end(period, tz, at)
    assert (got_start, got_end) == (start, end)
    assert got_start.utcoffset() == timedelta(0)
    assert got_end is not None and got_end.utcoffset() == timedelta(0)
    # the same instant written in another offset lands in the same window
    shifted = at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (window_start(period, tz, shifted), window_end(period, tz, shifted)) == (start, end)


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York", "Not/AZone"])
@pytest.mark.parametrize(
    "at", [z("1970-01-01 00:00"), z("2026-03-29 01:30"), z("2099-12-31 23:59")]
)
def test_total_is_one_window_from_the_epoch(tz: str, at: datetime) -> None:
    assert window_start(Period.TOTAL, tz, at) == EPOCH == z("1970-01-01 00:00")
    assert window_end(Period.TOTAL, tz, at) is None


@pytest.mark.parametrize(
    ("at", "start"),
    [
        (z("2026-03-29 01:59:59.999999"), z("2026-03-29 01:59")),
        (z("2026-03-29 02:00"), z("2026-03-29 02:00")),
        (z("2026-12-31 23:59:30"), z("2026-12-31 23:59")),
        # a non-UTC offset is converted, not dropped: 10:30:15 +05:45 is 04:45:15 UTC
        (datetime(2026, 6, 1, 10, 30, 15, tzinfo=ZoneInfo("Asia/Kathmandu")), z("2026-06-01 04:45")),
    ],
)  # fmt: skip
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "Asia/Kathmandu"])
def test_minute_windows_are_utc_minutes(at: datetime, start: datetime, tz: str) -> None:
    got = window_start(Period.MINUTE, tz, at)
    assert got == start and got.utcoffset() == timedelta(0)
    assert window_end(Period.MINUTE, tz, at) == start + timedelta(minutes=1)


@pytest.mark.parametrize("name", ["Not/AZone", "Europe/Pariss", "", "../../etc/passwd", "UTC+2"])
@pytest.mark.parametrize("period", [Period.DAILY, Period.WEEKLY, Period.MONTHLY])
def test_unknown_timezone_is_refused(name: str, period: Period) -> None:
    for call in (zone, lambda n: window_start(period, n, z("2026-01-01 00:00")),
                 lambda n: window_end(period, n, z("2026-01-01 00:00"))):  # fmt: skip
        with pytest.raises(InvalidRequest) as raised:
            call(name)
        assert raised.value.code == "invalid_timezone"


# Zones with DST at odd hours: at 00:00 (Santiago, Havana, Asuncion), 30-minute shifts
# (Lord Howe), +05:45 (Kathmandu), a skipped day (Apia, 2011-12-30).
ZONES = [
    "UTC", "Europe/Paris", "America/New_York", "America/Santiago", "America/Havana",
    "America/Asuncion", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Apia", "Asia/Tehran",
    "America/Sao_Paulo",
]  # fmt: skip


def _transitions() -> list[tuple[str, datetime]]:
    """(zone, a UTC noon just after the zone's offset changed), 2000-2035."""
    found = []
    for name in ZONES:
        tz, day = ZoneInfo(name), datetime(2000, 1, 1, 12, tzinfo=UTC)
        offset = day.astimezone(tz).utcoffset()
        while day.year < 2035:
            day += timedelta(days=1)
            now = day.astimezone(tz).utcoffset()
            if now != offset:
                found.append((name, day))
                offset = now
    return found


TRANSITIONS = _transitions()
SPAN = datetime(2000, 1, 1), datetime(2035, 1, 1)
anywhere = st.tuples(st.sampled_from(ZONES), st.datetimes(*SPAN, timezones=st.just(UTC)))
#: Instants within three days of a DST change, where windows go wrong if they do.
near_dst = st.builds(
    lambda pair, seconds: (pair[0], pair[1] + timedelta(seconds=seconds)),
    st.sampled_from(TRANSITIONS),
    st.floats(-3 * 86400, 3 * 86400, allow_nan=False),
)


def test_the_zones_do_change_offsets() -> None:
    assert {name for name, _ in TRANSITIONS} == set(ZONES) - {"UTC", "Asia/Kathmandu"}


@settings(max_examples=400, deadline=None)
@given(
    where=st.one_of(anywhere, near_dst),
    period=st.sampled_from([Period.DAILY, Period.WEEKLY, Period.MONTHLY]),
)
def test_windows_tile_time(where: tuple[str, datetime], period: Period) -> None:
    """Windows contain their instant, start on a local day boundary and follow each other."""
    tz, at = where
    start, end = window_start(period, tz, at), window_end(period, tz, at)
    assert end is not None
    assert start <= at < end
    assert window_start(period, tz, start) == start
    assert window_end(period, tz, start) == end
    # the next window begins exactly where this one ends: no gap, no overlap
    assert window_start(period, tz, end) == end
    assert window_end(period, tz, end - timedelta(microseconds=1)) == end
    local = start.astimezone(ZoneInfo(tz))
    before = (start - timedelta(microseconds=1)).astimezone(ZoneInfo(tz))
    assert before.date() < local.date()  # the first instant of a local day
    if period is Period.WEEKLY:
        assert local.weekday() == 0
        assert timedelta(days=6) <= end - start < timedelta(days=8)  # Apia skipped a day
    elif period is Period.MONTHLY:
        assert local.day == 1
    else:
        assert timedelta(hours=22) <= end - start <= timedelta(hours=25)


# -- prices ------------------------------------------------------------------------------------

SHIPPED = PriceTable(SHIPPED_PRICES)


@pytest.mark.parametrize(
    ("model", "found", "inp", "out"),
    [
        ("gpt-4o", "gpt-4o", 2_500_000, 10_000_000),
        ("gpt-4o-mini", "gpt-4o-mini", 150_000, 600_000),
        ("claude-sonnet-4-5", "claude-sonnet-4-5", 3_000_000, 15_000_000),
        ("claude-sonnet-4", "claude-sonnet-4", 3_000_000, 15_000_000),
        ("claude-opus-4-1", "claude-opus-4-1", 15_000_000, 75_000_000),
        # provider prefixes
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", 3_000_000, 15_000_000),
        ("openai/gpt-4o-mini", "gpt-4o-mini", 150_000, 600_000),
        ("openrouter/anthropic/claude-haiku-4-5", "claude-haiku-4-5", 1_000_000, 5_000_000),
        # dated snapshots and -latest
        ("gpt-4o-2024-08-06", "gpt-4o", 2_500_000, 10_000_000),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", 150_000, 600_000),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 3_000_000, 15_000_000),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku", 800_000, 4_000_000),
        ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 3_000_000, 15_000_000),
        ("openai/gpt-4o-2024-08-06", "gpt-4o", 2_500_000, 10_000_000),
    ],
)
def test_price_lookup(model: str, found: str, inp: int, out: int) -> None:
    price = SHIPPED.lookup(model)
    assert price is not None
    assert (price.model, price.input_micros, price.output_micros) == (found, inp, out)


@pytest.mark.parametrize(
    "model",
    [
        "mystery-model",
        "gpt-4o-2024",  # not a snapshot suffix
        "claude-sonnet-4-5-2025",
        "claude-sonnet-4-5-20250929x",
        "gpt-4o/extra",
        "gpt-4",  # a prefix of a priced name is not that name
        "",
    ],
)
def test_unpriced_models(model: str) -> None:
    assert SHIPPED.lookup(model) is None


def test_candidates_most_specific_first() -> None:
    assert candidates("anthropic/claude-sonnet-4-5-20250929") == [
        "anthropic/claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5",
    ]
    assert candidates("gpt-4o") == ["gpt-4o"]
    table = PriceTable([
        ModelPrice("x", 1, 1), ModelPrice("x-20250101", 2, 2), ModelPrice("p/x-20250101", 3, 3),
    ])  # fmt: skip
    assert table.lookup("p/x-20250101").input_micros == 3  # type: ignore[union-attr]
    assert table.lookup("q/x-20250101").input_micros == 2  # type: ignore[union-attr]
    assert table.lookup("q/x-20250202").input_micros == 1  # type: ignore[union-attr]


def test_org_prices_override_the_shipped_table_for_that_org_only() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        ModelPriceRow("o1", "gpt-4o", 1_000_000, 4_000_000, None, None, t0),
        ModelPriceRow("o1", "in-house-7b", 10_000, 20_000, 5_000, None, t0),
    ]
    snap = compile_snapshot(1, [], [], rows)
    o1, o2 = snap.price_table("o1"), snap.price_table("o2")
    assert o1.lookup("openai/gpt-4o-2024-08-06") == ModelPrice("gpt-4o", 1_000_000, 4_000_000)
    assert o1.lookup("in-house-7b") == ModelPrice("in-house-7b", 10_000, 20_000, 5_000, None)
    assert o1.lookup("claude-sonnet-4-5") is not None  # the rest of the shipped table remains
    assert o2.lookup("gpt-4o").input_micros == 2_500_000  # type: ignore[union-attr]
    assert o2.lookup("in-house-7b") is None


SONNET = ModelPrice("claude-sonnet-4-5", 3_000_000, 15_000_000, 300_000)
GPT4O = ModelPrice("gpt-4o", 2_500_000, 10_000_000, 1_250_000)
MINI = ModelPrice("gpt-4o-mini", 150_000, 600_000, 75_000)
NO_CACHE = ModelPrice("plain", 2_000_000, 8_000_000)
WRITE = ModelPrice("writes", 3_000_000, 15_000_000, 300_000, 3_750_000)


@pytest.mark.parametrize(
    ("price", "tokens", "cached", "micros"),
    [
        (SONNET, (0, 0), (0, 0), 0),
        (SONNET, (1, 0), (0, 0), 3),
        (SONNET, (1000, 500), (0, 0), 10_500),
        (SONNET, (1_000_000, 1_000_000), (0, 0), 18_000_000),
        (GPT4O, (1, 0), (0, 0), 3),  # 2.5 micros, rounded up
        (GPT4O, (2, 0), (0, 0), 5),
        (MINI, (1, 0), (0, 0), 1),  # 0.15 -> 1
        (MINI, (7, 0), (0, 0), 2),  # 1.05 -> 2
        (MINI, (1, 1), (0, 0), 1),  # 0.15 + 0.6 = 0.75: rounded once, on the total
        (MINI, (0, 0), (1, 0), 1),  # 0.075 -> 1
        # cached reads at their own price; writes at input price unless priced
        (GPT4O, (0, 0), (1000, 0), 1250),
        (GPT4O, (0, 0), (0, 1000), 2500),
        (GPT4O, (1000, 100), (2000, 0), 2500 + 1000 + 2500),
        (NO_CACHE, (0, 0), (1000, 1000), 4000),  # no cache prices: as input
        (WRITE, (0, 0), (1000, 1000), 300 + 3750),
        (WRITE, (1, 1), (1, 1), 23),  # 3 + 15 + 0.3 + 3.75 = 22.05 -> 23
    ],
)
def test_cost_micros(price: ModelPrice, tokens, cached, micros: int) -> None:
    got = cost_micros(price, *tokens, cache_read_tokens=cached[0], cache_write_tokens=cached[1])
    assert got == micros


def test_worst_case_is_every_prompt_token_uncached_and_every_output_token_used() -> None:
    assert worst_case_micros(SONNET, 10_000, 4_096) == 30_000 + 61_440
    assert worst_case_micros(MINI, 1, 1) == 1
    assert worst_case_micros(GPT4O, 0, 0) == 0


def test_an_instant_in_a_repeated_midnight_hour_belongs_to_the_day_from_its_first_midnight() -> (
    None
):
    # Havana falls back at 01:00 to 00:00 on 2024-11-03: 00:30 happens twice that day; both
    # belong to the window that began at the first midnight (04:00 UTC), found by hypothesis.
    second_pass = datetime(2024, 11, 3, 5, 30, tzinfo=UTC)
    start = window_start(Period.DAILY, "America/Havana", second_pass)
    assert start == datetime(2024, 11, 3, 4, 0, tzinfo=UTC)
    end = window_end(Period.DAILY, "America/Havana", second_pass)
    assert end is not None and start <= second_pass < end
