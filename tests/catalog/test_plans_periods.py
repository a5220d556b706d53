"""Period arithmetic (catalog.periods): hand-computed month ends and leap years, plus hypothesis properties."""

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.periods import (
    Duration,
    InvalidDuration,
    add_duration,
    billing_period_containing,
    format_duration,
    is_multiple_of,
    normalize_anchor,
    parse_duration,
    periods_between,
    recurrence_at,
)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1M", Duration(months=1)),
        ("P1Y", Duration(months=12)),
        ("P2W", Duration(days=14)),
        ("P1Y2M3DT4H5M6S", Duration(months=14, days=3, seconds=4 * 3600 + 5 * 60 + 6)),
        ("PT1H", Duration(seconds=3600)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "1M", "P1.5M", "-P1M", "PT", "P1H", "monthly"])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidDuration):
        parse_duration(text)


def test_format_duration_round_trips():
    for text in ["P1M", "P1Y", "P2W", "P1D", "PT1H", "P1Y6M", "P1MT12H"]:
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (utc(2025, 1, 31), "P1M", utc(2025, 2, 28)),  # clamped to February's last day
        (utc(2024, 1, 31), "P1M", utc(2024, 2, 29)),  # leap year
        (utc(2024, 2, 29), "P1Y", utc(2025, 2, 28)),  # leap day + 1 year
        (utc(2024, 2, 29), "P4Y", utc(2028, 2, 29)),
        (utc(2025, 3, 31), "P1M", utc(2025, 4, 30)),
        (utc(2025, 12, 15, 10), "P1M", utc(2026, 1, 15, 10)),
        (utc(2025, 1, 31), "P1M1D", utc(2025, 3, 1)),  # months first (Feb 28), then the day
        (utc(2025, 1, 1), "P2W", utc(2025, 1, 15)),
    ],
)
def test_add_duration(start, duration, expected):
    assert add_duration(start, duration) == expected


def test_recurrence_from_the_31st_comes_back_to_the_31st():
    anchor = utc(2025, 1, 31)
    # Jan 31 → Feb 28 → Mar 31 → Apr 30: each boundary from the anchor, never by repeated adding
    assert [recurrence_at(anchor, "P1M", n) for n in range(4)] == [
        utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 3, 31), utc(2025, 4, 30),
    ]
    assert recurrence_at(anchor, "P1M", -2) == utc(2024, 11, 30)


def test_billing_period_containing():
    anchor = utc(2025, 1, 31)
    period = billing_period_containing(anchor, "P1M", utc(2025, 3, 15))
    assert (period.start, period.end) == (utc(2025, 2, 28), utc(2025, 3, 31))
    # a boundary belongs to the period it starts
    period = billing_period_containing(anchor, "P1M", utc(2025, 3, 31))
    assert (period.start, period.end) == (utc(2025, 3, 31), utc(2025, 4, 30))
    # before the anchor
    period = billing_period_containing(anchor, "P1M", utc(2024, 12, 1))
    assert (period.start, period.end) == (utc(2024, 11, 30), utc(2024, 12, 31))


def test_normalize_anchor_is_the_recurrence_at_or_before_start():
    assert normalize_anchor(utc(2026, 6, 15), "P1M", utc(2026, 3, 20)) == utc(2026, 3, 15)
    assert normalize_anchor(utc(2026, 1, 1), "P1M", utc(2026, 3, 1)) == utc(2026, 3, 1)


def test_is_multiple_of():
    assert is_multiple_of("P3M", "P1M")
    assert is_multiple_of("P1Y", "P1M")
    assert not is_multiple_of("P10D", "P1M")
    assert not is_multiple_of("P1M", "P1W")
    assert is_multiple_of("P2W", "P1D")
    assert not is_multiple_of("P1M", "P2M")


datetimes = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1)).map(
    lambda d: d.replace(tzinfo=dt.UTC, microsecond=0)
)
cadences = st.sampled_from(["P1M", "P3M", "P1Y", "P1W", "P2W", "P1D", "PT1H", "P1M15D"])


@settings(max_examples=300, deadline=None)
@given(anchor=datetimes, cadence=cadences, at=datetimes)
def test_period_containing_contains_and_is_one_cadence_long(anchor, cadence, at):
    period = billing_period_containing(anchor, cadence, at)
    assert period.start <= at < period.end
    assert billing_period_containing(anchor, cadence, period.end).start == period.end  # the next one starts at the end


@settings(max_examples=200, deadline=None)
@given(anchor=datetimes, cadence=cadences, start=datetimes, length_days=st.integers(min_value=0, max_value=800))
def test_periods_cover_the_range_exactly_once(anchor, cadence, start, length_days):
    end = start + dt.timedelta(days=length_days, hours=length_days % 7)
    periods = periods_between(anchor, cadence, start, end)
    if start >= end:
        assert periods == []
        return
    assert periods[0].start == start
    assert periods[-1].end == end
    for before, after in itertools.pairwise(periods):
        assert before.end == after.start  # no gap, no overlap
    assert all(p.start < p.end for p in periods)
    # every boundary inside the range is a recurrence of the anchor
    for p in periods[1:]:
        assert billing_period_containing(anchor, cadence, p.start).start == p.start


@settings(max_examples=200, deadline=None)
@given(start=datetimes, months=st.integers(min_value=0, max_value=50))
def test_adding_months_never_overflows_into_the_next_month(start, months):
    moved = add_duration(start, Duration(months=months))
    assert (moved.year * 12 + moved.month) - (start.year * 12 + start.month) == months
    assert moved.day <= start.day
