"""Entitlements provisioned from subscription items: created when items start, ended when they end,
usage carried over on a plan change. Dates worked out by hand."""

from decimal import Decimal

import pytest
import time_machine

from entitlements.models import Entitlement
from entitlements.services import entitlement_value
from subscriptions.models import SubscriptionItem
from subscriptions.services.provisioning import sync_entitlements_due
from tests.factories import CustomerFactory, FeatureFactory, flat_fee_card, ingest, plan_body, usage_card
from tests.subscriptions.test_lifecycle import post_at, publish_plan, subscribe, utc

pytestmark = pytest.mark.django_db


def metered(amount: str) -> dict:
    return {"type": "metered", "issueAfterReset": amount, "isSoftLimit": False}


def metered_plan(key: str = "pro", trial: str = "100", main: str = "1000") -> dict:
    return plan_body(key, phases=[
        {"key": "trial", "name": "Trial", "duration": "P1M",
         "rateCards": [usage_card("tokens", entitlementTemplate=metered(trial))]},
        {"key": "main", "name": "Main", "duration": None, "rateCards": [
            usage_card("tokens", entitlementTemplate=metered(main)),
            flat_fee_card(key="sso", amount="10", featureKey="sso", entitlementTemplate={"type": "boolean"}),
            flat_fee_card(key="limits", amount="0", featureKey="limits",
                          entitlementTemplate={"type": "static", "config": '{"seats": 5}'}),
        ]},
    ])


@pytest.fixture
def features():
    FeatureFactory(key="tokens")
    FeatureFactory(key="sso", meter=None)
    FeatureFactory(key="limits", meter=None)


def live(customer) -> list[Entitlement]:
    qs = Entitlement.objects.filter(customer=customer, deleted_at__isnull=True)
    return list(qs.order_by("active_from", "feature_key"))


def test_items_provision_when_they_start_and_end_with_their_phase(api, features):
    publish_plan(api, metered_plan())
    customer = CustomerFactory()

    # when: subscribed on Jan 31 12:00 (trial to Feb 28 12:00)
    sub = subscribe(api, customer, utc(2026, 1, 31, 12))

    # then only the trial item has started: a metered entitlement for the trial, ending with it
    (trial,) = live(customer)
    assert (trial.feature_key, trial.type, trial.active_from, trial.active_to) == (
        "tokens", "metered", utc(2026, 1, 31, 12), utc(2026, 2, 28, 12),
    )
    assert trial.usage_period_interval == "P1M"
    assert trial.issue_after_reset == Decimal("100")
    assert trial.annotations["subscription.id"] == sub["id"]

    # when the main phase starts, the periodic sync provisions its items
    with time_machine.travel(utc(2026, 2, 28, 12), tick=False):
        assert sync_entitlements_due() == 1
        assert sync_entitlements_due() == 1  # idempotent: nothing new the second time
    by_feature = {e.feature_key: e for e in live(customer) if e.active_from == utc(2026, 2, 28, 12)}
    assert set(by_feature) == {"tokens", "sso", "limits"}
    assert by_feature["tokens"].issue_after_reset == Decimal("1000")
    assert by_feature["tokens"].active_to is None
    assert by_feature["limits"].config == '{"seats": 5}'
    assert Entitlement.objects.filter(customer=customer).count() == 4
    item = SubscriptionItem.objects.get(phase__key="main", key="sso")
    assert item.entitlement_id == by_feature["sso"].pk

    # and the item response shows the entitlement it provisioned
    with time_machine.travel(utc(2026, 3, 1), tick=False):
        main = api.get(f"/api/v1/subscriptions/{sub['id']}").json()["phases"][1]
    sso = next(i for i in main["items"] if i["key"] == "sso")
    assert sso["included"]["entitlement"]["id"] == by_feature["sso"].pk


def test_cancel_next_billing_cycle_schedules_the_end_and_continue_reopens(api, features):
    publish_plan(api, metered_plan())
    customer = CustomerFactory()
    sub = subscribe(api, customer, utc(2026, 1, 31, 12), startingPhase="main")

    # cancel on Mar 15 at the next billing cycle: Mar 31 12:00 (anchor Jan 31)
    post_at(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "next_billing_cycle"}, utc(2026, 3, 15))
    assert {e.active_to for e in live(customer)} == {utc(2026, 3, 31, 12)}

    # continue on Mar 20: the scheduled ends are replaced by open-ended entitlements from then on
    post_at(api, f"/api/v1/subscriptions/{sub['id']}/unschedule-cancelation", None, utc(2026, 3, 20))
    current = live(customer)
    assert len(current) == 3
    assert {(e.active_from, e.active_to) for e in current} == {(utc(2026, 3, 20), None)}


