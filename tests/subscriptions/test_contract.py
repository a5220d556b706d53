"""Responses validated against the spec's schemas (the vendored spec in tests/contract)."""

import pytest
import time_machine

from tests.contract.spec import assert_matches as validate
from tests.factories import CustomerFactory, FeatureFactory, addon_body, flat_fee_card, plan_body, usage_card
from tests.subscriptions.test_lifecycle import post_at, subscribe, utc

pytestmark = pytest.mark.django_db

def test_plan_addon_and_subscription_bodies_match_the_spec(api):
    FeatureFactory(key="tokens")
    tiered = {"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "10", "unitPrice": {"type": "unit", "amount": "1"}},
        {"flatPrice": {"type": "flat", "amount": "5"}, "unitPrice": {"type": "unit", "amount": "0.5"}},
    ]}
    body = plan_body(phases=[
        {"key": "trial", "name": "Trial", "duration": "P1M", "rateCards": [flat_fee_card(amount="0")]},
        {"key": "main", "name": "Main", "duration": None, "rateCards": [
            flat_fee_card(discounts={"percentage": {"percentage": 15}}),
            usage_card("tokens", price=tiered, entitlementTemplate={"type": "metered", "issueAfterReset": "100"},
                       discounts={"usage": {"quantity": "10"}}, taxConfig={"behavior": "exclusive"}),
        ]},
    ])
    draft = api.post("/api/v1/plans", body, format="json").json()
    validate(draft, "Plan")
    with time_machine.travel(utc(2020, 1, 1), tick=False):
        addon = api.post("/api/v1/addons", addon_body(), format="json").json()
        validate(addon, "Addon")
        api.post(f"/api/v1/addons/{addon['id']}/publish")
        link = api.post(f"/api/v1/plans/{draft['id']}/addons", {"addonId": addon["id"], "fromPlanPhase": "trial"},
                        format="json").json()
        validate(link, "PlanAddon")
        validate(api.post(f"/api/v1/plans/{draft['id']}/publish").json(), "Plan")
        validate(api.get("/api/v1/plans").json(), "PlanPaginatedResponse")

    customer = CustomerFactory(key="acme")  # a V1 entitlement's subjectKey must match the key pattern
    created = subscribe(api, customer, utc(2026, 1, 10), startingPhase="main")
    validate(created, "Subscription")
    with time_machine.travel(utc(2026, 1, 11), tick=False):
        expanded = api.get(f"/api/v1/subscriptions/{created['id']}").json()
        listed = api.get(f"/api/v1/customers/{customer.id}/subscriptions").json()
    assert expanded["phases"][0]["items"][1]["included"]["entitlement"]["type"] == "metered"
    validate(expanded, "SubscriptionExpanded")
    validate(listed, "SubscriptionPaginatedResponse")
    bought = post_at(api, f"/api/v1/subscriptions/{created['id']}/addons",
                     {"name": "Seats", "addon": {"id": addon["id"]}, "quantity": 1, "timing": "immediate"}, utc(2026, 1, 12))
    validate(bought.json(), "SubscriptionAddon")
    change = post_at(api, f"/api/v1/subscriptions/{created['id']}/change",
                     {"timing": "next_billing_cycle", "plan": {"key": "pro"}}, utc(2026, 1, 13))
    validate(change.json(), "SubscriptionChangeResponseBody")
