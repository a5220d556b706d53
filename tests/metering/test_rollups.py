"""Rollups: folding, equivalence with the raw query, backfills and exactly-once counting."""

import datetime as dt
import itertools
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import Min
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import progress
from metering.buckets import decompose
from metering.models import Event, Meter, PendingEvent, Rollup
from metering.postgres.fold import (
    backfill,
    backfill_step,
    fold_backlog,
    fold_pending,
    fold_shard,
    rollups_rebuild_start,
)
from metering.postgres.query import QuerySpec, meter_usage, run_query, run_raw_query
from metering.selectors import fold_backlog as fold_backlog_figures
from metering.services import meter_create
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
BASE = dt.datetime(2026, 3, 27, 20, tzinfo=UTC)  # three days across Europe's DST change (2026-03-29 01:00 UTC)
_types = itertools.count()

values_st = st.one_of(
    st.integers(min_value=-50, max_value=1000),
    st.decimals(min_value=-100, max_value=100, places=3, allow_nan=False).map(str),
    st.just("not a number"),
    st.none(),
)
event_st = st.fixed_dictionaries(
    {
        "subject": st.sampled_from(["s1", "s2", "s3"]),
        "seconds": st.integers(min_value=0, max_value=3 * 24 * 3600),
        "value": values_st,
        "model": st.sampled_from(["a", "b", None]),
        "user": st.sampled_from(["u1", "u2", "u3", None]),
    }
)
bound_st = st.one_of(st.none(), st.integers(min_value=-3600, max_value=3 * 24 * 3600 + 3600))


def to_events(raw):
    events = []
    for e in raw:
        data = {"model": e["model"], "user": e["user"]}
        if e["value"] is not None:
            data["tokens"] = e["value"]
        events.append({"subject": e["subject"], "time": BASE + dt.timedelta(seconds=e["seconds"]), "data": data})
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw_events=st.lists(event_st, max_size=40),
    folded_count=st.integers(min_value=0, max_value=40),
    aggregation=st.sampled_from(["SUM", "COUNT", "AVG", "MIN", "MAX", "LATEST", "UNIQUE_COUNT"]),
    start=bound_st,
    length=st.one_of(st.none(), st.integers(min_value=1, max_value=4 * 24 * 3600)),
    window=st.sampled_from([None, "MINUTE", "HOUR", "DAY", "MONTH"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]),
    group_by=st.lists(st.sampled_from(["subject", "model"]), unique=True),
    subjects=st.one_of(st.none(), st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1, unique=True)),
    event_from=st.one_of(st.none(), st.integers(min_value=0, max_value=24 * 3600)),
)
def test_rollups_plus_tail_equal_the_raw_query(
    raw_events, folded_count, aggregation, start, length, window, zone, group_by, subjects, event_from
):
    # given a meter over its own event type, some events folded into rollups and the rest still pending
    event_type = f"prop{next(_types)}"
    meter = MeterFactory(
        event_type=event_type,
        aggregation=aggregation,
        value_property="$.user" if aggregation == "UNIQUE_COUNT" else "$.tokens",
        group_by={"model": "$.model"},
        event_from=BASE + dt.timedelta(seconds=event_from) if event_from is not None else None,
    )
    events = to_events(raw_events)
    ingest(events[:folded_count], type=event_type)
    fold_pending(limit=10_000)
    ingest(events[folded_count:], type=event_type)
    assert PendingEvent.objects.count() == len(events[folded_count:])
    # when the same query runs on rollups + tail and on raw events
    begin = BASE + dt.timedelta(seconds=start) if start is not None else None
    end = (begin or BASE) + dt.timedelta(seconds=length) if length is not None else None
    spec = QuerySpec(
        meter=meter,
        start=begin,
        end=end,
        window_size=window,
        time_zone=ZoneInfo(zone),
        group_by=group_by,
        subjects=subjects,
    )
    # then both give the same rows
    assert run_query(spec) == run_raw_query(spec)
    fold_pending(limit=10_000)
    assert run_query(spec) == run_raw_query(spec)


