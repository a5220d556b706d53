"""`meter_usage_ranges` (entitlement usage): several ranges in one statement, on pending events and on rollups."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.db import connection

from metering.models import Meter, PendingEvent, Rollup
from metering.postgres.fold import fold_all
from metering.postgres.query import QuerySpec, run_raw_query
from metering.postgres.usage import meter_usage_ranges
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, tzinfo=UTC)
S, M, H, D = dt.timedelta(seconds=1), dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
EVENTS = [
    {"subject": "s1", "time": T0 + 10 * S, "data": {"tokens": 10, "user": "u1", "model": "gpt-4"}},
    {"subject": "s1", "time": T0 + 50 * S, "data": {"tokens": "2.5", "user": "u2", "model": "gpt-4o"}},
    {"subject": "s2", "time": T0 + 30 * M, "data": {"tokens": 7, "user": "u1", "model": "gpt-4"}},
    {"subject": "s1", "time": T0 + H + 15 * M, "data": {"tokens": 1, "user": "u3", "model": "claude"}},
    {"subject": "other", "time": T0 + H + 20 * M, "data": {"tokens": 100, "user": "u9", "model": "gpt-4"}},
    {"subject": "s1", "time": T0 + D + 3 * H, "data": {"tokens": 4, "user": "u2", "model": "gpt-4o"}},
]
SUBJECTS = ["s1", "s2"]  # "other" never counts
WHOLE = (T0, T0 + 2 * D)


@pytest.fixture(params=["pending", "folded"])
def path(request):
    return request.param


def load(path):
    ingest(EVENTS)
    if path == "folded":
        fold_all()
        assert PendingEvent.objects.count() == 0


def meter(aggregation="SUM"):
    value = "$.user" if aggregation == "UNIQUE_COUNT" else "$.tokens"
    return MeterFactory(aggregation=aggregation, value_property=value, group_by={"model": "$.model"})


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        # whole range | first hour | [00:00:30, 01:16) (sub-minute start) | day 2
        ("SUM", ["24.5", "19.5", "10.5", "4"]),  # 10 + 2.5 + 7 + 1 + 4 | 10 + 2.5 + 7 | 2.5 + 7 + 1 | 4
        ("COUNT", ["5", "3", "3", "1"]),
        ("UNIQUE_COUNT", ["3", "2", "3", "1"]),  # u1 u2 u3 | u1 u2 | u2 u1 u3 | u2
        ("LATEST", ["4", "7", "1", "4"]),  # the last event of each range
    ],
)
def test_every_entitlement_aggregation_over_several_ranges(path, aggregation, expected):
    m = meter(aggregation)
    load(path)
    ranges = [WHOLE, (T0, T0 + H), (T0 + 30 * S, T0 + H + 16 * M), (T0 + D, T0 + 2 * D)]
    assert meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=ranges) == [Decimal(v) for v in expected]


def test_ranges_may_overlap_be_empty_or_shorter_than_a_minute(path):
    m = meter()
    load(path)
    ranges = [
        (T0, T0 + 40 * S),  # inside the first minute: only the event at :10 → 10
        (T0 + 40 * S, T0 + M),  # the rest of that minute: 2.5
        (T0, T0 + H),  # overlapping the two above: 10 + 2.5 + 7
        (T0 + H, T0 + H),  # empty
        (T0 + 3 * D, T0 + 4 * D),  # no events
    ]
    assert meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=ranges) == [
        Decimal(10), Decimal("2.5"), Decimal("19.5"), Decimal(0), Decimal(0)
    ]


def test_group_filters_and_advanced_filters(path):
    m = meter()
    load(path)
    exact = meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=[WHOLE], group_filters={"model": ["gpt-4"]})
    assert exact == [Decimal(17)]  # 10 + 7
    cases = [
        ({"$eq": "gpt-4"}, "17"),
        ({"$ne": "gpt-4"}, "7.5"),  # 2.5 + 1 + 4
        ({"$in": ["gpt-4", "claude"]}, "18"),  # 10 + 7 + 1
        ({"$nin": ["gpt-4", "claude"]}, "6.5"),  # 2.5 + 4
        ({"$like": "gpt-4%"}, "23.5"),  # 10 + 2.5 + 7 + 4 (a `%` in a pattern is not a placeholder)
        ({"$nlike": "gpt%"}, "1"),
        ({"$ilike": "GPT-4O"}, "6.5"),
        ({"$nilike": "GPT-4O"}, "18"),
        ({"$gt": "gpt-4"}, "6.5"),  # text order: "gpt-4o" > "gpt-4" > "claude"
        ({"$gte": "gpt-4"}, "23.5"),
        ({"$lt": "gpt-4"}, "1"),
        ({"$lte": "gpt-4"}, "18"),
        ({"$and": [{"$like": "gpt%"}, {"$ne": "gpt-4o"}]}, "17"),
        ({"$or": [{"$eq": "claude"}, {"$eq": "gpt-4o"}]}, "7.5"),
    ]
    for spec, expected in cases:
        got = meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=[WHOLE], advanced_filters={"model": spec})
        assert got == [Decimal(expected)], spec


def test_pending_and_folded_events_are_counted_once_in_one_statement():
    m = meter()
    load("folded")
    ingest([{"subject": "s2", "time": T0 + 5 * M, "data": {"tokens": 100, "model": "x"}}])  # late, still pending
    # 24.5 folded + 100 pending
    assert meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=[WHOLE, (T0, T0 + H)]) == [
        Decimal("124.5"), Decimal("119.5")
    ]


def test_event_from_skips_older_events(path):
    m = meter()
    Meter.objects.filter(pk=m.pk).update(event_from=T0 + 20 * S)
    m.refresh_from_db()
    load(path)
    # the event at :10 is before eventFrom: 2.5 + 7 + 1 + 4
    assert meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=[WHOLE]) == [Decimal("14.5")]


def test_a_meter_being_rebuilt_reads_raw_events_unless_the_caller_read_it_fresh():
    m = meter()
    load("folded")
    Meter.objects.filter(pk=m.pk).update(backfill_cursor=0)  # a rebuild just started: the rollups are gone
    Rollup.objects.filter(meter=m).delete()
    # `m` is stale (backfill_cursor None): the backfill state is read again, events are read raw
    assert meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=[WHOLE]) == [Decimal("24.5")]
    fresh = Meter.objects.get(pk=m.pk)
    assert meter_usage_ranges(meter=fresh, subjects=SUBJECTS, ranges=[WHOLE], fresh_meter=True) == [Decimal("24.5")]


def test_equals_the_raw_query_on_a_grid_of_ranges(path):
    m = meter()
    load(path)
    cuts = [T0, T0 + 10 * S, T0 + 11 * S, T0 + M, T0 + 59 * M + 30 * S, T0 + H + 15 * M, T0 + D, T0 + D + 3 * H,
            T0 + 2 * D]
    ranges = list(itertools.combinations(cuts, 2))
    got = meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=ranges)
    expected = [
        sum((r.value for r in run_raw_query(QuerySpec(meter=m, start=lo, end=hi, subjects=SUBJECTS))), Decimal(0))
        for lo, hi in ranges
    ]
    assert got == expected
    assert sum(got) > 0


def test_the_statement_is_prepared_once_per_connection_and_the_same_without_preparing(path):
    m = meter()
    load(path)
    ranges = [WHOLE, (T0, T0 + H)]
    prepared = [meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=ranges) for _ in range(3)]
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{m.pk}%"])
        assert cur.fetchone()[0] == 1  # this meter's statement, prepared once
    connection.connection.prepare_threshold = None  # OPENMETER_DB_PREPARED_STATEMENTS=0
    try:
        unprepared = meter_usage_ranges(meter=m, subjects=SUBJECTS, ranges=ranges)
    finally:
        connection.connection.prepare_threshold = 5
    assert prepared == [[Decimal("24.5"), Decimal("19.5")]] * 3
    assert unprepared == prepared[0]
