"""Events partitioned by month around now and coarsely elsewhere: de-duplication across partitions, partitions made
on demand and ahead of time, the de-duplication window, and retention (whole partitions dropped once folded and no
longer needed)."""

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from metering import retention
from metering.event_store import QuerySpec
from metering.models import Event, EventKey, PendingEvent, Rollup
from metering.postgres import partitions
from metering.postgres.fold import fold_all
from metering.postgres.maintenance import events_maintain, retention_apply
from metering.postgres.partitions import Span, covering, month_of, partition_drop, partitions_ensure
from metering.postgres.query import meter_usage, rollup_statement
from metering.postgres.store import DEDUP_WINDOW, keys_purge
from tests.factories import MeterFactory, event_partitions_drop_before, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
MARCH = dt.date(2026, 3, 1)


def months() -> set[dt.date]:
    """The months that have a partition of their own."""
    return {dt.date(s.first // 12, s.first % 12 + 1, 1) for s in partitions.partitions() if s.monthly}


def test_the_same_event_in_two_months_is_stored_once():
    # given an event stored in March
    meter = MeterFactory(aggregation="SUM", group_by={})
    march = dt.datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert ingest([{"id": "e1", "subject": "s", "time": march, "data": {"tokens": 5}}]) == 1
    # when it comes again with a time in April (another partition), and once more in a batch with a new event
    assert ingest([{"id": "e1", "subject": "s", "time": march + dt.timedelta(days=2), "data": {"tokens": 5}}]) == 0
    assert ingest([{"id": "e1", "subject": "s", "time": march, "data": {"tokens": 5}},
                   {"id": "e2", "subject": "s", "time": march, "data": {"tokens": 7}}]) == 1
    # then it is stored and counted once: 5 + 7
    assert Event.objects.filter(id="e1").count() == 1
    fold_all()
    start, end = march - dt.timedelta(days=1), march + dt.timedelta(days=5)
    assert meter_usage(meter=meter, subjects=["s"], start=start, end=end) == 12


@time_machine.travel(dt.datetime(2026, 3, 20, tzinfo=UTC), tick=False)
def test_a_late_event_gets_a_partition_and_is_counted():
    # given a meter with usage in March 2026 (this month), and no other partition
    event_partitions_drop_before(dt.date(9999, 1, 1))
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": dt.datetime(2026, 3, 2, tzinfo=UTC), "data": {"tokens": 1}}])
    assert partitions.partitions() == [Span.of_month(MARCH)]
    # when an event of May 2019 arrives (long before the window: last month, this one and the next two)
    late = dt.datetime(2019, 5, 17, 8, 30, 15, tzinfo=UTC)
    assert ingest([{"subject": "s", "time": late, "data": {"tokens": 40}}]) == 1
    # then one partition covers everything before the window, and the event is counted before and after the fold
    assert partitions.partitions() == [Span(None, 2026 * 12 + 1), Span.of_month(MARCH)]
    assert partitions.partitions()[0].name == "metering_event_min_y2026m02"
    end = dt.datetime(2026, 4, 1, tzinfo=UTC)
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=end) == 41
    fold_all()
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=end) == 41
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=late + dt.timedelta(seconds=1)) == 40


def test_ingest_makes_again_a_partition_dropped_since_this_process_saw_it():
    # given a partition this process made, dropped since (as the retention job of another process would)
    july = dt.date(2018, 7, 1)
    partitions.partitions_forget()  # what earlier tests made and rolled back
    partitions_ensure([july])
    span = covering(partitions.partitions(), july)
    assert partition_drop(span, unless=lambda: False)
    partitions._known.append(span)  # the other process's drop left this process's memory stale
    # when an event of that month arrives, then it is stored (the insert fails once, a partition is made again)
    assert ingest([{"subject": "s", "time": dt.datetime(2018, 7, 4, tzinfo=UTC), "data": {}}]) == 1
    assert covering(partitions.partitions(), july) is not None and Event.objects.filter(time__year=2018).count() == 1


