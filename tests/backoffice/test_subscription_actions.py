"""Subscription actions from the back office (subscribe, change plan, cancel, continue, add-ons, delete a scheduled
one): each calls the subscriptions service, its rejection is shown on the form, and nothing changes then."""

import datetime as dt

import pytest
import time_machine

from catalog.models import Plan
from subscriptions.models import Subscription, SubscriptionAddon
from subscriptions.services.addons import subscription_addon_quantity_at
from tests.backoffice.conftest import T0, pro_plan, publish_plan_with_seats
from tests.factories import CustomerFactory
from tests.subscriptions.test_lifecycle import publish_plan

pytestmark = pytest.mark.django_db

NOW = T0 + dt.timedelta(days=3, hours=10)  # Mar 4, 10:00 UTC


def post(admin_client, url: str, data: dict | None = None, at: dt.datetime = NOW):
    with time_machine.travel(at, tick=False):
        return admin_client.post(url, data or {}, follow=True)


def errors(response) -> str:
    assert response.status_code == 200 and response.redirect_chain == []  # the form again, not a redirect
    form = response.context["form"]
    return " ".join(str(e) for errs in form.errors.values() for e in errs)


@pytest.fixture
def fresh(api, tokens):
    """A customer with no subscription yet, and the Pro plan published."""
    publish_plan_with_seats(api, pro_plan())
    return CustomerFactory(key="initech", name="Initech", subjects=["initech-api"])


def test_subscribe_now_from_the_customer_page(admin_client, fresh):
    plan = Plan.objects.get(key="pro")
    url = f"/admin/customers/customer/{fresh.pk}/do/subscribe/"
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(url).content.decode()
    assert "Pro (pro v1) · USD · billed every 1 month" in page
    response = post(admin_client, url, {"plan": plan.pk, "start_at": "", "billing_anchor": ""})
    assert response.redirect_chain[-1][0] == f"/admin/customers/customer/{fresh.pk}/change/"
    assert "Initech is subscribed to Pro (pro v1) from 2026-03-04 10:00 UTC." in response.content.decode()
    sub = Subscription.objects.get(customer=fresh)
    assert (sub.plan_id, sub.active_from, sub.billing_anchor) == (plan.pk, NOW, NOW)


def test_subscribe_at_a_date_in_the_operators_zone_with_an_anchor(admin_client, fresh):
    admin_client.cookies["om_tz"] = "Europe/Berlin"
    plan = Plan.objects.get(key="pro")
    post(admin_client, f"/admin/customers/customer/{fresh.pk}/do/subscribe/",
         {"plan": plan.pk, "start_at": "2026-03-10T00:00", "billing_anchor": "2026-04-01T00:00"})
    sub = Subscription.objects.get(customer=fresh)
    # midnight in Berlin (CET, +1) is 23:00 UTC the day before; the anchor recurs monthly back to Mar 1 before start
    assert sub.active_from == dt.datetime(2026, 3, 9, 23, tzinfo=dt.UTC)
    assert sub.billing_anchor == dt.datetime(2026, 2, 28, 23, tzinfo=dt.UTC)
    with time_machine.travel(NOW, tick=False):
        assert sub.status == "scheduled"


@pytest.mark.parametrize(("fields", "message"), [
    ({"start_at": "2026-03-01T00:00"}, "cannot start in the past"),
    ({"plan": "01NOTAPLAN000000000000000"}, "Select a valid choice"),
], ids=["start-in-the-past", "unknown-plan"])
def test_subscribe_rejections_are_shown_and_nothing_is_written(admin_client, fresh, fields, message):
    data = {"plan": Plan.objects.get(key="pro").pk, "start_at": "", "billing_anchor": "", **fields}
    response = post(admin_client, f"/admin/customers/customer/{fresh.pk}/do/subscribe/", data)
    assert message in errors(response)
    assert not Subscription.objects.filter(customer=fresh).exists()


def test_subscribe_a_customer_billed_in_another_currency_is_refused(admin_client, fresh):
    fresh.currency = "EUR"
    fresh.save()
    response = post(admin_client, f"/admin/customers/customer/{fresh.pk}/do/subscribe/",
                    {"plan": Plan.objects.get(key="pro").pk, "start_at": "", "billing_anchor": ""})
    assert "the plan is in USD but customer Initech is billed in EUR" in errors(response)
    assert not Subscription.objects.exists()


