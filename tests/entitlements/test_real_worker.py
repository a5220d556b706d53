"""The reset job through a real Celery worker on Redis."""

import datetime as dt

import pytest
from django.utils import timezone

from entitlements.models import UsageReset
from entitlements.services import UsagePeriodInput, entitlement_create
from openmeter_site.celery import app
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory


@pytest.mark.django_db(transaction=True)
def test_reset_job_runs_on_a_real_worker_and_twice_changes_nothing(start_celery_worker):
    # given: a daily entitlement anchored three days and one hour ago (the worker uses the real clock)
    anchor = (timezone.now() - dt.timedelta(days=3, hours=1)).replace(second=0, microsecond=0)
    entitlement_create(customer=CustomerFactory(), feature=FeatureFactory(meter=MeterFactory()), type="metered",
                       usage_period=UsagePeriodInput("DAY", anchor), measure_usage_from=anchor, at=anchor)
    queue = start_celery_worker()
    # when
    first = app.send_task("entitlements.reset_due", queue=queue).get(timeout=90)
    second = app.send_task("entitlements.reset_due", queue=queue).get(timeout=90)
    # then: the current period started 3 days after the anchor; recorded once
    assert (first, second) == (1, 0)
    assert list(UsageReset.objects.values_list("reset_at", flat=True)) == [anchor + dt.timedelta(days=3)]
