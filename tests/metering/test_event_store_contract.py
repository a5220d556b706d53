"""The event-store contract: every backend gives the same answers (`metering.event_store.EventStore`).

Runs on PostgreSQL (with the events still pending, and folded into rollups) and on ClickHouse through its
in-process engine (chDB, `chdb://memory`: the same SQL as a server). Every expected number is computed by hand
from the events below.
"""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest

from metering import selectors, services
from metering.event_store import EventFilter, QuerySpec, UsageRequest, event_store
from openmeter_site.core.errors import InvalidInput
from tests.factories import MeterFactory
from tests.metering.conftest import clickhouse_reset

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, tzinfo=UTC)
H, D = dt.timedelta(hours=1), dt.timedelta(days=1)
S = dt.timedelta(seconds=1)
EVENTS = [
    {"id": "e1", "subject": "s1", "time": T0 + 10 * S, "data": {"tokens": 10, "user": "u1", "model": "a"}},
    {"id": "e2", "subject": "s1", "time": T0 + 50 * S, "data": {"tokens": "2.5", "user": "u2", "model": "b"}},
    {"id": "e3", "subject": "s2", "time": T0 + dt.timedelta(minutes=30), "data": {"tokens": 7, "user": "u1", "model": "a"}},
    {"id": "e4", "subject": "s1", "time": T0 + H + 900 * S, "data": {"tokens": 1, "user": "u3", "model": "a"}},
    {"id": "e5", "subject": "s2", "time": T0 + H + 1200 * S, "data": {"user": "u1", "model": "a"}},
    {"id": "e6", "subject": "s1", "time": T0 + D + 3 * H, "data": {"tokens": 4, "user": "u2", "model": "b"}},
]
WHOLE = (T0, T0 + 2 * D)


@pytest.fixture(params=["postgres-pending", "postgres-folded", "clickhouse-events", "clickhouse-views"])
def backend(request, settings):
    """The store under test, and whether its aggregates are kept: `settle()` brings them up to date (PostgreSQL
    folds pending events; ClickHouse builds the meters' views: later events go through them) or, in the
    `pending` and `events` modes, leaves queries to read the events."""
    name, _, mode = request.param.partition("-")
    settings.OPENMETER_EVENTS_BACKEND = name
    if name == "clickhouse":
        settings.CLICKHOUSE_URL = "chdb://memory"
        clickhouse_reset()
    assert event_store().name == name
    return mode


def settle(mode):
    if mode not in ("pending", "events"):
        event_store().aggregates_resume()
        event_store().aggregates_catch_up()


def ingest(events, *, type="request", source="tests"):
    body = [
        {"specversion": "1.0", "source": source, "type": type, **e, "time": e["time"].isoformat()} for e in events
    ]
    return services.events_ingest(body=orjson.dumps(body), content_type="application/cloudevents-batch+json")


def load(mode, events=EVENTS):
    stored = ingest(events)
    settle(mode)
    return stored


def meter(aggregation="SUM", **kwargs):
    value_property = "$.user" if aggregation == "UNIQUE_COUNT" else "$.tokens"
    return MeterFactory(aggregation=aggregation, value_property=None if aggregation == "COUNT" else value_property,
                        group_by={"model": "$.model"}, **kwargs)


def query(m, **kwargs):
    kwargs.setdefault("start", WHOLE[0])
    kwargs.setdefault("end", WHOLE[1])
    return event_store().query(QuerySpec(meter=m, **kwargs))


def windows(rows):
    return [(r.window_start, r.window_end, r.value) for r in rows]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("SUM", "24.5"), ("COUNT", "6"), ("AVG", "4.9"), ("MIN", "1"), ("MAX", "10"), ("UNIQUE_COUNT", "3"),
     ("LATEST", "4")],
)
def test_every_aggregation_over_the_whole_range(backend, aggregation, expected):
    m = meter(aggregation)
    load(backend)
    [row] = query(m)
    assert (row.value, row.window_start, row.window_end) == (Decimal(expected), WHOLE[0], WHOLE[1])