def test_cancel_immediately_ends_entitlements(api, features):
    publish_plan(api, metered_plan())
    customer = CustomerFactory()
    sub = subscribe(api, customer, utc(2026, 1, 10), startingPhase="main")
    assert len(live(customer)) == 3

    post_at(api, f"/api/v1/subscriptions/{sub['id']}/cancel", {}, utc(2026, 1, 20))

    assert live(customer) == []
    assert {e.active_to for e in Entitlement.objects.filter(customer=customer)} == {utc(2026, 1, 20)}


def test_change_mid_period_carries_usage_over(api, features):
    publish_plan(api, metered_plan("pro", main="1000"))
    publish_plan(api, metered_plan("team", main="5000"))
    customer = CustomerFactory(key="acme")
    sub = subscribe(api, customer, utc(2026, 1, 10), startingPhase="main")
    # 30 tokens used in the period that started Feb 10, 7 before it
    ingest([
        {"subject": "acme", "time": utc(2026, 2, 5), "data": {"tokens": 7, "model": "x"}},
        {"subject": "acme", "time": utc(2026, 2, 12), "data": {"tokens": 10, "model": "x"}},
        {"subject": "acme", "time": utc(2026, 2, 18), "data": {"tokens": 20, "model": "x"}},
    ])

    # when: change to team on Feb 20, immediately
    post_at(api, f"/api/v1/subscriptions/{sub['id']}/change",
            {"timing": "immediate", "plan": {"key": "team"}, "startingPhase": "main"}, utc(2026, 2, 20))

    # then the new tokens entitlement starts Feb 20 but measures from Feb 10, the period start
    tokens = Entitlement.objects.get(customer=customer, feature_key="tokens", deleted_at__isnull=True)
    assert tokens.active_from == utc(2026, 2, 20)
    assert tokens.measure_usage_from == utc(2026, 2, 10)
    with time_machine.travel(utc(2026, 2, 21), tick=False):
        value = entitlement_value(entitlement=tokens)
    # usage 10 + 20 = 30 (the Feb 5 event is in the previous period); balance 5000 - 30
    assert value.usage == Decimal("30")
    assert value.balance == Decimal("4970")
    # the old plan's entitlements ended at the switch
    ended = Entitlement.objects.filter(customer=customer, annotations__contains={"subscription.id": sub["id"]})
    assert {e.active_to for e in ended} == {utc(2026, 2, 20)}


def test_edit_remove_and_add_item_end_and_provision(api, features):
    publish_plan(api, metered_plan())
    customer = CustomerFactory()
    sub = subscribe(api, customer, utc(2026, 1, 10), startingPhase="main")
    path = f"/api/v1/subscriptions/{sub['id']}"

    with time_machine.travel(utc(2026, 1, 15), tick=False):
        response = api.patch(path, {"customizations": [{"op": "remove_item", "phaseKey": "main", "itemKey": "sso"}]},
                             format="json")
    assert response.status_code == 200, response.content
    assert "sso" not in {e.feature_key for e in live(customer)}

    card = flat_fee_card(key="sso", amount="12", featureKey="sso", entitlementTemplate={"type": "boolean"})
    with time_machine.travel(utc(2026, 1, 18), tick=False):
        api.patch(path, {"customizations": [{"op": "add_item", "phaseKey": "main", "rateCard": card}]}, format="json")
    sso = next(e for e in live(customer) if e.feature_key == "sso")
    assert (sso.active_from, sso.active_to) == (utc(2026, 1, 18), None)


def test_a_conflicting_manual_entitlement_stops_the_subscription(api, features):
    from catalog.models import Feature
    from entitlements.services import entitlement_create

    publish_plan(api, metered_plan())
    customer = CustomerFactory()
    with time_machine.travel(utc(2026, 1, 1), tick=False):
        entitlement_create(customer=customer, feature=Feature.objects.get(key="sso"), type="boolean")
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        response = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": customer.key,
                                                      "startingPhase": "main"}, format="json")
    assert response.status_code == 409
    assert "already has an active entitlement" in response.json()["detail"]
    assert not SubscriptionItem.objects.exists()


def test_periodic_task_runs_eagerly(api, features):
    from subscriptions.tasks import sync_entitlements_due_task

    publish_plan(api, metered_plan())
    customer = CustomerFactory()
    subscribe(api, customer, utc(2026, 1, 31, 12))
    with time_machine.travel(utc(2026, 3, 1), tick=False):
        assert sync_entitlements_due_task.delay().get() == 1
    assert {e.feature_key for e in live(customer) if e.active_to is None} == {"tokens", "sso", "limits"}
