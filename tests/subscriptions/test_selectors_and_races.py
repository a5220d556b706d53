"""Selectors other apps call, and two concurrent subscribes for one customer: one wins, one gets 409."""

import threading

import pytest
import time_machine
from django.db import connection

from subscriptions.models import Subscription
from subscriptions.selectors import customer_current_subscription, subscription_items_in_period
from subscriptions.services.lifecycle import subscription_create
from tests.factories import CustomerFactory, FeatureFactory
from tests.subscriptions.test_lifecycle import post_at, publish_plan, subscribe, trial_plan, utc


@pytest.mark.django_db
def test_current_subscription_and_items_in_period(api):
    FeatureFactory(key="tokens")
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 31, 12))
    post_at(api, f"/api/v1/subscriptions/{created['id']}/cancel", {"timing": "2026-04-01T00:00:00Z"}, utc(2026, 2, 1))

    assert customer_current_subscription(customer_id=customer.id, at=utc(2026, 3, 1)).id == created["id"]
    assert customer_current_subscription(customer_id=customer.id, at=utc(2026, 4, 1)) is None

    sub = Subscription.objects.get()
    # the billing period Feb 28 12:00 → Mar 31 12:00 is all main phase: base_fee and tokens
    spans = subscription_items_in_period(subscription=sub, start=utc(2026, 2, 28, 12), end=utc(2026, 3, 31, 12))
    assert sorted((s.item.key, s.start) for s in spans) == [
        ("base_fee", utc(2026, 2, 28, 12)), ("tokens", utc(2026, 2, 28, 12)),
    ]
    # the first period is the trial's: its flat fee only
    spans = subscription_items_in_period(subscription=sub, start=utc(2026, 1, 31, 12), end=utc(2026, 2, 28, 12))
    assert [(s.item.key, s.item.phase.key, s.end) for s in spans] == [("base_fee", "trial", utc(2026, 2, 28, 12))]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_subscribes_one_wins(api):
    FeatureFactory(key="tokens")
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            barrier.wait()
            subscription_create(customer=customer.key, plan_key="pro")
            outcomes.append("created")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    with time_machine.travel(utc(2026, 1, 10), tick=False):  # one clock for both threads
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert sorted(outcomes) == ["Conflict", "created"]
    assert Subscription.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_customer_subscription_list_does_not_grow_with_rows(api):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    FeatureFactory(key="tokens")
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    first = subscribe(api, customer, utc(2026, 1, 1))
    post_at(api, f"/api/v1/subscriptions/{first['id']}/cancel", {}, utc(2026, 1, 2))

    def count() -> int:
        with CaptureQueriesContext(db) as ctx:
            assert api.get(f"/api/v1/customers/{customer.id}/subscriptions").status_code == 200
        return len(ctx.captured_queries)

    count()  # warm-up: the first request of a key also records its last use
    one = count()
    for day in range(3, 7):
        sub = subscribe(api, customer, utc(2026, 1, day))
        post_at(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {}, utc(2026, 1, day, 12))
    assert count() == one
