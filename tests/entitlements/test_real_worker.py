"""The reset job through a real Celery worker on Redis (one per test session of this app)."""

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.utils import timezone

from entitlements.models import UsageReset
from entitlements.services import UsagePeriodInput, entitlement_create
from openmeter_site.celery import app
from tests import conftest
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

QUEUE = "entitlements-tests"


@pytest.mark.django_db(transaction=True)
def test_reset_job_runs_on_a_real_worker_and_twice_changes_nothing():
    # given: a daily entitlement anchored three days and one hour ago (the worker uses the real clock)
    anchor = (timezone.now() - dt.timedelta(days=3, hours=1)).replace(second=0, microsecond=0)
    entitlement_create(customer=CustomerFactory(), feature=FeatureFactory(meter=MeterFactory()), type="metered",
                       usage_period=UsagePeriodInput("DAY", anchor), measure_usage_from=anchor, at=anchor)
    env = {**os.environ, "DATABASE_URL": conftest.test_database_url(), "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
           "CELERY_TASK_ALWAYS_EAGER": "0"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool", "solo", "-Q", QUEUE,
         "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=conftest.ROOT, env=env,
    )
    try:
        # when
        first = app.send_task("entitlements.reset_due", queue=QUEUE).get(timeout=90)
        second = app.send_task("entitlements.reset_due", queue=QUEUE).get(timeout=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # then: the current period started 3 days after the anchor; recorded once
    assert (first, second) == (1, 0)
    assert list(UsageReset.objects.values_list("reset_at", flat=True)) == [anchor + dt.timedelta(days=3)]
