"""Subscription lifecycle scenarios through the HTTP API, with every date worked out by hand."""

import datetime as dt

import pytest
import time_machine

from customers.models import Customer
from subscriptions.models import Subscription, SubscriptionPhase
from tests.factories import CustomerFactory, flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def z(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def publish_plan(api, body: dict, at: dt.datetime = LONG_AGO) -> dict:
    with time_machine.travel(at, tick=False):
        plan = api.post("/api/v1/plans", body, format="json")
        assert plan.status_code == 201, plan.content
        published = api.post(f"/api/v1/plans/{plan.json()['id']}/publish")
        assert published.status_code == 200, published.content
        return published.json()


def trial_plan(key: str = "pro", trial_fee: str = "0", fee: str = "49") -> dict:
    """Trial for one month, then the open-ended main phase with a usage-priced, metered feature."""
    return plan_body(key, phases=[
        {"key": "trial", "name": "Trial", "duration": "P1M", "rateCards": [flat_fee_card(amount=trial_fee)]},
        {"key": "main", "name": "Main", "duration": None, "rateCards": [
            flat_fee_card(amount=fee),
            usage_card("tokens", entitlementTemplate={"type": "metered", "isSoftLimit": True}),
        ]},
    ])


def subscribe(api, customer: Customer, at: dt.datetime, **body) -> dict:
    payload = {"plan": {"key": "pro"}, "customerKey": customer.key, **body}
    with time_machine.travel(at, tick=False):
        response = api.post("/api/v1/subscriptions", payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def get(api, subscription_id: str, at: dt.datetime) -> dict:
    with time_machine.travel(at, tick=False):
        response = api.get(f"/api/v1/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.content
    return response.json()


def post_at(api, path: str, body: dict | None, at: dt.datetime):
    with time_machine.travel(at, tick=False):
        return api.post(path, body or {}, format="json")


def assert_problem(response, status: int, text: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    assert text in response.json()["detail"], response.json()["detail"]
    return response.json()


def test_month_end_anchor_trial_then_open_ended(api, tokens):
    # given a plan with a 1-month trial, subscribed on Jan 31 2026 at noon
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    start = utc(2026, 1, 31, 12)

    created = subscribe(api, customer, start)

    # then the subscription starts then, anchored on the 31st, monthly
    assert created["status"] == "active"
    assert created["activeFrom"] == "2026-01-31T12:00:00Z"
    assert created["billingAnchor"] == "2026-01-31T12:00:00Z"
    assert created["billingCadence"] == "P1M"
    assert created["plan"]["key"] == "pro"
    assert created["customerId"] == customer.id

    sub = get(api, created["id"], start)
    trial, main = sub["phases"]
    # trial: Jan 31 + P1M = Feb 28 (February has no 31st); main is open-ended
    assert (trial["activeFrom"], trial["activeTo"]) == ("2026-01-31T12:00:00Z", "2026-02-28T12:00:00Z")
    assert (main["activeFrom"], main.get("activeTo")) == ("2026-02-28T12:00:00Z", None)
    assert [i["key"] for i in trial["items"]] == ["base_fee"]
    assert trial["items"][0]["price"]["amount"] == "0"
    assert sorted(i["key"] for i in main["items"]) == ["base_fee", "tokens"]
    tokens_item = next(i for i in main["items"] if i["key"] == "tokens")
    assert tokens_item["included"]["feature"]["key"] == "tokens"
    assert tokens_item["activeFrom"] == "2026-02-28T12:00:00Z"
    assert sub["alignment"]["currentAlignedBillingPeriod"] == {
        "from": "2026-01-31T12:00:00Z", "to": "2026-02-28T12:00:00Z",
    }

    # in mid-March the period is Feb 28 → Mar 31: each boundary is counted from the Jan 31 anchor
    sub = get(api, created["id"], utc(2026, 3, 15))
    assert sub["alignment"]["currentAlignedBillingPeriod"] == {
        "from": "2026-02-28T12:00:00Z", "to": "2026-03-31T12:00:00Z",
    }


def test_leap_day_start_with_yearly_cadence(api, tokens):
    publish_plan(api, plan_body("pro", billingCadence="P1Y", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(cadence="P1Y")]},
    ]))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2024, 2, 29))

    # 2025 has no Feb 29: the period ends on Feb 28 2025, the next on Feb 28 2026 ... and Feb 29 2028
    sub = get(api, created["id"], utc(2024, 6, 1))
    assert sub["alignment"]["currentAlignedBillingPeriod"] == {"from": "2024-02-29T00:00:00Z", "to": "2025-02-28T00:00:00Z"}
    sub = get(api, created["id"], utc(2027, 6, 1))
    assert sub["alignment"]["currentAlignedBillingPeriod"] == {"from": "2027-02-28T00:00:00Z", "to": "2028-02-29T00:00:00Z"}