def test_maintenance_makes_this_month_and_the_next_two():
    at = dt.datetime(2031, 11, 20, tzinfo=UTC)
    events_maintain(at=at)
    assert {dt.date(2031, 11, 1), dt.date(2031, 12, 1), dt.date(2032, 1, 1)} <= months()


def _age_keys(days: float) -> None:
    with connection.cursor() as cur:
        cur.execute("UPDATE metering_eventkey SET stored_at = now() - make_interval(days => %s)", [days])


def test_duplicates_are_dropped_for_the_whole_window_and_keys_are_purged_after_it():
    # given an event whose key was stored 31 days ago: still within the 32-day window after a purge
    assert dt.timedelta(days=32) == DEDUP_WINDOW
    t = dt.datetime(2026, 3, 2, tzinfo=UTC)
    ingest([{"id": "e1", "subject": "s", "time": t, "data": {}}])
    _age_keys(31)
    assert keys_purge(at=dt.datetime.now(UTC)) == 0
    assert ingest([{"id": "e1", "subject": "s", "time": t, "data": {}}]) == 0
    # when the key is 33 days old, the purge deletes it
    _age_keys(33)
    assert keys_purge(at=dt.datetime.now(UTC)) == 1
    assert not EventKey.objects.exists()
    # and the same event sent again after the window is stored again (README: the window is the promise)
    assert ingest([{"id": "e1", "subject": "s", "time": t, "data": {}}]) == 1
    assert Event.objects.filter(id="e1").count() == 2


# --- retention ---------------------------------------------------------------------------------------------------


@pytest.fixture
def march_usage():
    """A SUM meter with 3 + 4 in March 2026 (folded) and 10 in May 2026, stored in March 2026 (so each month
    is a partition of its own, and no partition is older than March)."""
    event_partitions_drop_before(dt.date(2026, 6, 1))
    meter = MeterFactory(aggregation="SUM", group_by={})
    with time_machine.travel(dt.datetime(2026, 3, 31, tzinfo=UTC)):
        ingest([{"subject": "s", "time": dt.datetime(2026, 3, 10, 12, tzinfo=UTC), "data": {"tokens": 3}},
                {"subject": "s", "time": dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC), "data": {"tokens": 4}},
                {"subject": "s", "time": dt.datetime(2026, 5, 3, tzinfo=UTC), "data": {"tokens": 10}}])
    fold_all()
    assert {MARCH, dt.date(2026, 5, 1)} <= months()
    return meter


def test_retention_is_off_by_default(settings, march_usage):
    assert settings.OPENMETER_EVENTS_RETENTION_DAYS == 0
    assert retention_apply(at=dt.datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert MARCH in months()


def test_retention_drops_a_folded_month_past_it_and_its_usage_stays(settings, march_usage):
    # given a retention of 40 days, and March 2026 folded: it ended 2026-04-01, so it may go from 2026-05-11
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    # when the job runs the day before, nothing goes; the day after, March goes (May stays)
    assert retention_apply(at=dt.datetime(2026, 5, 10, tzinfo=UTC)) == 0
    assert retention_apply(at=dt.datetime(2026, 5, 12, tzinfo=UTC)) == 1
    assert MARCH not in months() and dt.date(2026, 5, 1) in months()
    assert not Event.objects.filter(time__month=3).exists()
    # then March's usage is still read from its rollups: 3 + 4, and with May 17
    start, end = dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 6, 1, tzinfo=UTC)
    assert meter_usage(meter=march_usage, subjects=["s"], start=start, end=end) == Decimal(17)
    assert Rollup.objects.filter(meter=march_usage, bucket__month=3).exists()


def test_retention_keeps_a_month_with_events_not_folded_yet(settings, march_usage):
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    ingest([{"subject": "s", "time": dt.datetime(2026, 3, 15, tzinfo=UTC), "data": {"tokens": 1}}])  # late, pending
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0
    assert PendingEvent.objects.filter(time__month=3).count() == 1
    fold_all()
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 1


