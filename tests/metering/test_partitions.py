"""Events partitioned by month: de-duplication across months, partitions made on demand and ahead of time, the
de-duplication window, and retention (whole months dropped once folded and no longer needed)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from metering import retention
from metering.models import Event, EventKey, PendingEvent, Rollup
from metering.postgres import partitions
from metering.postgres.fold import fold_all
from metering.postgres.maintenance import events_maintain, retention_apply
from metering.postgres.partitions import month_of, partition_drop, partitions_ensure
from metering.postgres.query import meter_usage
from metering.postgres.store import DEDUP_WINDOW, keys_purge
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
MARCH = dt.date(2026, 3, 1)


def months() -> set[dt.date]:
    return set(partitions.partitions())


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


def test_a_late_event_makes_its_month_and_is_counted():
    # given a meter with usage in March, and no partition for May 2019
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": dt.datetime(2026, 3, 2, tzinfo=UTC), "data": {"tokens": 1}}])
    assert dt.date(2019, 5, 1) not in months()
    # when an event of May 2019 arrives
    late = dt.datetime(2019, 5, 17, 8, 30, 15, tzinfo=UTC)
    assert ingest([{"subject": "s", "time": late, "data": {"tokens": 40}}]) == 1
    # then its month exists, and the event is counted before and after the fold
    assert dt.date(2019, 5, 1) in months()
    end = dt.datetime(2026, 4, 1, tzinfo=UTC)
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=end) == 41
    fold_all()
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=end) == 41
    assert meter_usage(meter=meter, subjects=["s"], start=late, end=late + dt.timedelta(seconds=1)) == 40


def test_ingest_makes_again_a_month_dropped_since_this_process_saw_it():
    # given a month this process made, dropped since (as the retention job of another process would)
    july = dt.date(2018, 7, 1)
    partitions_ensure([july])
    assert partition_drop(july, unless=lambda: False)
    partitions._known.add(july)  # the other process's drop left this process's memory stale
    # when an event of that month arrives, then it is stored (the insert fails once, the month is made again)
    assert ingest([{"subject": "s", "time": dt.datetime(2018, 7, 4, tzinfo=UTC), "data": {}}]) == 1
    assert july in months() and Event.objects.filter(time__year=2018).count() == 1


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
    """A SUM meter with 3 + 4 in March 2026 (folded) and 10 in May 2026."""
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": dt.datetime(2026, 3, 10, 12, tzinfo=UTC), "data": {"tokens": 3}},
            {"subject": "s", "time": dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC), "data": {"tokens": 4}},
            {"subject": "s", "time": dt.datetime(2026, 5, 3, tzinfo=UTC), "data": {"tokens": 10}}])
    fold_all()
    return meter


def _drop_older_months_than_march() -> None:
    for month in partitions.partitions():
        if month < MARCH:
            assert partition_drop(month, unless=lambda: False)


def test_retention_is_off_by_default(settings, march_usage):
    assert settings.OPENMETER_EVENTS_RETENTION_DAYS == 0
    assert retention_apply(at=dt.datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert MARCH in months()


def test_retention_drops_a_folded_month_past_it_and_its_usage_stays(settings, march_usage):
    # given a retention of 40 days, and March 2026 folded: it ended 2026-04-01, so it may go from 2026-05-11
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    _drop_older_months_than_march()
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
    _drop_older_months_than_march()
    ingest([{"subject": "s", "time": dt.datetime(2026, 3, 15, tzinfo=UTC), "data": {"tokens": 1}}])  # late, pending
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0
    assert PendingEvent.objects.filter(time__month=3).count() == 1
    fold_all()
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 1


def test_retention_keeps_what_an_app_above_still_needs(settings, march_usage):
    # given an app above metering that still needs events from 2026-03-31 (an invoice not issued yet)
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    _drop_older_months_than_march()
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
    _drop_older_months_than_march()
    MeterFactory(aggregation="COUNT", backfill_cursor=0)
    assert retention_apply(at=dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0


def test_month_of_reads_the_utc_month():
    berlin = dt.timezone(dt.timedelta(hours=2))
    assert month_of(dt.datetime(2026, 4, 1, 1, tzinfo=berlin)) == MARCH