def test_billing_anchor_is_normalised_to_the_recurrence_before_start(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    # anchor on the 5th of a later month, start on Mar 20: the anchor becomes Mar 5 (the 5th before the start)
    created = subscribe(api, customer, utc(2026, 3, 20), billingAnchor="2026-07-05T00:00:00Z")
    assert created["billingAnchor"] == "2026-03-05T00:00:00Z"
    sub = get(api, created["id"], utc(2026, 3, 20))
    assert sub["alignment"]["currentAlignedBillingPeriod"] == {"from": "2026-03-05T00:00:00Z", "to": "2026-04-05T00:00:00Z"}


def test_scheduled_start_then_delete(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10), timing="2026-02-01T00:00:00Z")
    assert created["status"] == "scheduled"
    assert created["activeFrom"] == "2026-02-01T00:00:00Z"

    # a scheduled subscription cannot be cancelled (403, as upstream), only deleted
    assert_problem(post_at(api, f"/api/v1/subscriptions/{created['id']}/cancel", {}, utc(2026, 1, 11)), 403, "cancel")
    with time_machine.travel(utc(2026, 1, 11), tick=False):
        assert api.delete(f"/api/v1/subscriptions/{created['id']}").status_code == 204
    assert Subscription.objects.get().deleted_at is not None
    # the customer can subscribe again
    subscribe(api, customer, utc(2026, 1, 12))


def test_deleting_a_customer_with_an_active_subscription_is_412_until_it_has_ended(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory(key="acme")
    created = subscribe(api, customer, utc(2026, 1, 10))
    post_at(api, f"/api/v1/subscriptions/{created['id']}/cancel", {"timing": "2026-03-01T00:00:00Z"}, utc(2026, 2, 1))

    # as upstream: still active (ending on Mar 1) → 412, nothing changed
    with time_machine.travel(utc(2026, 2, 20), tick=False):
        refused = api.delete("/api/v1/customers/acme")
    body = assert_problem(refused, 412, "still has active subscriptions")
    assert body["extensions"] == {"code": "deleting_customer_with_active_subscriptions", "subscriptions": [created["id"]]}
    assert Customer.objects.get(pk=customer.pk).deleted_at is None
    # once it has ended the customer can be deleted
    with time_machine.travel(utc(2026, 3, 1), tick=False):
        assert api.delete("/api/v1/customers/acme").status_code == 204
    assert Customer.objects.get(pk=customer.pk).deleted_at == utc(2026, 3, 1)


def test_cancel_at_next_billing_cycle_then_unschedule(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 31, 12))

    # on Mar 15 the current period is Feb 28 12:00 → Mar 31 12:00, so the subscription ends on Mar 31
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/cancel", {"timing": "next_billing_cycle"},
                       utc(2026, 3, 15))
    assert response.status_code == 200, response.content
    assert response.json()["activeTo"] == "2026-03-31T12:00:00Z"
    assert response.json()["status"] == "canceled"
    sub = get(api, created["id"], utc(2026, 3, 15))
    assert sub["phases"][-1]["activeTo"] == "2026-03-31T12:00:00Z"
    assert get(api, created["id"], utc(2026, 3, 31, 12))["status"] == "inactive"

    # continuing before it ends removes the end
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/unschedule-cancelation", None, utc(2026, 3, 20))
    assert response.status_code == 200, response.content
    assert (response.json().get("activeTo"), response.json()["status"]) == (None, "active")
    # an active subscription has no cancellation to unschedule
    again = post_at(api, f"/api/v1/subscriptions/{created['id']}/unschedule-cancelation", None, utc(2026, 3, 21))
    assert_problem(again, 403, "unschedule_cancelation")


def test_cancel_immediately_and_at_a_time(api, tokens):
    publish_plan(api, trial_plan())
    first, second = CustomerFactory(), CustomerFactory()
    a = subscribe(api, first, utc(2026, 1, 10))
    b = subscribe(api, second, utc(2026, 1, 10))

    now = post_at(api, f"/api/v1/subscriptions/{a['id']}/cancel", {}, utc(2026, 1, 20, 8, 30)).json()
    assert (now["activeTo"], now["status"]) == ("2026-01-20T08:30:00Z", "inactive")
    at = post_at(api, f"/api/v1/subscriptions/{b['id']}/cancel", {"timing": "2026-04-01T00:00:00Z"}, utc(2026, 1, 20))
    assert at.json()["activeTo"] == "2026-04-01T00:00:00Z"
    past = post_at(api, f"/api/v1/subscriptions/{b['id']}/cancel", {"timing": "2026-01-01T00:00:00Z"}, utc(2026, 1, 20))
    assert_problem(past, 403, "canceled")  # already cancelling: only continue is allowed