@given(
    start=st.integers(min_value=0, max_value=10 * 24 * 60),
    length=st.integers(min_value=1, max_value=10 * 24 * 60),
    resolution=st.sampled_from([1, 2, 3]),
)
def test_decompose_covers_the_range_exactly_once_with_aligned_buckets(start, length, resolution):
    a = BASE + dt.timedelta(minutes=start)
    b = a + dt.timedelta(minutes=length)
    pieces = decompose(a, b, resolution)
    # contiguous, in order, from a to b
    assert pieces[0][1] == a and pieces[-1][2] == b
    assert all(p[2] == q[1] for p, q in itertools.pairwise(pieces))
    unit = {1: dt.timedelta(minutes=1), 2: dt.timedelta(hours=1), 3: dt.timedelta(days=1)}
    for res, lo, hi in pieces:
        assert res <= resolution
        epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
        assert (lo - epoch) % unit[res] == dt.timedelta(0) and (hi - epoch) % unit[res] == dt.timedelta(0)


def test_fold_writes_minute_hour_and_day_buckets():
    meter = MeterFactory(aggregation="SUM", group_by={"model": "$.model"})
    t = dt.datetime(2026, 1, 1, 10, 5, 30, tzinfo=UTC)
    ingest(
        [
            {"subject": "s", "time": t, "data": {"tokens": 2, "model": "a"}},
            {"subject": "s", "time": t + dt.timedelta(minutes=20), "data": {"tokens": 3, "model": "a"}},
            {"subject": "s", "time": t, "data": {"tokens": "x", "model": "a"}},  # not a number: not folded
        ]
    )
    assert fold_pending() == 3
    buckets = sorted((r.subject, r.resolution, r.bucket, r.sum, r.count) for r in Rollup.objects.filter(meter=meter))
    assert buckets == [
        # all subjects together (subject ''): hours and days only
        ("", 2, dt.datetime(2026, 1, 1, 10, tzinfo=UTC), Decimal(5), 2),
        ("", 3, dt.datetime(2026, 1, 1, tzinfo=UTC), Decimal(5), 2),
        ("s", 1, dt.datetime(2026, 1, 1, 10, 5, tzinfo=UTC), Decimal(2), 1),
        ("s", 1, dt.datetime(2026, 1, 1, 10, 25, tzinfo=UTC), Decimal(3), 1),
        ("s", 2, dt.datetime(2026, 1, 1, 10, tzinfo=UTC), Decimal(5), 2),  # 2 + 3
        ("s", 3, dt.datetime(2026, 1, 1, tzinfo=UTC), Decimal(5), 2),
    ]
    assert PendingEvent.objects.count() == 0
    assert fold_pending() == 0  # nothing left: idempotent


def test_deleted_meters_are_not_folded():
    meter = MeterFactory(aggregation="COUNT")
    Meter.objects.filter(pk=meter.pk).update(deleted_at=BASE)
    ingest([{"subject": "s", "time": BASE, "data": {}}])
    assert fold_pending() == 1
    assert not Rollup.objects.exists()


# --- backfill ----------------------------------------------------------------------------------------------------


def old_events(n, start=0):
    return [
        {"subject": f"s{i % 3}", "time": BASE + dt.timedelta(minutes=i), "data": {"tokens": i}}
        for i in range(start, start + n)
    ]


def test_meter_created_after_ingest_counts_old_events_while_building_and_after(django_capture_on_commit_callbacks):
    # given 30 events (tokens 0..29) stored and folded before the meter exists
    ingest(old_events(30))
    fold_pending()
    # when the meter is created; its backfill has not run yet
    meter = meter_create(slug="late", aggregation="SUM", event_type="request", value_property="$.tokens")
    assert meter.backfill_cursor == 0
    end = BASE + dt.timedelta(days=1)
    # then queries read raw events meanwhile: 0 + 1 + ... + 29 = 435
    assert meter_usage(meter=meter, subjects=["s0", "s1", "s2"], start=BASE, end=end) == Decimal(435)
    # and after the backfill (small chunks) the rollups give the same answer
    backfill(meter_id=meter.pk, chunk=7)
    meter.refresh_from_db()
    assert meter.backfill_cursor is None
    assert Rollup.objects.filter(meter=meter, resolution=1).count() == 30  # one event per minute, 0 is a value too
    assert meter_usage(meter=meter, subjects=["s0", "s1", "s2"], start=BASE, end=end) == Decimal(435)
    found = progress.progress_get(progress.meter_build_id(meter.pk))
    assert found is not None and found.success == found.total


