"""Races (two transactions at once) and the beat task."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from entitlements.models import Entitlement, UsageReset
from entitlements.services import GrantInput, UsagePeriodInput, entitlement_create, entitlement_reset_due, grant_create
from entitlements.tasks import entitlement_reset_due_task
from openmeter_site.core.errors import Conflict
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _in_threads(fn, n=2):
    barrier = threading.Barrier(n)
    results: list = []

    def run():
        barrier.wait()
        try:
            results.append(fn())
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creates_for_one_feature_make_one_entitlement():
    customer = CustomerFactory()
    feature = FeatureFactory(meter=None)
    results = _in_threads(lambda: entitlement_create(customer=customer, feature=feature, type="boolean"))
    assert sum(isinstance(r, Entitlement) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert Entitlement.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_reset_jobs_at_once_record_each_reset_once():
    customer = CustomerFactory()
    for i in range(3):
        feature = FeatureFactory(meter=MeterFactory(slug=f"m{i}"))
        entitlement_create(customer=customer, feature=feature, type="metered",
                           usage_period=UsagePeriodInput("DAY", T0), measure_usage_from=T0, at=T0)
    with time_machine.travel(T0 + dt.timedelta(days=3, hours=1), tick=False):
        results = _in_threads(entitlement_reset_due)
    assert sum(results) == 3  # each reset recorded by exactly one of the two jobs
    assert UsageReset.objects.count() == 3
    assert set(UsageReset.objects.values_list("reset_at", flat=True)) == {T0 + dt.timedelta(days=3)}


@pytest.mark.django_db
def test_reset_task_runs_eagerly_and_is_idempotent():
    customer = CustomerFactory(key="c")
    feature = FeatureFactory(meter=MeterFactory(slug="tokens"))
    ent = entitlement_create(customer=customer, feature=feature, type="metered",
                             usage_period=UsagePeriodInput("WEEK", T0), measure_usage_from=T0, at=T0)
    grant_create(entitlement=ent, data=GrantInput(amount=Decimal(10), effective_at=T0), at=T0)
    ingest([{"subject": "c", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 4}}])
    with time_machine.travel(T0 + dt.timedelta(days=9), tick=False):
        assert entitlement_reset_due_task.delay().get() == 1
        assert entitlement_reset_due_task.delay().get() == 0
    reset = UsageReset.objects.get()
    assert (reset.reset_at, reset.automatic) == (T0 + dt.timedelta(days=7), True)
    # the boundary is two days old (past the one-day grace window): its snapshot holds 10 - 4 = 6
    snapshot = ent.snapshots.get(checkpoint=False)
    assert Decimal(next(iter(snapshot.balances.values()))) == Decimal(6)


@pytest.mark.django_db
def test_a_read_inside_a_minute_includes_that_partial_minute(api):
    customer = CustomerFactory(key="c")
    feature = FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    ent = entitlement_create(customer=customer, feature=feature, type="metered",
                             usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
    grant_create(entitlement=ent, data=GrantInput(amount=Decimal(10), effective_at=T0), at=T0)
    ingest([{"subject": "c", "time": T0 + dt.timedelta(hours=1, seconds=10), "data": {"tokens": 3}}])
    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False):
        before = api.get("/api/v2/customers/c/entitlements/tokens/value", {"time": "2026-03-01T01:00:05Z"}).json()
        inside = api.get("/api/v2/customers/c/entitlements/tokens/value", {"time": "2026-03-01T01:00:30Z"}).json()
    assert before["usage"] == 3  # the minute 01:00 is counted whole, as upstream does
    assert inside["usage"] == 3
    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False):
        earlier = api.get("/api/v2/customers/c/entitlements/tokens/value", {"time": "2026-03-01T00:59:59Z"}).json()
    assert earlier["usage"] == 0


@pytest.mark.django_db
def test_entitlement_list_query_count_does_not_grow_with_rows(api, django_assert_max_num_queries):
    for i in range(5):
        customer = CustomerFactory(subjects=[f"s{i}"])
        entitlement_create(customer=customer, feature=FeatureFactory(key=f"f_{i}", meter=MeterFactory(slug=f"q{i}")),
                           type="metered", usage_period=UsagePeriodInput("MONTH", T0))
    with django_assert_max_num_queries(8):
        assert len(api.get("/api/v1/entitlements").json()) == 5
