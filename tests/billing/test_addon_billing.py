"""Add-ons bought on a subscription are billed like plan rate cards: their own rate cards quantity times, or
applied onto the plan item of the same key, pro-rated per quantity segment; the lines appear when the change
commits. Totals computed by hand (31-day January, 28-day February: one day of a 31/month fee is 1)."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services.subscription_sync import SyncResult, subscription_sync, subscriptions_sync_all
from subscriptions.models import SubscriptionAddon
from tests.billing.helpers import customer, metered_feature, profile
from tests.factories import addon_body, flat_fee_card, ingest, plan_body, usage_card

pytestmark = pytest.mark.django_db

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def _publish_addon(api, body: dict) -> str:
    with time_machine.travel(LONG_AGO, tick=False):
        addon = api.post("/api/v1/addons", body, format="json")
        assert addon.status_code == 201, addon.content
        assert api.post(f"/api/v1/addons/{addon.json()['id']}/publish").status_code == 200
    return addon.json()["id"]


def _publish_plan(api, cards: list[dict], addon_ids: list[str], max_quantity: int | None = None) -> None:
    body = plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": cards}])
    with time_machine.travel(LONG_AGO, tick=False):
        plan = api.post("/api/v1/plans", body, format="json").json()
        for addon_id in addon_ids:
            offer = {"addonId": addon_id, "fromPlanPhase": "main"}
            if max_quantity:
                offer["maxQuantity"] = max_quantity
            link = api.post(f"/api/v1/plans/{plan['id']}/addons", offer, format="json")
            assert link.status_code == 201, link.content
        assert api.post(f"/api/v1/plans/{plan['id']}/publish").status_code == 200


def _call(api, method: str, path: str, body: dict, at: dt.datetime, capture, status: int):
    """An API call at `at`, with the tasks queued on commit run (the billing sync among them)."""
    with time_machine.travel(at, tick=False), capture(execute=True):
        r = getattr(api, method)(path, body, format="json")
    assert r.status_code == status, r.content
    return r.json()


def _pending(cust) -> dict[str, str]:
    lines = InvoiceLine.objects.filter(invoice__customer=cust, invoice__status=S.GATHERING, parent__isnull=True,
                                       deleted_at__isnull=True)
    return {f"{line.name}@{line.period_start.date()}": line.price["amount"] for line in lines
            if line.price["type"] == "flat"}


def test_addon_seats_are_billed_per_quantity_segment(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    seats = _publish_addon(api, addon_body(cards=[flat_fee_card(key="seat_fee", amount="31")]))
    _publish_plan(api, [flat_fee_card(amount="62")], [seats], max_quantity=10)
    cust = customer()
    sub = _call(api, "post", "/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key,
                "billingAnchor": "2026-01-01T00:00:00Z"}, utc(2026, 1, 1), capture, 201)
    # the January fee is pending as soon as the subscription is created (no periodic run needed)
    assert _pending(cust) == {"base_fee@2026-01-01": "62"}

    # 2 seats from Jan 11: 2 * 31 * 21/31 = 42
    path = f"/api/v1/subscriptions/{sub['id']}/addons"
    bought = _call(api, "post", path, {"name": "Seats", "addon": {"id": seats}, "quantity": 2, "timing": "immediate"},
                   utc(2026, 1, 11), capture, 201)
    assert _pending(cust) == {"base_fee@2026-01-01": "62", "seat_fee@2026-01-11": "42"}

    # on Jan 15, 3 seats from Jan 21: 2 seats for Jan 11-21 = 2 * 31 * 10/31 = 20
    _call(api, "patch", f"{path}/{bought['id']}", {"quantity": 3, "timing": "2026-01-21T00:00:00Z"},
          utc(2026, 1, 15), capture, 200)
    assert _pending(cust) == {"base_fee@2026-01-01": "62", "seat_fee@2026-01-11": "20"}
    # the 3-seat period shows up once it has started: 3 * 31 * 11/31 = 33
    subscriptions_sync_all(at=utc(2026, 1, 21))
    assert _pending(cust)["seat_fee@2026-01-21"] == "33"

    # February in advance: 62 and 3 * 31 = 93; then 0 seats from Feb 15: 93 * 14/28 = 46.5
    subscriptions_sync_all(at=utc(2026, 2, 1))
    assert {k: v for k, v in _pending(cust).items() if "02-01" in k} == {
        "base_fee@2026-02-01": "62", "seat_fee@2026-02-01": "93"}
    _call(api, "patch", f"{path}/{bought['id']}", {"quantity": 0, "timing": "2026-02-15T00:00:00Z"},
          utc(2026, 2, 10), capture, 200)
    assert _pending(cust)["seat_fee@2026-02-01"] == "46.5"
    # syncing again changes nothing
    assert subscription_sync(subscription_id=sub["id"], at=utc(2026, 2, 10)) == SyncResult(0, 0, 0)

    with time_machine.travel(utc(2026, 2, 15, 1), tick=False):
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    assert r.status_code == 201, r.content
    [invoice] = r.json()
    # 62 + 20 + 33 + 62 + 46.5 = 223.5
    assert invoice["totals"]["total"] == "223.5"
    seat_lines = [line for line in invoice["lines"] if line["name"] == "seat_fee"]
    assert {line["subscription"]["item"]["id"] for line in seat_lines} == {bought["id"]}


def test_addon_rate_card_of_a_plan_item_key_adds_to_its_flat_amount(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    extra = _publish_addon(api, addon_body(key="double", instance_type="single",
                                           cards=[flat_fee_card(key="base_fee", amount="31")]))
    _publish_plan(api, [flat_fee_card(amount="31")], [extra])
    cust = customer()
    sub = _call(api, "post", "/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key,
                "billingAnchor": "2026-01-01T00:00:00Z"}, utc(2026, 1, 1), capture, 201)
    _call(api, "post", f"/api/v1/subscriptions/{sub['id']}/addons",
          {"name": "Double", "addon": {"id": extra}, "quantity": 1, "timing": "immediate"}, utc(2026, 1, 11), capture, 201)
    # the plan fee is cut at the add-on: 31 * 10/31 = 10 until Jan 11, then (31 + 31) * 21/31 = 42
    assert _pending(cust) == {"base_fee@2026-01-01": "10", "base_fee@2026-01-11": "42"}
    subscriptions_sync_all(at=utc(2026, 2, 1))
    # February: 31 + 31 = 62
    assert _pending(cust)["base_fee@2026-02-01"] == "62"


def test_usage_based_addon_is_priced_from_the_meter(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    profile(autoAdvance=False)
    metered_feature("tokens")
    boost = _publish_addon(api, addon_body(key="boost", instance_type="single",
                                           cards=[usage_card("tokens", key="boost_tokens", amount="0.5")]))
    _publish_plan(api, [flat_fee_card(amount="10")], [boost])
    cust = customer(subjects=("acme",))
    sub = _call(api, "post", "/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key,
                "billingAnchor": "2026-01-01T00:00:00Z"}, utc(2026, 1, 1), capture, 201)
    _call(api, "post", f"/api/v1/subscriptions/{sub['id']}/addons",
          {"name": "Boost", "addon": {"id": boost}, "quantity": 1, "timing": "immediate"}, utc(2026, 1, 11), capture, 201)
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, d), "data": {"tokens": n}}
            for d, n in ((5, 100), (15, 200), (25, 40))])
    line = InvoiceLine.objects.get(name="boost_tokens", deleted_at__isnull=True)
    assert (line.period_start, line.period_end, line.invoice_at) == (utc(2026, 1, 11), utc(2026, 2, 1), utc(2026, 2, 1))

    with time_machine.travel(utc(2026, 2, 1, 2), tick=False):
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    [invoice] = r.json()
    # 10 (plan fee) + tokens since Jan 11 only: (200 + 40) * 0.5 = 120 → 130
    assert invoice["totals"]["total"] == "130"


def test_incompatible_addon_is_refused_when_bought(api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    metered_feature("tokens")
    clash = _publish_addon(api, addon_body(key="clash", cards=[flat_fee_card(key="tokens", amount="5")]))
    _publish_plan(api, [usage_card("tokens", amount="1")], [clash])
    cust = customer()
    sub = _call(api, "post", "/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key},
                utc(2026, 1, 1), capture, 201)
    r = _call(api, "post", f"/api/v1/subscriptions/{sub['id']}/addons",
              {"name": "Clash", "addon": {"id": clash}, "quantity": 1, "timing": "immediate"}, utc(2026, 1, 5), capture,
              400)
    assert "only flat prices can be combined" in r["detail"]
    assert not SubscriptionAddon.objects.exists()
    assert Invoice.objects.filter(status=S.GATHERING).count() == 1
    assert InvoiceLine.objects.get().price == {"type": "unit", "amount": "1"}