def test_duplicates_are_stored_once_within_a_batch_and_across_batches(backend):
    m = meter("SUM")
    assert ingest(EVENTS[:3]) == 3
    # e1 again (with another value), e1 twice more in one batch, and a new event; the same id from another
    # source is another event
    again = [{**EVENTS[0], "data": {"tokens": 1000}}, {**EVENTS[0], "data": {"tokens": 2000}}, EVENTS[3]]
    assert ingest(again) == 1
    assert ingest([{**EVENTS[0], "data": {"tokens": 5}}], source="other") == 1
    settle(backend)
    [row] = query(m)
    assert row.value == Decimal("25.5")  # 10 + 2.5 + 7 + 1, plus 5 from the other source


def test_hour_and_day_windows_in_utc(backend):
    m = meter("SUM")
    load(backend)
    assert windows(query(m, window_size="HOUR")) == [
        (T0, T0 + H, Decimal("19.5")),
        (T0 + H, T0 + 2 * H, Decimal("1")),
        (T0 + D + 3 * H, T0 + D + 4 * H, Decimal("4")),
    ]
    assert windows(query(m, window_size="DAY")) == [(T0, T0 + D, Decimal("20.5")), (T0 + D, T0 + 2 * D, Decimal("4"))]


def test_day_and_month_windows_across_a_dst_day(backend):
    """Europe/Berlin moved to summer time on 2026-03-29: that local day is 23 hours long."""
    m = meter("SUM")
    berlin = ZoneInfo("Europe/Berlin")
    at = dt.datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # 23:30 local on the 28th
    load(backend, [
        {"id": "d1", "subject": "s1", "time": at, "data": {"tokens": 1}},
        {"id": "d2", "subject": "s1", "time": at + H, "data": {"tokens": 2}},  # 00:30 local on the 29th
        {"id": "d3", "subject": "s1", "time": at + 23 * H, "data": {"tokens": 4}},  # 23:30 summer time on the 29th
        {"id": "d4", "subject": "s1", "time": at + 24 * H, "data": {"tokens": 8}},  # 00:30 on the 30th
    ])
    start, end = dt.datetime(2026, 3, 27, 23, tzinfo=UTC), dt.datetime(2026, 3, 30, 22, tzinfo=UTC)
    assert windows(query(m, start=start, end=end, window_size="DAY", time_zone=berlin)) == [
        (start, start + D, Decimal("1")),
        (start + D, start + D + 23 * H, Decimal("6")),
        (start + D + 23 * H, end, Decimal("8")),
    ]
    assert windows(query(m, start=start, end=end, window_size="DAY")) == [
        (dt.datetime(2026, 3, 28, tzinfo=UTC), dt.datetime(2026, 3, 29, tzinfo=UTC), Decimal("3")),
        (dt.datetime(2026, 3, 29, tzinfo=UTC), dt.datetime(2026, 3, 30, tzinfo=UTC), Decimal("12")),
    ]
    month = windows(query(m, start=dt.datetime(2026, 2, 28, 23, tzinfo=UTC), end=dt.datetime(2026, 3, 31, 22, tzinfo=UTC),
                          window_size="MONTH", time_zone=berlin))
    assert month == [(dt.datetime(2026, 2, 28, 23, tzinfo=UTC), dt.datetime(2026, 3, 31, 22, tzinfo=UTC), Decimal("15"))]


def test_hour_windows_in_a_half_hour_zone(backend):
    """Asia/Kolkata is UTC+05:30: its hours start at half past in UTC."""
    m = meter("SUM")
    load(backend)
    half = dt.timedelta(minutes=30)
    assert windows(query(m, start=T0 - D, window_size="HOUR", time_zone=ZoneInfo("Asia/Kolkata"))) == [
        (T0 - half, T0 + half, Decimal("12.5")),
        (T0 + half, T0 + H + half, Decimal("8")),
        (T0 + D + 2 * H + half, T0 + D + 3 * H + half, Decimal("4")),
    ]


