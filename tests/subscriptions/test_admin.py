"""Back office smoke tests for subscriptions: changelist per customer, timeline, state actions."""

import pytest
import time_machine

from subscriptions.models import Subscription
from tests.factories import CustomerFactory, FeatureFactory
from tests.subscriptions.test_lifecycle import publish_plan, subscribe, trial_plan, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(api) -> Subscription:
    FeatureFactory(key="tokens")
    publish_plan(api, trial_plan())
    created = subscribe(api, CustomerFactory(key="acme"), utc(2026, 1, 31, 12))
    return Subscription.objects.get(pk=created["id"])


def test_changelist_search_filter_and_timeline(admin_client, subscription):
    with time_machine.travel(utc(2026, 2, 5), tick=False):
        listing = admin_client.get("/admin/subscriptions/subscription/?q=acme&status=active")
        page = admin_client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    assert listing.status_code == 200
    assert subscription.pk.encode() in listing.content
    assert page.status_code == 200
    # the timeline shows the trial ending on Feb 28 (Jan 31 + P1M) and the open-ended main phase
    assert b'datetime="2026-02-28T12:00:00Z"' in page.content
    assert b"open-ended" in page.content


def test_cancel_and_continue_actions(admin_client, subscription):
    with time_machine.travel(utc(2026, 3, 15), tick=False):
        admin_client.post("/admin/subscriptions/subscription/",
                          {"action": "cancel_next_billing_cycle", "_selected_action": [subscription.pk],
                           "confirmed": "yes"})
        subscription.refresh_from_db()
        assert subscription.active_to == utc(2026, 3, 31, 12)
        admin_client.post("/admin/subscriptions/subscription/",
                          {"action": "continue_subscription", "_selected_action": [subscription.pk]})
        subscription.refresh_from_db()
        assert subscription.active_to is None
