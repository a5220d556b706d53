"""Editing running subscriptions (items and phases) and add-ons whose quantity changes over time."""

import datetime as dt

import pytest
import time_machine

from subscriptions.models import SubscriptionAddon, SubscriptionItem
from tests.factories import CustomerFactory, FeatureFactory, addon_body, flat_fee_card, usage_card
from tests.subscriptions.test_lifecycle import assert_problem, get, post_at, publish_plan, subscribe, trial_plan, utc

pytestmark = pytest.mark.django_db


def patch_at(api, path: str, body: dict, at: dt.datetime):
    with time_machine.travel(at, tick=False):
        return api.patch(path, body, format="json")


@pytest.fixture
def running(api):
    """A customer on `pro` since Jan 10 2026: trial [Jan 10, Feb 10), main from Feb 10."""
    FeatureFactory(key="tokens")
    FeatureFactory(key="storage")
    publish_plan(api, trial_plan())
    return subscribe(api, CustomerFactory(), utc(2026, 1, 10))


def test_add_and_remove_items_in_the_running_phase(api, running):
    path = f"/api/v1/subscriptions/{running['id']}"
    edit = {"customizations": [
        {"op": "add_item", "phaseKey": "trial", "rateCard": usage_card("storage", amount="0.5")},
        {"op": "remove_item", "phaseKey": "trial", "itemKey": "base_fee"},
    ]}

    response = patch_at(api, path, edit, utc(2026, 1, 20))

    assert response.status_code == 200, response.content
    sub = get(api, running["id"], utc(2026, 1, 25))
    trial = sub["phases"][0]
    # storage runs from the edit to the end of the trial; base_fee ran from the start until the edit
    assert [(i["key"], i["activeFrom"], i["activeTo"]) for i in trial["items"]] == [
        ("storage", "2026-01-20T00:00:00Z", "2026-02-10T00:00:00Z"),
    ]
    assert [(i["activeFrom"], i["activeTo"]) for i in trial["itemTimelines"]["base_fee"]] == [
        ("2026-01-10T00:00:00Z", "2026-01-20T00:00:00Z"),
    ]


def test_remove_item_from_a_future_phase_deletes_it(api, running):
    path = f"/api/v1/subscriptions/{running['id']}"
    patch_at(api, path, {"customizations": [{"op": "remove_item", "phaseKey": "main", "itemKey": "tokens"}]},
             utc(2026, 1, 20))
    main = get(api, running["id"], utc(2026, 1, 20))["phases"][1]
    assert [i["key"] for i in main["items"]] == ["base_fee"]
    assert not SubscriptionItem.objects.filter(key="tokens").exists()