def test_change_mid_period_ends_old_and_starts_new_with_same_anchor(api, tokens):
    publish_plan(api, trial_plan())
    publish_plan(api, plan_body("team", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="99")]},
    ]))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10))

    # when: change on Feb 20, immediately
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/change",
                       {"timing": "immediate", "plan": {"key": "team"}}, utc(2026, 2, 20))

    # then the old one ends on Feb 20 and the new one starts then, billed on the Jan 10 anchor: Feb 10 → Mar 10
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["current"]["activeTo"], body["current"]["status"]) == ("2026-02-20T00:00:00Z", "inactive")
    nxt = body["next"]
    assert (nxt["activeFrom"], nxt["plan"]["key"], nxt["billingAnchor"]) == (
        "2026-02-20T00:00:00Z", "team", "2026-02-10T00:00:00Z",
    )
    assert nxt["alignment"]["currentAlignedBillingPeriod"] == {"from": "2026-02-10T00:00:00Z", "to": "2026-03-10T00:00:00Z"}
    assert nxt["phases"][0]["items"][0]["price"]["amount"] == "99"
    listed = api.get(f"/api/v1/customers/{customer.key}/subscriptions").json()
    assert listed["totalCount"] == 2


def test_change_at_next_billing_cycle(api, tokens):
    publish_plan(api, trial_plan())
    publish_plan(api, trial_plan("team", fee="99"))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10))

    body = post_at(api, f"/api/v1/subscriptions/{created['id']}/change",
                   {"timing": "next_billing_cycle", "plan": {"key": "team"}, "startingPhase": "main"},
                   utc(2026, 2, 20)).json()

    # the period containing Feb 20 is Feb 10 → Mar 10: the switch happens on Mar 10
    assert body["current"]["activeTo"] == "2026-03-10T00:00:00Z"
    assert body["current"]["status"] == "canceled"
    assert body["next"]["activeFrom"] == "2026-03-10T00:00:00Z"
    assert body["next"]["status"] == "scheduled"
    assert [p["key"] for p in body["next"]["phases"]] == ["main"]


def test_a_subscription_followed_by_its_change_cannot_continue(api, tokens):
    # given a change on Feb 20 at the next billing cycle: the current subscription ends on Mar 10, the next starts then
    publish_plan(api, trial_plan())
    publish_plan(api, trial_plan("team", fee="99"))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10))
    body = post_at(api, f"/api/v1/subscriptions/{created['id']}/change",
                   {"timing": "next_billing_cycle", "plan": {"key": "team"}}, utc(2026, 2, 20)).json()

    # when the current one is continued on Feb 25
    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/unschedule-cancelation", None, utc(2026, 2, 25))

    # then: 409, and it still ends on Mar 10
    assert_problem(response, 409, f"is followed by {body['next']['id']}; it cannot continue")
    assert get(api, created["id"], utc(2026, 2, 25))["activeTo"] == "2026-03-10T00:00:00Z"


def test_migrate_to_newer_version_mid_period(api, tokens):
    publish_plan(api, trial_plan(fee="49"))
    customer = CustomerFactory()
    created = subscribe(api, customer, utc(2026, 1, 10))
    v2 = publish_plan(api, trial_plan(fee="59"), at=utc(2026, 2, 1))
    assert v2["version"] == 2

    response = post_at(api, f"/api/v1/subscriptions/{created['id']}/migrate", {"startingPhase": "main"}, utc(2026, 2, 15))

    assert response.status_code == 200, response.content
    nxt = response.json()["next"]
    assert (nxt["plan"]["version"], nxt["activeFrom"]) == (2, "2026-02-15T00:00:00Z")
    assert nxt["billingAnchor"] == "2026-02-10T00:00:00Z"
    fee = next(i for i in nxt["phases"][0]["items"] if i["key"] == "base_fee")
    assert fee["price"]["amount"] == "59"
    # migrating again to the same version is refused
    again = post_at(api, f"/api/v1/subscriptions/{nxt['id']}/migrate", {"targetVersion": 2}, utc(2026, 2, 16))
    assert_problem(again, 400, "must be newer")


def test_custom_plan_subscription(api, tokens):
    customer = CustomerFactory(currency=None)
    body = {
        "customerId": customer.id,
        "customPlan": {"name": "Bespoke", "currency": "EUR", "billingCadence": "P1M", "phases": [
            {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="1000")]},
        ]},
    }
    with time_machine.travel(utc(2026, 5, 31), tick=False):
        response = api.post("/api/v1/subscriptions", body, format="json")
    assert response.status_code == 201, response.content
    sub = response.json()
    assert (sub["name"], sub["currency"], sub.get("plan")) == ("Bespoke", "EUR", None)
    # a custom plan cannot be migrated
    assert_problem(post_at(api, f"/api/v1/subscriptions/{sub['id']}/migrate", {}, utc(2026, 6, 1)), 400, "custom plan")