def test_change_plan_at_the_end_of_the_billing_period(admin_client, api, story):
    publish_plan(api, pro_plan(key="max", fee="99"))
    hub = f"/admin/customers/customer/{story.customer.pk}/change/"
    url = f"/admin/subscriptions/subscription/{story.subscription.pk}/do/change_plan/?next={hub}"
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(url).content.decode()
    assert "At the end of the billing period (2026-04-01 00:00 UTC)" in page
    assert "pro v1" not in page  # the current plan is not offered
    response = post(admin_client, url, {"plan": Plan.objects.get(key="max").pk, "timing": "next_billing_cycle"})
    assert response.redirect_chain[-1][0] == hub
    assert "moves to Max (max v1) on 2026-04-01 00:00 UTC" in response.content.decode()
    old, new = Subscription.objects.filter(customer=story.customer).order_by("active_from")
    assert old.active_to == new.active_from == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert new.plan.key == "max" and new.billing_anchor == new.active_from  # the anchor carries over: Mar 1 + 1 month


def test_change_to_a_plan_in_another_currency_is_refused_and_nothing_changes(admin_client, api, story):
    publish_plan(api, {**pro_plan(key="euro"), "currency": "EUR"})
    customer = story.customer
    customer.currency = "USD"
    customer.save()
    response = post(admin_client, f"/admin/subscriptions/subscription/{story.subscription.pk}/do/change_plan/",
                    {"plan": Plan.objects.get(key="euro").pk, "timing": "immediate"})
    assert "the plan is in EUR but customer ACME Inc. is billed in USD" in errors(response)
    assert Subscription.objects.get().active_to is None


def test_cancel_at_period_end_then_continue(admin_client, story):
    base = f"/admin/subscriptions/subscription/{story.subscription.pk}/do"
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(f"{base}/cancel/").content.decode()
    assert "its entitlements end and no further periods are billed" in page  # the confirmation
    done = post(admin_client, f"{base}/cancel/", {"timing": "next_billing_cycle"})
    assert "will end on 2026-04-01 00:00 UTC" in done.content.decode()
    assert Subscription.objects.get().active_to == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    # a canceled subscription offers "Continue" and no longer "Cancel"
    again = post(admin_client, f"{base}/cancel/", {"timing": "immediate"})
    assert "is not possible" in again.content.decode()
    assert Subscription.objects.get().active_to == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    continued = post(admin_client, f"{base}/continue/")
    assert "continues" in continued.content.decode() and Subscription.objects.get().active_to is None


def test_cancel_now(admin_client, story):
    post(admin_client, f"/admin/subscriptions/subscription/{story.subscription.pk}/do/cancel/", {"timing": "immediate"})
    assert Subscription.objects.get().active_to == NOW


def test_buy_then_change_an_add_on(admin_client, story):
    url = f"/admin/subscriptions/subscription/{story.subscription.pk}/do/addon/"
    addon = story.subscription.plan.plan_addons.get().addon
    bought = post(admin_client, url, {"addon": addon.pk, "quantity": 2, "timing": "immediate"})
    assert "Extra_Seats: quantity 2" in bought.content.decode()
    sa = SubscriptionAddon.objects.get()
    later = NOW + dt.timedelta(days=1)
    post(admin_client, url, {"addon": addon.pk, "quantity": 5, "timing": "immediate"}, at=later)
    assert SubscriptionAddon.objects.count() == 1
    assert subscription_addon_quantity_at(sa, NOW) == 2 and subscription_addon_quantity_at(sa, later) == 5
    # more than the plan allows is refused, nothing changes
    response = post(admin_client, url, {"addon": addon.pk, "quantity": 11, "timing": "immediate"}, at=later)
    assert "at most 10 of this add-on" in errors(response)
    assert subscription_addon_quantity_at(sa, later) == 5


def test_delete_a_scheduled_subscription(admin_client, fresh):
    post(admin_client, f"/admin/customers/customer/{fresh.pk}/do/subscribe/",
         {"plan": Plan.objects.get(key="pro").pk, "start_at": "2026-04-01T00:00", "billing_anchor": ""})
    sub = Subscription.objects.get()
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(f"/admin/subscriptions/subscription/{sub.pk}/change/").content.decode()
    assert "Delete scheduled subscription" in page and "do/cancel/" not in page
    post(admin_client, f"/admin/subscriptions/subscription/{sub.pk}/do/delete/")
    assert Subscription.objects.get().deleted_at == NOW
