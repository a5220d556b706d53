"""The main flow through the official Python client against a live server: plan → publish → subscribe → get."""

import pytest
from openmeter import Client

from tests.factories import CustomerFactory, FeatureFactory, addon_body, flat_fee_card, plan_body, usage_card

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_plan_subscription_and_addon_flow_with_the_python_client(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key)
    FeatureFactory(key="tokens")
    customer = CustomerFactory(key="acme")

    # plans: create, publish, get by key
    body = plan_body("pro", phases=[
        {"key": "trial", "name": "Trial", "duration": "P1M", "rateCards": [flat_fee_card(amount="0")]},
        {"key": "main", "name": "Main", "duration": None, "rateCards": [
            flat_fee_card(amount="49"),
            usage_card("tokens", price={"type": "tiered", "mode": "graduated", "tiers": [
                {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0.01"}},
                {"unitPrice": {"type": "unit", "amount": "0.005"}},
            ]}, entitlementTemplate={"type": "metered", "isSoftLimit": True}),
        ]},
    ])
    plan = client.plans.create(body)
    assert plan.status == "draft"
    addon = client.addons.create(addon_body())
    client.addons.publish(addon.id)
    link = client.plan_addons.create(plan.id, {"addonId": addon.id, "fromPlanPhase": "trial", "maxQuantity": 3})
    assert link.max_quantity == 3
    published = client.plans.publish(plan.id)
    assert published.status == "active"
    assert client.plans.get("pro").id == plan.id
    assert [p.id for p in client.plans.list(key=["pro"])] == [plan.id]

    # subscriptions: create for the customer key, read expanded, list per customer
    sub = client.subscriptions.create({"plan": {"key": "pro"}, "customerKey": "acme"})
    assert sub.status == "active"
    assert sub.customer_id == customer.id
    expanded = client.subscriptions.get_expanded(sub.id)
    assert [p.key for p in expanded.phases] == ["trial", "main"]
    assert expanded.phases[1]["items"][1]["price"]["tiers"][1]["unitPrice"]["amount"] == "0.005"
    listed = client.customers.list_customer_subscriptions("acme", status=["active"])
    assert (listed.total_count, [s["id"] for s in listed["items"]]) == (1, [sub.id])

    # subscription add-ons, cancel and continue
    bought = client.subscription_addons.create(
        sub.id, {"name": "Seats", "addon": {"id": addon.id}, "quantity": 2, "timing": "immediate"}
    )
    updated = client.subscription_addons.update(sub.id, bought.id, {"quantity": 3})
    assert updated.quantity == 3
    assert [a.id for a in client.subscription_addons.list(sub.id)] == [bought.id]
    canceled = client.subscriptions.cancel(sub.id, {"timing": "next_billing_cycle"})
    assert canceled.status == "canceled"
    assert client.subscriptions.unschedule_cancelation(sub.id).status == "active"