def test_retention_keeps_what_an_app_above_still_needs(settings, march_usage):
    # given an app above metering that still needs events from 2026-03-31 (an invoice not issued yet)
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    needed = [dt.datetime(2026, 3, 31, tzinfo=UTC)]
    hold = lambda: needed[0]  # noqa: E731
    retention.on_events_needed(hold)
    try:
        # then March stays, until it needs nothing before April
        assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0
        needed[0] = dt.datetime(2026, 4, 1, tzinfo=UTC)
        assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 1
    finally:
        retention._holds.remove(hold)


def test_retention_waits_for_a_meter_being_rebuilt(settings, march_usage):
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    MeterFactory(aggregation="COUNT", backfill_cursor=0)
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0


def test_month_of_reads_the_utc_month():
    berlin = dt.timezone(dt.timedelta(hours=2))
    assert month_of(dt.datetime(2026, 4, 1, 1, tzinfo=berlin)) == MARCH


# --- events spread over hundreds of months (a client's clock decides an event's time) --------------------------

SPREAD_NOW = dt.datetime(2026, 12, 15, 12, tzinfo=UTC)  # the window: November 2026 to February 2027
NOV = 2026 * 12 + 10  # November 2026 as partitions number months


def _spread(indexes: Iterable[int], prefix: str) -> str:
    """A batch of one event (1 token, subject 'mallory') on the 3rd of each month numbered in `indexes`."""
    return json.dumps([
        {"id": f"{prefix}{i}", "source": "elsewhere", "specversion": "1.0", "type": "request", "subject": "mallory",
         "time": f"{i // 12:04d}-{i % 12 + 1:02d}-03T04:05:06Z", "data": {"tokens": 1}}
        for i in indexes
    ])


def _query(api, **params) -> list[tuple[int, str | None]]:
    response = api.get("/api/v1/meters/tokens/query", params)
    assert response.status_code == 200
    return [(row["value"], row.get("subject")) for row in response.json()["data"]]


def _event_partitions_read(spec: QuerySpec) -> set[str]:
    statement = rollup_statement(spec)
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.text, statement.params)
        plan = cur.fetchone()[0][0]["Plan"]
    names = set()
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", ()))
        if node.get("Relation Name", "").startswith("metering_event_"):
            names.add(node["Relation Name"])
    return names