def test_backfill_with_interleaved_ingest_and_folds_counts_every_event_once():
    # given folded and pending events, then a meter whose backfill advances in small chunks
    ingest(old_events(10))
    fold_pending(limit=2)  # up to 2 events of each subject's shard folded, the rest pending
    # the backfill starts at this test's first event: sequence values that earlier tests used (rolled back, never
    # reset) would otherwise take thousands of 3-seq chunks, while the events below arrive at 2 per chunk
    first_seq = Event.objects.aggregate(first=Min("seq"))["first"]
    meter = MeterFactory(aggregation="SUM", backfill_cursor=first_seq, group_by={})
    expected = sum(range(10))
    step = 0
    while not backfill_step(meter_id=meter.pk, chunk=3):
        assert step < 50, "the backfill must overtake ingest: 3 seqs a chunk against 2 new events"
        # while it runs: new events arrive, and folds run between chunks
        ingest(old_events(2, start=100 + 2 * step))
        expected += (100 + 2 * step) + (101 + 2 * step)
        if step % 2 == 0:
            fold_pending(limit=3)
        step += 1
    ingest(old_events(1, start=500))  # after the meter is ready
    expected += 500
    end = BASE + dt.timedelta(days=2)
    subjects = ["s0", "s1", "s2"]
    spec = QuerySpec(meter=meter, start=BASE, end=end)
    # then rollups + tail, after folding everything, equal the raw total, and both equal the hand total
    meter.refresh_from_db()
    assert meter.backfill_cursor is None
    assert meter_usage(meter=meter, subjects=subjects, start=BASE, end=end) == expected
    fold_pending()
    assert meter_usage(meter=meter, subjects=subjects, start=BASE, end=end) == expected
    assert run_query(spec) == run_raw_query(spec)


def test_late_committed_event_with_a_lower_seq_is_counted_once():
    # an event whose seq is below the cursor but which is still pending (it committed after its chunk ran)
    ingest(old_events(5))
    meter = MeterFactory(aggregation="SUM", group_by={})
    fold_pending()
    with_low_seq = PendingEvent.objects.count()
    assert with_low_seq == 0
    ingest(old_events(1, start=50))  # seq 6: pending
    pending_seq = PendingEvent.objects.get().seq
    rollups_rebuild_start(meter=meter)
    meter.refresh_from_db()
    # the chunk covering the pending event's seq skips it, the fold adds it (seq < cursor)
    backfill(meter_id=meter.pk, chunk=pending_seq + 10)
    fold_pending()
    end = BASE + dt.timedelta(days=1)
    assert meter_usage(meter=meter, subjects=["s0", "s1", "s2"], start=BASE, end=end) == 0 + 1 + 2 + 3 + 4 + 50


def test_rebuild_drops_old_rollups_and_reads_raw_until_done():
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest(old_events(4))
    fold_pending()
    assert Rollup.objects.filter(meter=meter).exists()
    rollups_rebuild_start(meter=meter)
    assert not Rollup.objects.filter(meter=meter).exists()
    meter.refresh_from_db()
    end = BASE + dt.timedelta(days=1)
    assert meter_usage(meter=meter, subjects=["s0", "s1", "s2"], start=BASE, end=end) == 6  # 0+1+2+3, raw
    backfill(meter_id=meter.pk)
    meter.refresh_from_db()
    assert meter_usage(meter=meter, subjects=["s0", "s1", "s2"], start=BASE, end=end) == 6


def test_a_meter_failing_at_run_time_does_not_block_the_fold():
    good = MeterFactory(aggregation="SUM", group_by={})
    bad = MeterFactory(aggregation="SUM", value_property="$.tokens / $.zero", group_by={})  # division by zero
    ingest([{"subject": "s", "time": BASE, "data": {"tokens": 5, "zero": 0}}])
    assert fold_pending() == 1
    end = BASE + dt.timedelta(hours=1)
    assert meter_usage(meter=good, subjects=["s"], start=BASE, end=end) == 5
    bad.refresh_from_db()
    assert bad.backfill_cursor == 0  # marked for a rebuild: its queries read raw events


