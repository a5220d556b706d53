"""Meter query semantics, checked on both paths: pending events (raw tail) and folded rollups."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from metering.models import Meter, PendingEvent, Rollup
from metering.postgres.fold import fold_all
from metering.postgres.query import (
    QuerySpec,
    meter_usage,
    meter_usage_by_customer,
    rollup_statement,
    run_query,
    run_raw_query,
)
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, tzinfo=UTC)
EVENTS = [
    {"subject": "s1", "time": T0 + dt.timedelta(seconds=10), "data": {"tokens": 10, "user": "u1", "model": "a"}},
    {"subject": "s1", "time": T0 + dt.timedelta(seconds=50), "data": {"tokens": "2.5", "user": "u2", "model": "b"}},
    {"subject": "s2", "time": T0 + dt.timedelta(minutes=30), "data": {"tokens": 7, "user": "u1", "model": "a"}},
    {"subject": "s1", "time": T0 + dt.timedelta(hours=1, minutes=15), "data": {"tokens": 1, "user": "u3", "model": "a"}},
    {"subject": "s2", "time": T0 + dt.timedelta(hours=1, minutes=20), "data": {"user": "u1", "model": "a"}},
    {"subject": "s1", "time": T0 + dt.timedelta(days=1, hours=3), "data": {"tokens": 4, "user": "u2", "model": "b"}},
]


@pytest.fixture(params=["pending", "folded"])
def path(request):
    """Run each test with the events still pending (raw tail) and with the events folded into rollups."""
    return request.param


def load(path, events=EVENTS, type="request"):
    ingest(events, type=type)
    if path == "folded":
        fold_all()
        assert PendingEvent.objects.count() == 0


def meter(aggregation="SUM", value_property="$.tokens", **kwargs):
    if aggregation == "UNIQUE_COUNT":
        value_property = "$.user"
    return MeterFactory(aggregation=aggregation, value_property=value_property, group_by={"model": "$.model"}, **kwargs)


def values(rows):
    return [(r.window_start, r.window_end, r.value) for r in rows]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("SUM", Decimal("24.5")),  # 10 + 2.5 + 7 + 1 + 4 (the event without tokens is skipped)
        ("COUNT", Decimal(6)),  # every event, value or not
        ("AVG", Decimal("4.9")),  # 24.5 / 5
        ("MIN", Decimal(1)),
        ("MAX", Decimal(10)),
        ("LATEST", Decimal(4)),  # the event on day 2
        ("UNIQUE_COUNT", Decimal(3)),  # users u1, u2, u3
    ],
)
def test_every_aggregation_over_the_whole_range(path, aggregation, expected):
    m = meter(aggregation)
    load(path)
    rows = run_query(QuerySpec(meter=m, start=T0, end=T0 + dt.timedelta(days=2)))
    assert values(rows) == [(T0, T0 + dt.timedelta(days=2), expected)]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("SUM", {"s1": Decimal("17.5"), "s2": Decimal(7)}),  # s1: 10 + 2.5 + 1 + 4
        ("COUNT", {"s1": Decimal(4), "s2": Decimal(2)}),
        ("AVG", {"s1": Decimal("4.375"), "s2": Decimal(7)}),  # 17.5 / 4
        ("MIN", {"s1": Decimal(1), "s2": Decimal(7)}),
        ("MAX", {"s1": Decimal(10), "s2": Decimal(7)}),
        ("LATEST", {"s1": Decimal(4), "s2": Decimal(7)}),
        ("UNIQUE_COUNT", {"s1": Decimal(3), "s2": Decimal(1)}),  # s1: u1 u2 u3; s2: u1
    ],
)
def test_every_aggregation_by_customer(path, aggregation, expected):
    m = meter(aggregation)
    load(path)
    by_customer = meter_usage_by_customer(
        meter=m, subject_customers={"s1": "s1", "s2": "s2"}, start=T0, end=T0 + dt.timedelta(days=2)
    )
    assert by_customer == expected


def test_sum_per_window_size(path):
    m = meter("SUM")
    load(path)
    h = dt.timedelta(hours=1)
    day2 = T0 + dt.timedelta(days=1)

    def query(window):
        return values(run_query(QuerySpec(meter=m, start=T0, end=T0 + dt.timedelta(days=2), window_size=window)))

    minute = dt.timedelta(minutes=1)
    assert query("MINUTE") == [
        (T0, T0 + minute, Decimal("12.5")),  # 10 + 2.5
        (T0 + 30 * minute, T0 + 31 * minute, Decimal(7)),
        (T0 + 75 * minute, T0 + 76 * minute, Decimal(1)),
        (day2 + 3 * h, day2 + 3 * h + minute, Decimal(4)),
    ]
    assert query("HOUR") == [
        (T0, T0 + h, Decimal("19.5")),  # 10 + 2.5 + 7
        (T0 + h, T0 + 2 * h, Decimal(1)),
        (day2 + 3 * h, day2 + 4 * h, Decimal(4)),
    ]
    assert query("DAY") == [(T0, day2, Decimal("20.5")), (day2, day2 + 24 * h, Decimal(4))]
    month = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 2, 1, tzinfo=UTC), Decimal("24.5"))
    assert query("MONTH") == [month]


def test_range_is_half_open_and_sub_minute_bounds_are_exact(path):
    m = meter("SUM")
    load(path)
    # from 00:00:30 drops the 00:00:10 event (10); to 01:15:00 drops the 01:15 event (1) and later ones
    rows = run_query(QuerySpec(meter=m, start=T0 + dt.timedelta(seconds=30), end=T0 + dt.timedelta(hours=1, minutes=15)))
    assert [r.value for r in rows] == [Decimal("9.5")]  # 2.5 + 7
    # to 00:00:50 excludes the event at exactly 00:00:50
    rows = run_query(QuerySpec(meter=m, start=T0, end=T0 + dt.timedelta(seconds=50)))
    assert [r.value for r in rows] == [Decimal(10)]


def test_group_by_subject_and_property_with_filters(path):
    m = meter("SUM")
    load(path)
    end = T0 + dt.timedelta(days=2)
    rows = run_query(QuerySpec(meter=m, start=T0, end=end, group_by=["subject", "model"]))
    assert {(r.subject, r.group_by["model"]): r.value for r in rows} == {
        ("s1", "a"): Decimal(11),  # 10 + 1
        ("s1", "b"): Decimal("6.5"),  # 2.5 + 4
        ("s2", "a"): Decimal(7),
    }
    rows = run_query(QuerySpec(meter=m, start=T0, end=end, group_filters={"model": ["b"]}))
    assert [r.value for r in rows] == [Decimal("6.5")]
    rows = run_query(QuerySpec(meter=m, start=T0, end=end, advanced_filters={"model": {"$ne": "b"}}, subjects=["s1"]))
    assert [r.value for r in rows] == [Decimal(11)]
    assert meter_usage(meter=m, subjects=["s2"], start=T0, end=end) == Decimal(7)
    assert meter_usage(meter=m, subjects=["nobody"], start=T0, end=end) == Decimal(0)


def test_no_window_without_bounds_uses_minute_truncated_event_times(path):
    m = meter("SUM")
    load(path)
    rows = run_query(QuerySpec(meter=m))
    # first valued event 00:00:10 → 00:00; last at day 2 03:00:00 → 03:01
    assert values(rows) == [(T0, T0 + dt.timedelta(days=1, hours=3, minutes=1), Decimal("24.5"))]


def test_event_from_skips_older_events(path):
    m = meter("SUM", event_from=T0 + dt.timedelta(minutes=1))
    load(path)
    rows = run_query(QuerySpec(meter=m, start=T0, end=T0 + dt.timedelta(days=2)))
    assert [r.value for r in rows] == [Decimal(12)]  # 7 + 1 + 4


def test_dst_days_in_berlin_are_23_and_25_hours_long(path):
    berlin = ZoneInfo("Europe/Berlin")
    m = meter("SUM")
    load(
        path,
        [
            {"subject": "s", "time": dt.datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "data": {"tokens": 1}},  # 00:30 CET
            {"subject": "s", "time": dt.datetime(2026, 3, 29, 21, 30, tzinfo=UTC), "data": {"tokens": 2}},  # 23:30 CEST
            {"subject": "s", "time": dt.datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "data": {"tokens": 4}},  # Mar 30
            {"subject": "s", "time": dt.datetime(2026, 10, 25, 22, 30, tzinfo=UTC), "data": {"tokens": 8}},  # 23:30 CET
        ],
    )
    rows = run_query(
        QuerySpec(
            meter=m,
            start=dt.datetime(2026, 3, 1, tzinfo=UTC),
            end=dt.datetime(2026, 11, 1, tzinfo=UTC),
            window_size="DAY",
            time_zone=berlin,
        )
    )
    assert values(rows) == [
        (dt.datetime(2026, 3, 28, 23, tzinfo=UTC), dt.datetime(2026, 3, 29, 22, tzinfo=UTC), Decimal(3)),  # 23 h
        (dt.datetime(2026, 3, 29, 22, tzinfo=UTC), dt.datetime(2026, 3, 30, 22, tzinfo=UTC), Decimal(4)),
        (dt.datetime(2026, 10, 24, 22, tzinfo=UTC), dt.datetime(2026, 10, 25, 23, tzinfo=UTC), Decimal(8)),  # 25 h
    ]
    assert rows[0].window_end - rows[0].window_start == dt.timedelta(hours=23)
    assert rows[2].window_end - rows[2].window_start == dt.timedelta(hours=25)


def test_half_hour_zone_windows(path):
    kolkata = ZoneInfo("Asia/Kolkata")
    m = meter("SUM")
    load(
        path,
        [
            {"subject": "s", "time": dt.datetime(2026, 1, 5, 18, 29, tzinfo=UTC), "data": {"tokens": 1}},  # 23:59 IST
            {"subject": "s", "time": dt.datetime(2026, 1, 5, 18, 31, tzinfo=UTC), "data": {"tokens": 2}},  # 00:01 IST
        ],
    )
    spec = {"meter": m, "start": dt.datetime(2026, 1, 1, tzinfo=UTC), "end": dt.datetime(2026, 1, 10, tzinfo=UTC)}
    days = run_query(QuerySpec(**spec, window_size="DAY", time_zone=kolkata))
    assert values(days) == [
        (dt.datetime(2026, 1, 4, 18, 30, tzinfo=UTC), dt.datetime(2026, 1, 5, 18, 30, tzinfo=UTC), Decimal(1)),
        (dt.datetime(2026, 1, 5, 18, 30, tzinfo=UTC), dt.datetime(2026, 1, 6, 18, 30, tzinfo=UTC), Decimal(2)),
    ]
    hours = run_query(QuerySpec(**spec, window_size="HOUR", time_zone=kolkata))
    assert values(hours) == [
        (dt.datetime(2026, 1, 5, 17, 30, tzinfo=UTC), dt.datetime(2026, 1, 5, 18, 30, tzinfo=UTC), Decimal(1)),
        (dt.datetime(2026, 1, 5, 18, 30, tzinfo=UTC), dt.datetime(2026, 1, 5, 19, 30, tzinfo=UTC), Decimal(2)),
    ]


def test_late_backdated_events_are_counted_after_a_fold():
    m = meter("SUM")
    load("folded")
    ingest([{"subject": "s1", "time": T0 + dt.timedelta(minutes=5), "data": {"tokens": 100}}])  # late, pending
    end = T0 + dt.timedelta(days=2)
    assert meter_usage(meter=m, subjects=["s1", "s2"], start=T0, end=end) == Decimal("124.5")
    fold_all()
    assert meter_usage(meter=m, subjects=["s1", "s2"], start=T0, end=end) == Decimal("124.5")
    # the minute, hour and day buckets of 00:00-00:59 were updated in place
    minute_bucket = Rollup.objects.get(meter=m, resolution=1, bucket=T0 + dt.timedelta(minutes=5))
    assert minute_bucket.sum == 100


def test_duplicates_are_counted_once(path):
    m = meter("SUM")
    load(path, [{"id": "x", "subject": "s", "time": T0, "data": {"tokens": 3}}] * 2)
    load(path, [{"id": "x", "subject": "s", "time": T0, "data": {"tokens": 3}}])
    assert meter_usage(meter=m, subjects=["s"], start=T0, end=T0 + dt.timedelta(hours=1)) == Decimal(3)


def test_values_are_exact_decimals(path):
    m = meter("SUM")
    load(
        path,
        [
            {"subject": "s", "time": T0, "data": {"tokens": "0.1"}},
            {"subject": "s", "time": T0, "data": {"tokens": "0.2"}},
            {"subject": "s", "time": T0, "data": {"tokens": "123456789012345678.1234567890123456789"}},
            {"subject": "s", "time": T0, "data": {"tokens": "1e400"}},  # out of NUMERIC(38,19): skipped
        ],
    )
    total = meter_usage(meter=m, subjects=["s"], start=T0, end=T0 + dt.timedelta(hours=1))
    assert total == Decimal("123456789012345678.4234567890123456789")  # 0.1 + 0.2 + the big one, exactly


def test_meter_being_rebuilt_reads_raw_events_even_through_a_stale_meter_object():
    m = meter("SUM")
    load("folded")
    Meter.objects.filter(pk=m.pk).update(backfill_cursor=0)  # as if a rebuild just started
    Rollup.objects.filter(meter=m).delete()
    end = T0 + dt.timedelta(days=2)
    assert [r.value for r in run_query(QuerySpec(meter=m, start=T0, end=end))] == [Decimal("24.5")]
    assert run_query(QuerySpec(meter=m, start=T0, end=end)) == run_raw_query(QuerySpec(meter=m, start=T0, end=end))
    fresh = Meter.objects.get(pk=m.pk)
    spec = QuerySpec(meter=fresh, start=T0, end=end, fresh_meter=True)  # read in this request: not read again
    assert [r.value for r in run_query(spec)] == [Decimal("24.5")]


def test_the_statement_is_prepared_once_per_connection_for_every_subject_and_range(path):
    m = meter("SUM", event_type="request%s")  # a `%` in a literal of the statement is not a placeholder
    load(path, type="request%s")
    end = T0 + dt.timedelta(days=2)
    by_subject = {
        s: run_query(QuerySpec(meter=m, start=T0, end=end, subjects=[s], group_by=["subject"])) for s in ("s1", "s2")
    }
    # s1: 10 + 2.5 + 1 + 4; s2: 7 (its second event has no tokens)
    assert {s: [r.value for r in rows] for s, rows in by_subject.items()} == {"s1": [Decimal("17.5")], "s2": [Decimal(7)]}
    # another range of the same shape (day-aligned middle, sub-minute edges): the same statement
    rows = run_query(QuerySpec(meter=m, start=T0 + dt.timedelta(seconds=20), end=end, subjects=["s1"]))
    assert [r.value for r in rows] == [Decimal("7.5")]  # 2.5 + 1 + 4
    rows = run_query(QuerySpec(meter=m, start=T0 + dt.timedelta(seconds=30), end=end, subjects=["s1"]))
    assert [r.value for r in rows] == [Decimal("7.5")]
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{m.pk}%"])
        assert cur.fetchone()[0] == 2  # one per shape: whole range by subject; sub-minute start, no grouping
    connection.connection.prepare_threshold = None  # OPENMETER_DB_PREPARED_STATEMENTS=0: the same results
    try:
        rows = run_query(QuerySpec(meter=m, start=T0 + dt.timedelta(seconds=20), end=end, subjects=["s1"]))
    finally:
        connection.connection.prepare_threshold = 5
    assert [r.value for r in rows] == [Decimal("7.5")]


def test_open_bounds_count_the_pending_events_too():
    m = meter("SUM")
    load("folded", EVENTS[:3])
    ingest(EVENTS[3:], type="request")  # still pending
    assert [r.value for r in run_query(QuerySpec(meter=m))] == [Decimal("24.5")]
    assert [r.value for r in run_query(QuerySpec(meter=m, start=T0 + dt.timedelta(minutes=1)))] == [Decimal(12)]
    assert [r.value for r in run_query(QuerySpec(meter=m, end=T0 + dt.timedelta(days=1)))] == [Decimal("20.5")]


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def test_batched_customer_query_reads_the_tail_once_whatever_the_planner_estimates():
    # given 300 customers with one subject each and 3 pending events each (900 events in the raw tail)
    billed = meter(aggregation="SUM")
    customers = {f"sub-{i}": f"cust-{i}" for i in range(300)}
    ingest([{"subject": s, "time": T0 + dt.timedelta(minutes=k), "data": {"tokens": k + 1}}
            for s in customers for k in range(3)])
    # when the batched invoice query runs, explained with its real row counts, and the planner takes a nested
    # loop wherever it has a join to plan (as it did on the 1,000-customer bench with the tail unanalyzed)
    spec = QuerySpec(meter=billed, start=T0, end=T0 + dt.timedelta(days=1), subjects=list(customers),
                     group_by=("customer_id",), subject_customers=customers)
    statement = rollup_statement(spec)
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_hashjoin = off")
        cur.execute("SET LOCAL enable_mergejoin = off")
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.text, statement.params)
        nodes = list(_plan_nodes(cur.fetchone()[0][0]["Plan"]))
    # then no join pairs the tail with the customers (such a join once rescanned a 500,000-event tail per
    # customer when the planner took both sides for a few rows), and the event table is read once per piece
    assert not [n for n in nodes if n.get("Rows Removed by Join Filter")]
    event_reads = [n for n in nodes if n.get("Relation Name", "").startswith("metering_event")]
    assert event_reads and all(n["Actual Loops"] <= 1 for n in event_reads)  # 0: a month not read
    # and no table (the pending queue included) is scanned whole more than once: pending events are looked up
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n["Actual Loops"] > 1]
    # and every customer gets its own total: 1 + 2 + 3
    assert meter_usage_by_customer(meter=billed, subject_customers=customers, start=spec.start, end=spec.end) == {
        c: Decimal(6) for c in customers.values()
    }