@time_machine.travel(SPREAD_NOW, tick=False)
def test_one_request_over_300_months_makes_a_handful_of_partitions_and_queries_stay_exact(api):
    # given no event partition, a SUM meter and this month's usage of 's': 5 + 7 folded, 11 pending
    event_partitions_drop_before(dt.date(9999, 1, 1))
    meter = MeterFactory(slug="tokens", aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": SPREAD_NOW - dt.timedelta(hours=1), "data": {"tokens": 5}},
            {"subject": "s", "time": SPREAD_NOW - dt.timedelta(days=2), "data": {"tokens": 7}}])
    fold_all()
    ingest([{"subject": "s", "time": SPREAD_NOW - dt.timedelta(minutes=3), "data": {"tokens": 11}}])
    # when one request stores an event in each of 300 months: 150 before the window, its 4 months, 146 after
    first = NOV - 150
    response = api.generic("POST", "/api/v1/events", _spread(range(first, first + 300), "a"),
                           content_type="application/cloudevents-batch+json")
    # then it is accepted, and makes the window's 4 months and one partition before them and one after
    assert response.status_code == 204
    expected = [Span(None, NOV), *(Span(i, i + 1) for i in range(NOV, NOV + 4)), Span(NOV + 4, None)]
    assert partitions.partitions() == expected
    assert [s.name for s in expected] == [
        "metering_event_min_y2026m11", "metering_event_y2026m11", "metering_event_y2026m12",
        "metering_event_y2027m01", "metering_event_y2027m02", "metering_event_y2027m03_max",
    ]
    # and 300 more months, before and after those, make no partition at all
    more = [*range(first - 150, first), *range(first + 300, first + 450)]
    response = api.generic("POST", "/api/v1/events", _spread(more, "b"),
                           content_type="application/cloudevents-batch+json")
    assert response.status_code == 204
    assert partitions.partitions() == expected
    # and meter queries count every event once: December 5 + 7 + 11 + mallory's 1; all time 23 + 600
    december = {"from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
    assert _query(api, **december) == [(24, None)]
    assert _query(api, **december, subject=["s"]) == [(23, "s")]
    assert _query(api) == [(623, None)]
    # and the plan reads only these 6 partitions (the pending events and the sub-minute edges, by time)
    edges = QuerySpec(meter=meter, start=dt.datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC),
                      end=dt.datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert _event_partitions_read(edges) <= {s.name for s in expected}
    assert _event_partitions_read(dataclasses.replace(edges, subjects=["s"])) <= {s.name for s in expected}
    # and the same after the fold
    fold_all()
    assert _query(api, **december) == [(24, None)]
    assert _query(api) == [(623, None)]


@time_machine.travel(SPREAD_NOW, tick=False)
def test_maintenance_splits_the_month_the_window_reaches_off_a_coarse_partition():
    # given partitions made in December 2026 for events of every month of 2027 and 2028 (1 token each)
    event_partitions_drop_before(dt.date(9999, 1, 1))
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": dt.datetime(2027 + k // 12, k % 12 + 1, 3, tzinfo=UTC), "data": {"tokens": 1}}
            for k in range(24)])
    fold_all()
    assert partitions.partitions()[-1] == Span(NOV + 4, None)  # March 2027 onwards
    # when the maintenance job runs in January 2027, when March 2027 has to be ready
    with time_machine.travel(dt.datetime(2027, 1, 10, tzinfo=UTC)):
        counts = events_maintain(at=dt.datetime(2027, 1, 10, tzinfo=UTC))
    # then March 2027 is split off with its event, and the rest stays coarse
    assert counts["months split off coarse partitions"] == 1
    assert partitions.partitions()[-2:] == [Span.of_month(dt.date(2027, 3, 1)), Span(NOV + 5, None)]
    assert Event.objects.filter(time__year=2027, time__month=3).count() == 1
    # and usage is the same: 2 tokens in March and April 2027, 24 in all
    start, end = dt.datetime(2027, 3, 1, tzinfo=UTC), dt.datetime(2027, 5, 1, tzinfo=UTC)
    assert meter_usage(meter=meter, subjects=["s"], start=start, end=end) == 2
    assert meter_usage(meter=meter, subjects=["s"], start=SPREAD_NOW, end=dt.datetime(2029, 1, 1, tzinfo=UTC)) == 24
    # and events stored afterwards go to their month
    ingest([{"subject": "s", "time": dt.datetime(2027, 3, 9, tzinfo=UTC), "data": {"tokens": 1}}])
    assert meter_usage(meter=meter, subjects=["s"], start=start, end=end) == 3