def test_a_paid_subscription_gives_a_customer_without_a_currency_the_plans_currency(api, tokens):
    # upstream's updateCustomerCurrencyIfNotSet: on create (and on edits) of a subscription with a priced item
    publish_plan(api, plan_body("paid", currency="EUR", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="10")]}]))
    free = flat_fee_card(key="free_access")
    free["price"] = None
    publish_plan(api, plan_body("free", currency="EUR", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [free]}]))
    paying, trying = CustomerFactory(currency=None), CustomerFactory(currency=None)
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        for customer, plan in ((paying, "paid"), (trying, "free")):
            r = api.post("/api/v1/subscriptions", {"plan": {"key": plan}, "customerId": customer.id}, format="json")
            assert r.status_code == 201, r.content
        assert api.get(f"/api/v1/customers/{paying.id}").json()["currency"] == "EUR"
        assert "currency" not in api.get(f"/api/v1/customers/{trying.id}").json()


def test_subscription_to_archived_plan_is_400_nothing_written(api, tokens):
    plan = publish_plan(api, trial_plan())
    with time_machine.travel(utc(2026, 1, 1), tick=False):
        api.post(f"/api/v1/plans/{plan['id']}/archive")
    customer = CustomerFactory()
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        by_version = api.post("/api/v1/subscriptions", {"plan": {"key": "pro", "version": 1}, "customerKey": customer.key},
                              format="json")
        latest = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": customer.key}, format="json")
    assert_problem(by_version, 400, "is archived")
    assert_problem(latest, 400, "no active version")
    assert not Subscription.objects.exists()


def test_customer_currency_mismatch_is_400(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory(currency="EUR")
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        response = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerId": customer.id}, format="json")
    assert_problem(response, 400, "billed in EUR")
    assert not Subscription.objects.exists()
    assert not SubscriptionPhase.objects.exists()


def test_overlapping_subscription_is_409(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    subscribe(api, customer, utc(2026, 1, 10))
    with time_machine.travel(utc(2026, 2, 1), tick=False):
        response = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": customer.key,
                                                      "timing": "2026-06-01T00:00:00Z"}, format="json")
    assert_problem(response, 409, "overlaps")
    assert Subscription.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"plan": {"key": "pro"}}, 400, "customerId or customerKey"),
        ({"plan": {"key": "pro"}, "customerKey": "ghost"}, 404, "customer 'ghost' not found"),
        ({"plan": {"key": "nope"}, "customerKey": "c"}, 404, "plan 'nope' not found"),
        ({"customerKey": "c"}, 400, "exactly one of plan or customPlan"),
        ({"plan": {"key": "pro"}, "customerKey": "c", "timing": "whenever"}, 400, "timing"),
        ({"plan": {"key": "pro"}, "customerKey": "c", "timing": "next_billing_cycle"}, 400, "timing"),
        ({"plan": {"key": "pro"}, "customerKey": "c", "startingPhase": "zzz"}, 400, "startingPhase"),
        ({"customerKey": "c", "customPlan": {"name": "X", "currency": "USD", "billingCadence": "P1M", "phases": [
            {"key": "a", "name": "A", "duration": "P1M", "rateCards": [flat_fee_card()]}]}}, 400, "open-ended"),
    ],
)
def test_bad_subscription_requests(api, tokens, body, status, message):
    publish_plan(api, trial_plan())
    CustomerFactory(key="c")
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        response = api.post("/api/v1/subscriptions", body, format="json")
    assert_problem(response, status, message)
    assert not Subscription.objects.exists()


def test_list_customer_subscriptions_by_status(api, tokens):
    publish_plan(api, trial_plan())
    customer = CustomerFactory()
    old = subscribe(api, customer, utc(2026, 1, 10))
    post_at(api, f"/api/v1/subscriptions/{old['id']}/cancel", {}, utc(2026, 1, 20))
    current = subscribe(api, customer, utc(2026, 1, 21))

    with time_machine.travel(utc(2026, 2, 1), tick=False):
        everything = api.get(f"/api/v1/customers/{customer.id}/subscriptions").json()
        active = api.get(f"/api/v1/customers/{customer.key}/subscriptions?status=active").json()
        newest_first = api.get(f"/api/v1/customers/{customer.key}/subscriptions?orderBy=activeFrom&order=DESC").json()
    assert [s["id"] for s in everything["items"]] == [old["id"], current["id"]]
    assert [s["status"] for s in everything["items"]] == ["inactive", "active"]
    assert [s["id"] for s in active["items"]] == [current["id"]]
    assert newest_first["items"][0]["id"] == current["id"]
    assert api.get("/api/v1/customers/ghost/subscriptions").status_code == 404
