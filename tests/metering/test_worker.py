"""The rollup jobs through a real Celery worker (two processes) on Redis, against the test database."""

import datetime as dt
from decimal import Decimal

import pytest

from metering.models import Meter, PendingEvent
from metering.postgres.query import meter_usage
from openmeter_site.celery import app
from tests.factories import MeterFactory, ingest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def worker(start_celery_worker):
    return start_celery_worker(concurrency=2)


def test_two_workers_fold_and_backfill_count_every_event_once(worker):
    # given events of a meter that exists (pending) and a second meter created over them (to backfill)
    ready = MeterFactory(slug="ready", aggregation="SUM", group_by={})
    ingest([{"subject": "s", "time": T0 + dt.timedelta(minutes=i), "data": {"tokens": i}} for i in range(200)])
    late = MeterFactory(slug="late", aggregation="SUM", group_by={}, backfill_cursor=0)
    # when two fold tasks and a backfill run at once on two worker processes
    results = [
        app.send_task("metering.fold_pending", queue=worker),
        app.send_task("metering.fold_pending", queue=worker),
        app.send_task("metering.backfill_meter", args=[late.pk], queue=worker),
    ]
    for result in results:
        result.get(timeout=90)
    app.send_task("metering.fold_pending", queue=worker).get(timeout=90)
    # then every event is in the rollups once: 0 + 1 + ... + 199 = 19900
    assert PendingEvent.objects.count() == 0
    late.refresh_from_db()
    assert late.backfill_cursor is None
    end = T0 + dt.timedelta(days=1)
    for meter in (Meter.objects.get(pk=ready.pk), late):
        assert meter_usage(meter=meter, subjects=["s"], start=T0, end=end) == Decimal(19900)