@time_machine.travel(SPREAD_NOW, tick=False)
def test_retention_drops_a_coarse_partition_once_its_whole_range_is_past(settings):
    # given the events of 2019 and 2020 in one partition before the window, folded
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    event_partitions_drop_before(dt.date(9999, 1, 1))
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": dt.datetime(2019, 6, 1, tzinfo=UTC), "data": {"tokens": 2}},
            {"subject": "s", "time": dt.datetime(2020, 6, 1, tzinfo=UTC), "data": {"tokens": 3}},
            {"subject": "s", "time": SPREAD_NOW, "data": {"tokens": 4}}])
    fold_all()
    assert partitions.partitions()[0] == Span(None, NOV)
    # when retention runs 40 days after it ended (1 November 2026), but not before
    assert retention_apply(at=dt.datetime(2026, 12, 10, tzinfo=UTC)) == 0
    assert retention_apply(at=dt.datetime(2026, 12, 12, tzinfo=UTC)) == 1
    # then it is gone, and its usage stays in the rollups: 2 + 3, and 9 with December's
    assert partitions.partitions()[0] == Span.of_month(dt.date(2026, 12, 1))
    start = dt.datetime(2019, 1, 1, tzinfo=UTC)
    assert meter_usage(meter=meter, subjects=["s"], start=start, end=dt.datetime(2021, 1, 1, tzinfo=UTC)) == 5
    assert meter_usage(meter=meter, subjects=["s"], start=start, end=dt.datetime(2027, 1, 1, tzinfo=UTC)) == 9


def _windows(api, **params) -> list[tuple[int, str, str]]:
    response = api.get("/api/v1/meters/tokens/query", params)
    assert response.status_code == 200, response.content
    return [(row["value"], row["windowStart"], row["windowEnd"]) for row in response.json()["data"]]


@time_machine.travel(SPREAD_NOW, tick=False)
def test_events_at_the_first_and_last_instants_of_time_are_counted_and_queried_exactly(api):
    # given a SUM meter and events at the first instant of year 1 and in the last day of year 9999 (1 + 2 + 4 + 8),
    # and at the last and first microsecond of November and December 2026 (16 + 32)
    event_partitions_drop_before(dt.date(9999, 1, 1))
    MeterFactory(slug="tokens", aggregation="SUM", group_by={})
    times = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:00Z", "9999-12-31T00:00:00Z",
             "2026-11-30T23:59:59.999999Z", "2026-12-01T00:00:00Z"]
    body = [{"id": f"edge{i}", "source": "edges", "specversion": "1.0", "type": "request", "subject": "s",
             "time": t, "data": {"tokens": 2**i}} for i, t in enumerate(times)]
    response = api.generic("POST", "/api/v1/events", json.dumps(body), content_type="application/cloudevents-batch+json")
    assert response.status_code == 204
    for _ in ("pending", "folded"):
        # then every query answers, read raw or from the rollups, a window past year 9999 ending at its last
        # instant and one before year 1 starting at its first (RFC 3339 writes no other year)
        assert _windows(api) == [(63, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")]
        assert _windows(api, **{"from": "9999-12-31T23:59:30Z"}) == [
            (2, "9999-12-31T23:59:30Z", "9999-12-31T23:59:59.999999Z")]
        assert _windows(api, **{"from": "9999-12-31T23:59:00Z"})[0][0] == 2 + 4
        assert _windows(api, **{"from": "9999-12-01T00:00:00Z", "windowSize": "MONTH"}) == [
            (14, "9999-12-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")]
        # Kiritimati is 14 hours ahead: 9999-12-31 23:59 UTC is in its day of 1 January 10000
        assert _windows(api, **{"from": "9999-12-30T00:00:00Z", "windowSize": "DAY",
                                "windowTimeZone": "Pacific/Kiritimati"}) == [
            (8, "9999-12-30T10:00:00Z", "9999-12-31T10:00:00Z"),
            (2 + 4, "9999-12-31T10:00:00Z", "9999-12-31T23:59:59.999999Z")]
        # New York was 4:56:02 behind (local mean time): the first instant is in its day of 31 December 1 BC
        assert _windows(api, **{"to": "0001-01-02T00:00:00Z", "windowSize": "DAY",
                                "windowTimeZone": "America/New_York"}) == [
            (1, "0001-01-01T00:00:00Z", "0001-01-01T04:56:02Z")]
        # and the month edges of 2026 fall each in its month
        assert _windows(api, **{"from": "2026-11-01T00:00:00Z", "to": "2027-01-01T00:00:00Z",
                                "windowSize": "MONTH"}) == [
            (16, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"), (32, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
        fold_all()