def test_group_by_subject_filters_and_customers(backend):
    m = meter("SUM")
    load(backend)
    by_model = {r.group_by["model"]: r.value for r in query(m, group_by=["model"])}
    assert by_model == {"a": Decimal("18"), "b": Decimal("6.5")}
    assert {r.subject: r.value for r in query(m, group_by=["subject"])} == {"s1": Decimal("17.5"), "s2": Decimal("7")}
    assert [r.value for r in query(m, subjects=["s2"])] == [Decimal("7")]
    assert [r.value for r in query(m, subjects=[])] == []
    assert [r.value for r in query(m, group_filters={"model": ["b"]})] == [Decimal("6.5")]
    for spec, total in (({"$ne": "a"}, "6.5"), ({"$in": ["a"]}, "18"), ({"$nin": ["a"]}, "6.5"), ({"$like": "b%"}, "6.5"),
                        ({"$or": [{"$eq": "a"}, {"$eq": "b"}]}, "24.5")):
        assert [r.value for r in query(m, advanced_filters={"model": spec})] == [Decimal(total)], spec
    customers = {"s1": "c1", "s2": "c2"}
    rows = query(m, subjects=list(customers), group_by=["customer_id", "model"], subject_customers=customers)
    assert [(r.customer_id, r.group_by["model"], r.value) for r in rows] == [
        ("c1", "a", Decimal("11")), ("c1", "b", Decimal("6.5")), ("c2", "a", Decimal("7"))]
    assert event_store().usage_by_customer(meter=m, subject_customers=customers, start=WHOLE[0], end=WHOLE[1]) == {
        "c1": Decimal("17.5"), "c2": Decimal("7")}
    assert event_store().usage_by_customer(meter=m, subject_customers=customers, start=WHOLE[0], end=WHOLE[1],
                                           group_filters={"model": ["a"]}) == {"c1": Decimal("11"), "c2": Decimal("7")}


def test_usage_ranges_in_one_call(backend):
    m, latest = meter("SUM"), meter("LATEST")
    load(backend)
    ranges = [WHOLE, (T0, T0 + H), (T0 + dt.timedelta(seconds=20), T0 + H + dt.timedelta(minutes=20)),
              (T0 + D, T0 + 2 * D), (T0 + 5 * H, T0 + 6 * H)]
    assert event_store().usage_ranges(meter=m, subjects=["s1", "s2"], ranges=ranges) == [
        Decimal("24.5"), Decimal("19.5"), Decimal("10.5"), Decimal("4"), Decimal("0")]
    assert event_store().usage_ranges(meter=m, subjects=["s1"], ranges=[WHOLE], fresh_meter=True) == [Decimal("17.5")]
    assert event_store().usage_ranges(meter=m, subjects=["s1", "s2"], ranges=[WHOLE],
                                      advanced_filters={"model": {"$eq": "b"}}) == [Decimal("6.5")]
    assert event_store().usage_ranges(meter=latest, subjects=["s1", "s2"], ranges=[(T0, T0 + H)]) == [Decimal("7")]


def test_usage_ranges_of_many_meters_subjects_and_filters_in_one_call(backend):
    m, latest, count = meter("SUM"), meter("LATEST"), meter("COUNT")
    load(backend)
    requests = [
        UsageRequest(m, ["s1", "s2"], [WHOLE, (T0, T0 + H), (T0 + 5 * H, T0 + 6 * H)]),
        UsageRequest(m, ["s1"], [WHOLE], advanced_filters={"model": {"$eq": "b"}}),  # e2 2.5 + e6 4
        UsageRequest(latest, ["s1", "s2"], [(T0, T0 + H)]),  # e3 at 00:30
        UsageRequest(m, [], [WHOLE]),  # no subjects: nothing counts
        UsageRequest(count, ["s2"], [(T0 + 20 * S, T0 + 2 * H)], group_filters={"model": ["a"]}),  # e3, e5
        UsageRequest(m, ["s1"], []),
    ]
    assert event_store().usage_ranges_many(requests) == [
        [Decimal("24.5"), Decimal("19.5"), Decimal("0")], [Decimal("6.5")], [Decimal("7")], [Decimal("0")],
        [Decimal("2")], []]
    assert event_store().usage_ranges_many([]) == []


