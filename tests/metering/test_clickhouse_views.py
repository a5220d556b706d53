"""The ClickHouse store's per-meter aggregates (`metering.clickhouse.views`): buckets kept by a materialized view,
backfilled when built, read by queries with the same answers as the raw events; built, rebuilt and dropped with
the meter; exactly once across a build racing an insert, an interrupted build, a retried insert."""

import datetime as dt
import itertools
import threading
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import orjson
import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import progress, services
from metering.clickhouse import query, store, views
from metering.clickhouse.connection import EVENTS_TABLE, client
from metering.event_store import QuerySpec, UsageRequest, event_store
from metering.models import ClickHouseMeterView
from tests.factories import MeterFactory
from tests.metering.test_rollups import BASE, bound_st, event_st, to_events

pytestmark = pytest.mark.django_db

UTC = dt.UTC
_ids = itertools.count()
_types = itertools.count()


@pytest.fixture(autouse=True)
def clickhouse_store(clickhouse, settings):
    settings.OPENMETER_EVENTS_BACKEND = "clickhouse"


def ingest(events, *, type="request"):
    if not events:
        return 0
    body = [{"specversion": "1.0", "source": "tests", "type": type, "id": e.get("id") or f"v{next(_ids)}",
             "subject": e["subject"], "time": e["time"].isoformat(), "data": e["data"]} for e in events]
    return services.events_ingest(body=orjson.dumps(body), content_type="application/cloudevents-batch+json")


def raw(call, *args, **kwargs):
    """What `call` answers from the events alone (as while the meter's aggregates are built)."""
    with mock.patch.object(views, "ready_tables", return_value={}):
        return call(*args, **kwargs)


def tables():
    return sorted(name for (name,) in client().query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, 'om_meter_')"
    ).result_rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw_events=st.lists(event_st, max_size=40),
    before_build=st.integers(min_value=0, max_value=40),
    aggregation=st.sampled_from(["SUM", "COUNT", "AVG", "MIN", "MAX", "LATEST", "UNIQUE_COUNT"]),
    start=bound_st,
    length=st.one_of(st.none(), st.integers(min_value=1, max_value=4 * 24 * 3600)),
    window=st.sampled_from([None, "MINUTE", "HOUR", "DAY", "MONTH"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]),
    group_by=st.lists(st.sampled_from(["subject", "model"]), unique=True),
    subjects=st.one_of(st.none(), st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1, unique=True)),
    event_from=st.one_of(st.none(), st.integers(min_value=0, max_value=24 * 3600)),
)
def test_buckets_plus_edges_equal_the_raw_events(
    raw_events, before_build, aggregation, start, length, window, zone, group_by, subjects, event_from
):
    # given a meter over its own event type, some events stored before its view (backfilled), the rest after
    event_type = f"view{next(_types)}"
    meter = MeterFactory(
        event_type=event_type,
        aggregation=aggregation,
        value_property="$.user" if aggregation == "UNIQUE_COUNT" else "$.tokens",
        group_by={"model": "$.model"},
        event_from=BASE + dt.timedelta(seconds=event_from) if event_from is not None else None,
    )
    events = to_events(raw_events)
    ingest(events[:before_build], type=event_type)
    assert views.build(meter.pk)
    ingest(events[before_build:], type=event_type)
    assert views.ready_tables([meter])
    # when the same query reads the buckets (and events at the edges) and the events alone
    begin = BASE + dt.timedelta(seconds=start) if start is not None else None
    end = (begin or BASE) + dt.timedelta(seconds=length) if length is not None else None
    spec = QuerySpec(meter=meter, start=begin, end=end, window_size=window, time_zone=ZoneInfo(zone),
                     group_by=group_by, subjects=subjects)
    # then both give the same rows, and the same usage over ranges
    assert query.run_query(spec) == raw(query.run_query, spec)
    if begin is not None and end is not None:
        ranges = [(begin, end), (BASE, BASE + dt.timedelta(days=2)), (begin, begin + dt.timedelta(minutes=90))]
        request = UsageRequest(meter, subjects or ["s1", "s2", "s3"], ranges)
        assert query.usage_ranges_many([request]) == raw(query.usage_ranges_many, [request])
    services.meter_delete(meter=meter)
    views.build(meter.pk)  # drops its view: the next examples' inserts do not run it