def test_stretch_and_add_and_remove_phases(api, running):
    path = f"/api/v1/subscriptions/{running['id']}"

    # stretch the trial by P1M: main moves from Feb 10 to Mar 10
    response = patch_at(api, path, {"customizations": [{"op": "stretch_phase", "phaseKey": "trial", "extendBy": "P1M"}]},
                        utc(2026, 1, 20))
    assert response.status_code == 200, response.content
    phases = get(api, running["id"], utc(2026, 1, 20))["phases"]
    assert [(p["key"], p["activeFrom"], p.get("activeTo")) for p in phases] == [
        ("trial", "2026-01-10T00:00:00Z", "2026-03-10T00:00:00Z"),
        ("main", "2026-03-10T00:00:00Z", None),
    ]

    # add a promo phase of P1M starting 2 months after the start (Mar 10): main moves to Apr 10
    add = {"op": "add_phase", "phase": {"key": "promo", "name": "Promo", "startAfter": "P2M", "duration": "P1M"}}
    patch_at(api, path, {"customizations": [add]}, utc(2026, 1, 20))
    phases = get(api, running["id"], utc(2026, 1, 20))["phases"]
    assert [(p["key"], p["activeFrom"]) for p in phases] == [
        ("trial", "2026-01-10T00:00:00Z"), ("promo", "2026-03-10T00:00:00Z"), ("main", "2026-04-10T00:00:00Z"),
    ]

    # remove the promo shifting the next phase back into its place
    patch_at(api, path, {"customizations": [{"op": "remove_phase", "phaseKey": "promo", "shift": "next"}]},
             utc(2026, 1, 20))
    phases = get(api, running["id"], utc(2026, 1, 20))["phases"]
    assert [(p["key"], p["activeFrom"]) for p in phases] == [
        ("trial", "2026-01-10T00:00:00Z"), ("main", "2026-03-10T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "remove_item", "phaseKey": "trial", "itemKey": "nope"}, "has no item 'nope'"),
        ({"op": "add_item", "phaseKey": "trial", "rateCard": flat_fee_card()}, "already has an item 'base_fee'"),
        ({"op": "add_item", "phaseKey": "ghost", "rateCard": flat_fee_card()}, "no phase 'ghost'"),
        ({"op": "remove_phase", "phaseKey": "trial", "shift": "next"}, "has started"),
        ({"op": "stretch_phase", "phaseKey": "main", "extendBy": "P1M"}, "open-ended"),
        ({"op": "add_item", "phaseKey": "main", "rateCard": usage_card("ghost")}, "no feature with key 'ghost'"),
        ({"op": "explode"}, "op"),
    ],
)
def test_bad_edits_are_400_and_nothing_changes(api, running, op, message):
    keep = {"customizations": [{"op": "remove_item", "phaseKey": "main", "itemKey": "tokens"}, op]}
    response = patch_at(api, f"/api/v1/subscriptions/{running['id']}", keep, utc(2026, 1, 20))
    assert_problem(response, 400, message)
    # the first (valid) operation was rolled back with the failing one
    assert SubscriptionItem.objects.filter(key="tokens").exists()


def test_editing_an_inactive_subscription_is_403(api, running):
    post_at(api, f"/api/v1/subscriptions/{running['id']}/cancel", {}, utc(2026, 1, 15))
    edit = {"customizations": [{"op": "remove_item", "phaseKey": "main", "itemKey": "tokens"}]}
    assert_problem(patch_at(api, f"/api/v1/subscriptions/{running['id']}", edit, utc(2026, 1, 16)), 403, "edit")


def _offer_addon(api, **kwargs) -> dict:
    with time_machine.travel(utc(2020, 1, 1), tick=False):
        addon = api.post("/api/v1/addons", addon_body(**kwargs), format="json").json()
        return api.post(f"/api/v1/addons/{addon['id']}/publish").json()


def test_addon_quantity_changes_over_time(api):
    # given a plan that offers an add-on (max 10) from its main phase
    FeatureFactory(key="tokens")
    addon = _offer_addon(api)
    with time_machine.travel(utc(2020, 1, 1), tick=False):
        plan = api.post("/api/v1/plans", trial_plan(), format="json").json()
        api.post(f"/api/v1/plans/{plan['id']}/addons", {"addonId": addon["id"], "fromPlanPhase": "main", "maxQuantity": 10},
                 format="json")
        api.post(f"/api/v1/plans/{plan['id']}/publish")
    sub = subscribe(api, CustomerFactory(), utc(2026, 1, 10))
    path = f"/api/v1/subscriptions/{sub['id']}/addons"
    buy = {"name": "Seats", "addon": {"id": addon["id"]}, "quantity": 2, "timing": "immediate"}

    # not during the trial
    assert_problem(post_at(api, path, buy, utc(2026, 1, 20)), 400, "available from phase 'main'")

    # when bought with 2 on Feb 15 and raised to 5 on Mar 1
    created = post_at(api, path, buy, utc(2026, 2, 15))
    assert created.status_code == 201, created.content
    sa = created.json()
    assert (sa["quantity"], sa["activeFrom"], sa["addon"]["key"]) == (2, "2026-02-15T00:00:00Z", "extra_seats")
    assert sa["rateCards"][0]["rateCard"]["key"] == "seat_fee"
    updated = patch_at(api, f"{path}/{sa['id']}", {"quantity": 5, "timing": "immediate"}, utc(2026, 3, 1))
    assert updated.status_code == 200, updated.content

    # then the timeline has both segments, and the quantity at each time follows it
    body = updated.json()
    assert body["timeline"] == [
        {"activeFrom": "2026-02-15T00:00:00Z", "activeTo": "2026-03-01T00:00:00Z", "quantity": 2},
        {"activeFrom": "2026-03-01T00:00:00Z", "quantity": 5},
    ]
    assert body["quantity"] == 5
    with time_machine.travel(utc(2026, 2, 20), tick=False):
        assert api.get(f"{path}/{sa['id']}").json()["quantity"] == 2
        listed = api.get(path).json()
    assert [a["id"] for a in listed] == [sa["id"]]

    # more than the plan allows, or buying the same add-on twice, is refused
    assert_problem(patch_at(api, f"{path}/{sa['id']}", {"quantity": 11}, utc(2026, 3, 2)), 400, "at most 10")
    assert_problem(post_at(api, path, buy, utc(2026, 3, 2)), 409, "already on subscription")

    # a subscription cancelled at the next billing cycle ends the add-on with it (period Feb 10 → Mar 10)
    post_at(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "next_billing_cycle"}, utc(2026, 3, 5))
    with time_machine.travel(utc(2026, 3, 5), tick=False):
        assert api.get(f"{path}/{sa['id']}").json()["activeTo"] == "2026-03-10T00:00:00Z"