def test_late_events_count_in_their_window(backend):
    m = meter("SUM")
    load(backend)
    late = {"id": "late", "subject": "s1", "time": T0 + dt.timedelta(minutes=5), "data": {"tokens": 100}}
    load(backend, [late])
    load(backend, [{**late, "data": {"tokens": 1}}])  # a duplicate of the late event: not counted
    assert windows(query(m, window_size="DAY")) == [(T0, T0 + D, Decimal("120.5")), (T0 + D, T0 + 2 * D, Decimal("4"))]
    assert event_store().usage_ranges(meter=m, subjects=["s1"], ranges=[(T0, T0 + D)]) == [Decimal("113.5")]


def test_one_batch_over_300_months_is_stored_and_counted(backend):
    # a client's clock decides an event's time: one token in each month from January 2001 to December 2025
    m = meter("SUM")
    months = [dt.datetime(2001 + i // 12, i % 12 + 1, 3, 4, 5, tzinfo=UTC) for i in range(300)]
    assert load(backend, [{"id": f"m{i}", "subject": "s1", "time": t, "data": {"tokens": 1, "model": "a"}}
                          for i, t in enumerate(months)]) == 300
    everything = (dt.datetime(2001, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert [r.value for r in query(m, start=everything[0], end=everything[1])] == [Decimal(300)]
    assert windows(query(m, start=dt.datetime(2010, 1, 1, tzinfo=UTC), end=dt.datetime(2010, 4, 1, tzinfo=UTC),
                         window_size="MONTH")) == [
        (dt.datetime(2010, m, 1, tzinfo=UTC), dt.datetime(2010, m + 1, 1, tzinfo=UTC), Decimal(1)) for m in (1, 2, 3)
    ]
    assert event_store().usage_ranges(meter=m, subjects=["s1"], ranges=[everything]) == [Decimal(300)]


@pytest.mark.parametrize(("aggregation", "expected"), [
    ("SUM", Decimal("27000000000000000001.5")),  # 3 x 9E+18 + 0.5 + 1: beyond what one value may be (1E+19)
    ("AVG", Decimal("5400000000000000000.3")),  # 27000000000000000001.5 / 5
    ("MAX", Decimal("9000000000000000000")),
])
def test_sums_beyond_the_value_limit_stay_exact(backend, aggregation, expected):
    # given values near the limit of one event's value, three in one minute of one subject
    m = meter(aggregation)
    big = {"tokens": "9000000000000000000", "model": "a"}
    load(backend, [{"id": f"b{i}", "subject": "s1", "time": T0 + i * S, "data": big} for i in range(3)]
                  + [{"id": "half", "subject": "s1", "time": T0 + 5 * S, "data": {"tokens": "0.5", "model": "a"}},
                     {"id": "one", "subject": "s2", "time": T0 + H, "data": {"tokens": 1, "model": "b"}}])
    # then every query answers the exact figure, and keeps doing so as more is added to the same buckets
    assert [r.value for r in query(m)] == [expected]
    assert windows(query(m, window_size="MINUTE", subjects=["s1"]))[0][2] == (
        Decimal("27000000000000000000.5") if aggregation == "SUM" else
        Decimal("6750000000000000000.125") if aggregation == "AVG" else Decimal("9000000000000000000"))
    load(backend, [{"id": "b3", "subject": "s1", "time": T0 + 30 * S, "data": big}])
    total = Decimal("36000000000000000001.5")
    assert [r.value for r in query(m)] == {"SUM": [total], "AVG": [total / 6], "MAX": [expected]}[aggregation]
    assert event_store().usage_ranges(meter=m, subjects=["s1"], ranges=[WHOLE]) == (
        [Decimal("36000000000000000000.5")] if aggregation == "SUM" else
        [Decimal("7200000000000000000.1")] if aggregation == "AVG" else [Decimal("9000000000000000000")])


def test_latest_is_the_value_of_the_last_event_and_of_the_later_batch_on_a_tie(backend):
    m = meter("LATEST")
    load(backend, [{"id": "t1", "subject": "s1", "time": T0 + H, "data": {"tokens": 5}},
                   {"id": "t0", "subject": "s1", "time": T0, "data": {"tokens": 9}}])
    load(backend, [{"id": "t2", "subject": "s1", "time": T0 + H, "data": {"tokens": 6}}])
    assert windows(query(m, window_size="HOUR")) == [(T0, T0 + H, Decimal("9")), (T0 + H, T0 + 2 * H, Decimal("6"))]
    assert [r.value for r in query(m)] == [Decimal("6")]


def test_a_meter_created_over_stored_events_counts_them(backend, django_capture_on_commit_callbacks):
    load(backend)
    with django_capture_on_commit_callbacks(execute=True):
        m = services.meter_create(slug="late_meter", aggregation="SUM", event_type="request", value_property="$.tokens")
    settle(backend)
    assert [r.value for r in query(m)] == [Decimal("24.5")]


def test_event_lists_with_filters_validation_errors_and_cursors(backend):
    m = meter("SUM")
    load(backend)
    ingest([{"id": "x1", "subject": "s3", "time": T0 + 2 * H, "data": {}}], type="unmetered")
    now = T0 + 2 * D
    listed = selectors.event_list(filters=EventFilter(start=T0 - H), now=now)
    assert [e.id for e in listed] == ["e6", "x1", "e5", "e4", "e3", "e2", "e1"]
    errors = {e.id: e.validation_error for e in listed}
    assert errors["x1"] == "no meter found for event type: unmetered"
    assert errors["e5"] == f"meter {m.slug}: value property $.tokens is missing or not a number"
    assert errors["e1"] is None
    assert orjson.loads(orjson.dumps(listed[-1].data)) == {"tokens": 10, "user": "u1", "model": "a"}
    assert [e.id for e in selectors.event_list(filters=EventFilter(start=T0 - H, subject_contains="2"), now=now)] == [
        "e5", "e3"]
    assert [e.id for e in selectors.event_list(filters=EventFilter(start=T0 - H, id_contains="e1"), now=now)] == ["e1"]

    pages, cursor = [], None
    while True:
        page = selectors.event_list_v2(filter_spec={"type": {"$eq": "request"}}, cursor=cursor, limit=2)
        pages.append([e.id for e in page.events])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [["e6", "e5"], ["e4", "e3"], ["e2", "e1"], []]
    in_range = selectors.event_list_v2(
        filter_spec={"time": {"$gte": (T0 + H).isoformat(), "$lt": (T0 + D).isoformat()}, "subject": {"$in": ["s1"]}},
        cursor=None, limit=10)
    assert [e.id for e in in_range.events] == ["e4"]
    with pytest.raises(InvalidInput):
        selectors.event_list_v2(filter_spec={}, cursor="not-a-cursor", limit=2)


def test_what_a_meter_reads_from_listed_events(backend):
    m = MeterFactory(aggregation="SUM", value_property="$.tokens", group_by={"model": "$.model", "user": "$.user"})
    load(backend)
    listed = {e.id: e for e in event_store().events_list(filters=EventFilter(start=T0 - H))}
    readings = event_store().event_readings(meter=m, refs=[listed["e2"].ref, listed["e5"].ref])
    assert readings[listed["e2"].ref].value == Decimal("2.5")
    assert readings[listed["e2"].ref].groups == {"model": "b", "user": "u2"}
    assert readings[listed["e5"].ref].value is None


def test_subjects_seen_since_a_position(backend):
    load(backend)
    subjects, position = event_store().subjects_since(None)
    assert subjects == ["s1", "s2"]
    load(backend, [{"id": "n1", "subject": "s9", "time": T0, "data": {"tokens": 1}}])
    later, _ = event_store().subjects_since(position)
    assert "s9" in later  # a store may repeat subjects seen before, never miss one
    assert event_store().events_per_subject_since(T0 + D) == [("s1", 1)]


def test_json_paths_a_store_evaluates(backend):
    assert event_store().json_path_valid("$.usage.tokens")
    assert event_store().json_path_valid('$["model name"][0]')
    assert not event_store().json_path_valid("$.a[")
