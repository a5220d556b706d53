"""The main billing flow through the official Python client against the real HTTP stack (gunicorn)."""

import datetime as dt
import time
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone
from openmeter import Client

from tests.billing.helpers import customer, iso, metered_feature
from tests.factories import addon_body, flat_fee_card, ingest, plan_body


@pytest.mark.django_db(transaction=True)
def test_profile_pending_lines_invoice_approve_list(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key)
    feature = metered_feature()
    cust = customer(name="Wayne Enterprises", subjects=("wayne",))
    start = (timezone.now() - dt.timedelta(days=40)).replace(microsecond=0)
    end = start + dt.timedelta(days=30)
    ingest([{"subject": "wayne", "type": "tokens", "time": start + dt.timedelta(days=2), "data": {"tokens": 2500}}])

    # a manual-approval profile on the sandbox app becomes the default
    default = next(p for p in client.billing_profiles.list()["items"] if p.default)
    sandbox_id = default.apps["tax"]["id"]
    created = client.billing_profiles.create({
        "name": "Manual approval", "supplier": {"name": "Wayne Billing"}, "default": True,
        "workflow": {"invoicing": {"autoAdvance": False}},
        "apps": {"tax": sandbox_id, "invoicing": sandbox_id, "payment": sandbox_id},
    })
    assert created.default is True
    assert client.billing_profiles.get(created.id).workflow["invoicing"]["autoAdvance"] is False

    # pending lines: a flat fee in advance and usage at 0.002 per token
    pending = client.customer_invoice.create_pending_invoice_line(cust.pk, {
        "currency": "USD",
        "lines": [
            {"name": "Seat", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(start),
             "rateCard": {"price": {"type": "flat", "amount": "30", "paymentTerm": "in_advance"}}},
            {"name": "Tokens", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(end),
             "rateCard": {"featureKey": feature.key, "price": {"type": "unit", "amount": "0.002"}}},
        ],
    })
    assert pending.is_invoice_new is True
    assert pending.invoice.status == "gathering"

    [invoice] = client.invoices.invoice_pending_lines_action({"customerId": cust.pk})
    # 30 + 2,500 * 0.002 = 35
    assert invoice.totals.total == "35"
    assert invoice.status_details.extended_status == "draft.manual_approval_needed"

    approved = client.invoice.approve_action(invoice.id)
    assert approved.status == "paid"
    assert approved.number.startswith("OM-SANDBOX-WAEN-")

    listed = client.invoices.list(statuses=["paid"], expand=["lines"])
    assert [i.id for i in listed["items"]] == [invoice.id]
    assert {line.name for line in listed["items"][0].lines} == {"Seat", "Tokens"}

    override = client.customer_overrides.get(cust.pk)
    assert override.base_billing_profile_id == created.id


@pytest.mark.django_db(transaction=True)
def test_subscription_and_addon_lines_are_pending_when_the_change_commits(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key)
    cust = customer(name="Globex Corp", subjects=("globex",))
    body = plan_body("team", phases=[{"key": "main", "name": "Main", "duration": None,
                                      "rateCards": [flat_fee_card(amount="30")]}])
    plan = client.plans.create(body)
    seats = client.addons.create(addon_body(cards=[flat_fee_card(key="seat_fee", amount="10")]))
    client.addons.publish(seats.id)
    client.plan_addons.create(plan.id, {"addonId": seats.id, "fromPlanPhase": "main", "maxQuantity": 5})
    client.plans.publish(plan.id)

    # the month's fee (billed in advance, the period starts now) is pending as soon as the subscription exists
    sub = client.subscriptions.create({"plan": {"key": "team"}, "customerKey": cust.key})

    def pending() -> dict[str, dict]:
        [gathering] = client.invoices.list(statuses=["gathering"], expand=["lines"])["items"]
        return {line["name"]: line for line in gathering.lines}

    assert pending()["base_fee"]["price"]["amount"] == "30"

    # 2 seats bought a moment later: 2 * 10 pro-rated to the rest of the billing period. Periods are whole seconds,
    # so "a moment later" must be in a later second than the start (the live server's clock cannot be moved)
    started = dt.datetime.fromisoformat(pending()["base_fee"]["period"]["from"])
    time.sleep(max(0.0, (started + dt.timedelta(seconds=1) - dt.datetime.now(dt.UTC)).total_seconds()))
    bought = client.subscription_addons.create(
        sub.id, {"name": "Seats", "addon": {"id": seats.id}, "quantity": 2, "timing": "immediate"})
    line = pending()["seat_fee"]
    period = line["subscription"]["billingPeriod"]
    start, end = (dt.datetime.fromisoformat(period[k]) for k in ("from", "to"))
    bought_at = dt.datetime.fromisoformat(line["period"]["from"])
    assert bought_at > start
    micro = dt.timedelta(microseconds=1)
    expected = Decimal(20) * ((end - bought_at) // micro) / ((end - start) // micro)
    assert Decimal(line["price"]["amount"]) == expected.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert line["subscription"]["item"]["id"] == bought.id