def test_single_addon_quantity_and_unoffered_addon(api):
    FeatureFactory(key="tokens")
    single = _offer_addon(api, key="support", instance_type="single")
    other = _offer_addon(api, key="other")
    with time_machine.travel(utc(2020, 1, 1), tick=False):
        plan = api.post("/api/v1/plans", trial_plan(), format="json").json()
        api.post(f"/api/v1/plans/{plan['id']}/addons", {"addonId": single["id"], "fromPlanPhase": "trial"}, format="json")
        api.post(f"/api/v1/plans/{plan['id']}/publish")
    sub = subscribe(api, CustomerFactory(), utc(2026, 1, 10))
    path = f"/api/v1/subscriptions/{sub['id']}/addons"

    two = {"name": "Support", "addon": {"id": single["id"]}, "quantity": 2, "timing": "immediate"}
    assert_problem(post_at(api, path, two, utc(2026, 1, 11)), 400, "single-instance")
    unoffered = {"name": "Other", "addon": {"id": other["id"]}, "quantity": 1, "timing": "immediate"}
    assert_problem(post_at(api, path, unoffered, utc(2026, 1, 11)), 400, "not offered")
    assert not SubscriptionAddon.objects.exists()


def test_edit_at_next_billing_cycle_applies_at_the_period_end(api):
    FeatureFactory(key="tokens")
    FeatureFactory(key="storage")
    publish_plan(api, trial_plan())
    running = subscribe(api, CustomerFactory(), utc(2026, 1, 10), startingPhase="main")
    # the period containing Jan 20 is Jan 10 → Feb 10: the edit takes effect on Feb 10
    edit = {"timing": "next_billing_cycle", "customizations": [
        {"op": "add_item", "phaseKey": "main", "rateCard": usage_card("storage", amount="0.5")},
        {"op": "remove_item", "phaseKey": "main", "itemKey": "base_fee"},
    ]}
    response = patch_at(api, f"/api/v1/subscriptions/{running['id']}", edit, utc(2026, 1, 20))
    assert response.status_code == 200, response.content

    (main,) = get(api, running["id"], utc(2026, 1, 20))["phases"]
    timelines = {k: [(i["activeFrom"], i.get("activeTo")) for i in v] for k, v in main["itemTimelines"].items()}
    assert timelines["base_fee"] == [("2026-01-10T00:00:00Z", "2026-02-10T00:00:00Z")]
    assert timelines["storage"] == [("2026-02-10T00:00:00Z", None)]
    # on Jan 20 the fee is still billed and storage not yet; on Feb 15 the other way round
    assert sorted(i["key"] for i in main["items"]) == ["base_fee", "tokens"]
    (main,) = get(api, running["id"], utc(2026, 2, 15))["phases"]
    assert sorted(i["key"] for i in main["items"]) == ["storage", "tokens"]
