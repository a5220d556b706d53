"""Folds in parallel on the real PostgreSQL (threads, each with its own connection): no cluster-wide lock, and every
event counted exactly once, also while ingest goes on and a meter is rebuilt by its backfill beside the folds."""

import datetime as dt
import random
import threading
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from metering.models import Meter, PendingEvent
from metering.postgres.fold import SHARD_LOCK, fold_all, fold_pending
from metering.postgres.query import QuerySpec, meter_usage, run_query, run_raw_query
from metering.postgres.store import FOLD_SHARDS
from metering.services import meter_create, meter_update
from tests import conftest
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db(transaction=True)

UTC = dt.UTC
BASE = dt.datetime(2026, 2, 27, tzinfo=UTC)  # two days into March: events in two partitions
SUBJECTS = [f"s{i}" for i in range(100)]  # spread over every shard


def events(n: int, first: int, rng: random.Random) -> list[dict]:
    return [
        {"subject": rng.choice(SUBJECTS), "time": BASE + dt.timedelta(seconds=rng.randrange(2 * 86400)),
         "data": {"tokens": first + i, "model": rng.choice(["a", "b"])}}
        for i in range(n)
    ]


def in_thread(target, errors: list[BaseException]):
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=run)


def test_a_fold_skips_a_shard_another_process_is_folding():
    # given events in every shard, and another session folding shard 0 (holding its lock)
    ingest(events(200, 0, random.Random(1)))
    shard0 = PendingEvent.objects.filter(shard=0).count()
    assert shard0 > 0 and PendingEvent.objects.values("shard").distinct().count() == FOLD_SHARDS
    other = psycopg.connect(conftest.test_database_url().replace("postgres://", "postgresql://"), autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s, 0)", [SHARD_LOCK])
    try:
        # when this process folds, it does not wait: it folds every other shard
        assert fold_pending() == 200 - shard0
        assert set(PendingEvent.objects.values_list("shard", flat=True)) == {0}
    finally:
        other.close()
    # and once the other session is gone, shard 0 too
    assert fold_pending() == shard0


def test_parallel_folds_ingest_and_a_rebuild_count_every_event_once():
    # given a meter with folded events, then ingest going on while two folds run in parallel
    rng = random.Random(17)
    summed = MeterFactory(slug="tokens", aggregation="SUM", group_by={"model": "$.model"})
    first = events(300, 0, rng)
    ingest(first)
    fold_all(limit=70)
    batches = [events(60, 1000 + 100 * k, rng) for k in range(12)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def folder() -> None:
        while not stop.is_set():
            fold_pending(limit=45)  # small batches: many transactions, interleaved with everything else

    def ingester() -> None:
        for batch in batches[:6]:
            ingest(batch)

    folders = [in_thread(folder, errors) for _ in range(2)]
    for t in folders:
        t.start()
    ingest_thread = in_thread(ingester, errors)
    ingest_thread.start()
    # when a second meter is created over the stored events (its backfill runs on commit: tasks are eager here)
    # beside the folds and ingest, the rest of the events come in, and the first meter's groupBy changes (a
    # rebuild) meanwhile
    counted = meter_create(slug="requests", aggregation="COUNT", event_type="request")
    for batch in batches[6:]:
        ingest(batch)
    meter_update(meter=summed, name="tokens", group_by={})
    ingest_thread.join(120)
    stop.set()
    for t in folders:
        t.join(120)
    assert not errors, errors
    fold_all()
    # then both meters' rollups hold every event once: the hand totals, and the raw query's rows
    all_events = first + [e for batch in batches for e in batch]
    end = BASE + dt.timedelta(days=3)
    summed.refresh_from_db()
    counted.refresh_from_db()
    assert summed.backfill_cursor is None and counted.backfill_cursor is None
    assert PendingEvent.objects.count() == 0
    assert meter_usage(meter=summed, subjects=SUBJECTS, start=BASE, end=end) == sum(e["data"]["tokens"] for e in all_events)
    assert meter_usage(meter=counted, subjects=SUBJECTS, start=BASE, end=end) == Decimal(len(all_events))
    for meter in Meter.objects.filter(pk__in=[summed.pk, counted.pk]):
        for spec in (QuerySpec(meter=meter, start=BASE, end=end, window_size="HOUR", group_by=["subject"]),
                     QuerySpec(meter=meter, start=BASE, end=end, window_size="DAY")):
            assert run_query(spec) == run_raw_query(spec)