def test_a_value_that_rounds_to_1e19_at_scale_19_counts_as_no_value_and_poisons_nothing():
    # given a value under 1E+19 with 20 decimals, which NUMERIC(38, 19) rounds up to 1E+19, beside the largest
    # value the meters read and a small one
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": BASE, "data": {"tokens": "9999999999999999999.99999999999999999999"}},
            {"subject": "s", "time": BASE, "data": {"tokens": "-9999999999999999999.99999999999999999995"}},
            {"subject": "s", "time": BASE, "data": {"tokens": "9999999999999999999.9999999999999999999"}},
            {"subject": "s", "time": BASE + dt.timedelta(seconds=1), "data": {"tokens": 1}}])
    # then the two that round past the limit count as no value (as a value of 1E+19 does), read raw or folded:
    # 9999999999999999999.9999999999999999999 + 1
    end = BASE + dt.timedelta(hours=1)
    expected = Decimal("10000000000000000000.9999999999999999999")
    assert meter_usage(meter=meter, subjects=["s"], start=BASE, end=end) == expected
    assert fold_pending() == 4
    meter.refresh_from_db()
    assert meter.backfill_cursor is None  # the fold did not fail on them
    assert meter_usage(meter=meter, subjects=["s"], start=BASE, end=end) == expected


def test_a_bucket_summing_past_1e19_is_folded_and_the_meter_keeps_its_rollups():
    # given values just under the limit of one event's value (1E+19), three of them in one minute
    meter = MeterFactory(aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": BASE + dt.timedelta(seconds=i), "data": {"tokens": "9999999999999999999.5"}}
            for i in range(3)])
    # when they are folded, twice into the same buckets
    assert fold_pending() == 3
    ingest([{"subject": "s", "time": BASE + dt.timedelta(seconds=30), "data": {"tokens": "0.25"}}])
    assert fold_pending() == 1
    # then the meter was not marked for a rebuild, its buckets hold the exact sum, and queries read them
    meter.refresh_from_db()
    assert meter.backfill_cursor is None
    minute = Rollup.objects.get(meter=meter, resolution=Rollup.Resolution.MINUTE, subject="s")
    assert minute.sum == Decimal("29999999999999999998.75") and minute.count == 4
    end = BASE + dt.timedelta(hours=1)
    assert meter_usage(meter=meter, subjects=["s"], start=BASE, end=end) == Decimal("29999999999999999998.75")


def _pending_queue_bytes() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_relation_size('metering_pendingevent')")
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_big_fold_vacuums_the_emptied_queue():
    # given a folded queue whose dead rows still take pages
    MeterFactory(aggregation="SUM", group_by={})
    ingest(old_events(2000))
    fold_pending()
    assert _pending_queue_bytes() > 0
    # when a backlog at least `vacuum_after` long is folded (here: 1 event, 2,000 are dead rows)
    ingest(old_events(1, start=5000))
    assert fold_backlog(vacuum_after=1) == 1
    # then the queue is empty on disk too
    assert _pending_queue_bytes() == 0


def test_fold_backlog_counts_pending_events_and_ages_the_oldest():
    # given no events: nothing pending
    assert fold_backlog_figures() == (0, 0.0)
    # given three events, the first folded, the other two stored 90 s and 30 s ago (now() is the test's
    # transaction time, so the ages are exact)
    ingest(old_events(3))
    folded = PendingEvent.objects.order_by("seq").first()
    fold_shard(shard=folded.shard, limit=1)
    first, second = PendingEvent.objects.order_by("seq").values_list("seq", flat=True)
    with connection.cursor() as cur:
        cur.execute("UPDATE metering_event SET ingested_at = now() - make_interval(secs => %s) WHERE seq = %s", [90, first])
        cur.execute("UPDATE metering_event SET ingested_at = now() - make_interval(secs => %s) WHERE seq = %s", [30, second])
    # then the backlog is two events, the oldest 90 s old
    assert fold_backlog_figures() == (2, 90.0)