def test_a_meter_query_reads_its_buckets_not_its_events():
    meter = MeterFactory(aggregation="SUM", group_by={"model": "$.model"})
    t = dt.datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    ingest([{"subject": "s1", "time": t, "data": {"tokens": 2, "model": "a"}}])
    views.build(meter.pk)
    ingest([{"subject": "s2", "time": t + dt.timedelta(hours=30), "data": {"tokens": 3, "model": "b"}}])
    table = views.ready_tables([meter])[meter.pk]
    whole = QuerySpec(meter=meter, start=dt.datetime(2026, 1, 5, tzinfo=UTC), end=dt.datetime(2026, 1, 7, tzinfo=UTC),
                      window_size="DAY", group_by=["model"])
    sql = query.query_sql(whole, table)
    assert table in sql and EVENTS_TABLE not in sql  # whole days: day buckets of all subjects, no event read
    assert [(r.window_start.day, r.group_by["model"], r.value) for r in query.run_query(whole)] == [
        (5, "a", Decimal("2")), (6, "b", Decimal("3"))]
    # a range with sub-minute edges reads the events there
    edged = QuerySpec(meter=meter, start=t - dt.timedelta(seconds=1), end=t + dt.timedelta(hours=31, seconds=1))
    assert EVENTS_TABLE in query.query_sql(edged, table)
    assert [r.value for r in query.run_query(edged)] == [Decimal("5")]
    # each event is in a minute, an hour and a day bucket of its subject, and of all subjects
    rows = client().query(f"SELECT resolution, subject, count(DISTINCT bucket), sum(n) FROM `{table}` "
                          "GROUP BY ALL ORDER BY ALL").result_rows
    assert rows == [(1, "", 2, 2), (1, "s1", 1, 1), (1, "s2", 1, 1), (2, "", 2, 2), (2, "s1", 1, 1), (2, "s2", 1, 1),
                    (3, "", 2, 2), (3, "s1", 1, 1), (3, "s2", 1, 1)]


def test_aggregates_are_built_rebuilt_and_dropped_with_the_meter(django_capture_on_commit_callbacks):
    t = dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    ingest([{"subject": "s1", "time": t, "data": {"tokens": 2, "model": "a", "region": "eu"}},
            {"subject": "s1", "time": t, "data": {"tokens": 3, "model": "b", "region": "eu"}}])
    with django_capture_on_commit_callbacks(execute=True):
        meter = services.meter_create(slug="tokens", aggregation="SUM", event_type="request", value_property="$.tokens",
                                      group_by={"model": "$.model"})
    assert tables() == [views.table_name(meter.pk, 1), views.table_name(meter.pk, 1) + "_mv"]
    assert progress.progress_get(progress.meter_build_id(meter.pk)).success == 2
    with django_capture_on_commit_callbacks(execute=True):
        meter = services.meter_update(meter=meter, name="tokens", group_by={"model": "$.model", "region": "$.region"})
    assert tables() == [views.table_name(meter.pk, 2), views.table_name(meter.pk, 2) + "_mv"]
    spec = QuerySpec(meter=meter, group_by=["region"])
    assert [(r.group_by, r.value) for r in event_store().query(spec)] == [({"region": "eu"}, Decimal("5"))]
    with django_capture_on_commit_callbacks(execute=True):
        services.meter_delete(meter=meter)
    assert tables() == []
    assert not ClickHouseMeterView.objects.filter(meter_id=meter.pk).exists()


def test_an_interrupted_build_is_started_over_by_the_resume_job():
    meter = MeterFactory(aggregation="SUM", group_by={})
    t = dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    ingest([{"subject": "s1", "time": t, "data": {"tokens": 2}}])
    with mock.patch.object(views, "_backfill", side_effect=RuntimeError("worker lost")), pytest.raises(RuntimeError):
        views.build(meter.pk)
    assert not event_store().aggregates_ready(meter=meter)  # queries read the events meanwhile
    ingest([{"subject": "s1", "time": t, "data": {"tokens": 3}}])  # through the half-built view: dropped with it
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [Decimal("5")]
    assert event_store().aggregates_resume() == 1
    assert tables() == [views.table_name(meter.pk, 2), views.table_name(meter.pk, 2) + "_mv"]
    assert event_store().aggregates_ready(meter=meter)
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [Decimal("5")]
    assert event_store().aggregates_resume() == 0


def test_a_build_whose_state_was_lost_starts_from_an_empty_table():
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s1", "time": dt.datetime(2026, 1, 5, 10, tzinfo=UTC), "data": {"tokens": 2}}])
    views.build(meter.pk)
    ClickHouseMeterView.objects.all().delete()  # PostgreSQL restored from before the build: its table is left
    assert views.build(meter.pk)  # the same generation again, its table made anew
    assert tables() == [views.table_name(meter.pk, 1), views.table_name(meter.pk, 1) + "_mv"]
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [Decimal("2")]


def test_an_insert_retried_after_a_lost_commit_is_counted_once_in_the_buckets():
    meter = MeterFactory(aggregation="COUNT", value_property=None, group_by={})
    views.build(meter.pk)
    t = dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    rows = {("tests", "r1"): ["tests", "r1", "request", "s1", t, "{}", t]}
    assert store.insert_rows(rows) == 1
    with connection.cursor() as cur:  # as if the commit after ClickHouse's insert had been lost
        cur.execute("DELETE FROM metering_clickhouseeventkey")
    assert store.insert_rows(rows) == 1  # the same new keys: the same token, dropped by ClickHouse
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [Decimal("1")]
    table = views.ready_tables([meter])[meter.pk]
    assert client().query(f"SELECT sum(n) FROM `{table}` WHERE resolution = 3 AND subject = ''").result_rows == [(1,)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_numbered_before_the_view_is_counted_once(clickhouse):
    """An insert holds its event type's lock from before it numbers its batch until it is committed, and the view
    is created under that lock taken exclusively: a batch numbered before the view is in the events table before
    the view exists, and only the backfill counts it. (Without the lock the build below would create the view
    while the insert waits, the insert would then go through the view, and the backfill count it again.)"""
    meter = MeterFactory(aggregation="SUM", group_by={})
    t = dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
    numbered, release = threading.Event(), threading.Event()
    real_client, real_backfill = store.client, views._backfill

    class PausedClient:  # the insert stops between numbering its batch and inserting it
        def insert(self, *args, **kwargs):
            numbered.set()
            release.wait(timeout=30)
            return real_client().insert(*args, **kwargs)

    def slow_ingest():
        try:
            with mock.patch.object(store, "client", PausedClient):
                ingest([{"subject": "s1", "time": t, "data": {"tokens": 2}}])
        finally:
            connection.close()

    def backfill_after_the_insert(*args):
        release.set()
        inserting.join(timeout=30)
        real_backfill(*args)

    def build():
        try:
            with mock.patch.object(views, "_backfill", backfill_after_the_insert):
                views.build(meter.pk)
        finally:
            connection.close()

    inserting = threading.Thread(target=slow_ingest)
    inserting.start()
    assert numbered.wait(timeout=30)
    building = threading.Thread(target=build)
    building.start()
    while building.is_alive() and not _waits_for_an_advisory_lock():  # the build waits for the insert's lock
        building.join(timeout=0.05)
    release.set()
    inserting.join(timeout=30)
    building.join(timeout=60)
    ingest([{"subject": "s1", "time": t, "data": {"tokens": 3}}])  # through the view
    assert views.ready_tables([meter])
    assert [r.value for r in event_store().query(QuerySpec(meter=meter))] == [Decimal("5")]


def _waits_for_an_advisory_lock() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cur.fetchone()[0] > 0
