"""Profile workflow settings that shape when and how much subscriptions bill: anchored collection alignment
(gathering invoices are collected on the anchor's recurrences) and `subscriptionEndProrationMode`."""

import datetime as dt

import pytest
import time_machine

from billing.models import BillingProfile, Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import jobs
from billing.services.subscription_sync import subscriptions_sync_all
from billing.services.workflow import next_collection_at, workflow_with_defaults
from tests.billing.helpers import customer, profile
from tests.factories import flat_fee_card, plan_body

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def anchored(interval: str, anchor: str) -> dict:
    return workflow_with_defaults({"collection": {
        "alignment": {"type": "anchored", "recurringPeriod": {"interval": interval, "anchor": anchor}}}})


@pytest.mark.parametrize(("workflow", "due", "expected"), [
    # subscription alignment: due time + the collection interval (PT1H)
    (workflow_with_defaults(None), utc(2025, 6, 5, 8), utc(2025, 6, 5, 9)),
    # anchored monthly from Jun 1: the next anchor, an exact anchor stays, a future anchor counts backwards
    (anchored("P1M", "2025-06-01T00:00:00Z"), utc(2025, 6, 5, 8), utc(2025, 7, 1)),
    (anchored("MONTH", "2025-06-01T00:00:00Z"), utc(2025, 7, 1), utc(2025, 7, 1)),
    (anchored("P1M", "2025-08-01T00:00:00Z"), utc(2025, 6, 15, 12), utc(2025, 7, 1)),
    (anchored("WEEK", "2025-06-02T00:00:00Z"), utc(2025, 6, 4), utc(2025, 6, 9)),
], ids=["subscription", "next_anchor", "exact_anchor", "future_anchor", "weekly"])
def test_next_collection_at(workflow, due, expected):
    assert next_collection_at(workflow, due) == expected


def _profile_body(app_id: str, **collection) -> dict:
    return {"name": "Monthly batches", "supplier": {"name": "Acme"}, "default": True,
            "workflow": {"collection": collection, "invoicing": {"autoAdvance": False}},
            "apps": {"tax": app_id, "invoicing": app_id, "payment": app_id}}


def test_anchored_profile_is_validated(api):
    app_id = profile().invoicing_app_id
    before = BillingProfile.objects.count()
    for interval in ("FORTNIGHT", "P0D", "1 month"):
        bad = {"alignment": {"type": "anchored", "recurringPeriod": {"interval": interval,
                                                                      "anchor": "2026-01-01T00:00:00Z"}}}
        r = api.post("/api/v1/billing/profiles", _profile_body(app_id, **bad), format="json")
        assert r.status_code == 400, interval
        assert r["Content-Type"] == PROBLEM
    assert BillingProfile.objects.count() == before


def test_anchored_alignment_collects_on_the_anchor(api):
    # given: a profile that invoices on the 1st of each month; a subscription billed from the 10th
    app_id = profile().invoicing_app_id
    aligned = {"alignment": {"type": "anchored", "recurringPeriod": {"interval": "MONTH",
                                                                     "anchor": "2026-01-01T00:00:00Z"}}}
    r = api.post("/api/v1/billing/profiles", _profile_body(app_id, **aligned), format="json")
    assert r.status_code == 201, r.content
    assert r.json()["workflow"]["collection"]["alignment"]["recurringPeriod"]["interval"] == "MONTH"
    with time_machine.travel(LONG_AGO, tick=False):
        plan = api.post("/api/v1/plans", plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None,
                        "rateCards": [flat_fee_card(amount="30")]}]), format="json").json()
        api.post(f"/api/v1/plans/{plan['id']}/publish")
    cust = customer()
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        r = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key}, format="json")
    assert r.status_code == 201, r.content

    # when: the fee billed in advance on Jan 10 is pending
    subscriptions_sync_all(at=utc(2026, 1, 10))
    gathering = Invoice.objects.get(status=S.GATHERING)
    # then: it waits for the anchor, not for the hour of grace
    assert gathering.collection_at == utc(2026, 2, 1)
    jobs.collect_gathering_invoices(at=utc(2026, 1, 10, 2))
    assert not Invoice.objects.exclude(status=S.GATHERING).exists()
    jobs.collect_gathering_invoices(at=utc(2026, 2, 1, 0, 5))
    [invoice] = Invoice.objects.exclude(status=S.GATHERING)
    assert invoice.total == 30
    # the next period's fee (Feb 10) waits for Mar 1
    subscriptions_sync_all(at=utc(2026, 2, 10))
    assert Invoice.objects.get(status=S.GATHERING).collection_at == utc(2026, 3, 1)


def _fee_after_cancel(api, mode: str) -> InvoiceLine:
    profile(autoAdvance=False, subscriptionEndProrationMode=mode)
    with time_machine.travel(LONG_AGO, tick=False):
        plan = api.post("/api/v1/plans", plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None,
                        "rateCards": [flat_fee_card(amount="31")]}]), format="json").json()
        api.post(f"/api/v1/plans/{plan['id']}/publish")
    cust = customer()
    with time_machine.travel(utc(2026, 1, 1), tick=False):
        sub = api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key}, format="json").json()
    with time_machine.travel(utc(2026, 1, 5), tick=False):
        api.post(f"/api/v1/subscriptions/{sub['id']}/cancel", {"timing": "2026-01-11T00:00:00Z"}, format="json")
    subscriptions_sync_all(at=utc(2026, 1, 5))
    return InvoiceLine.objects.get(deleted_at__isnull=True)


def test_bill_full_period_bills_the_last_period_in_full(api):
    line = _fee_after_cancel(api, "bill_full_period")
    # the service period ends with the subscription, the amount is the full month's 31
    assert (line.period_start, line.period_end) == (utc(2026, 1, 1), utc(2026, 1, 11))
    assert line.price["amount"] == "31"


def test_bill_actual_period_pro_rates_the_last_period(api):
    line = _fee_after_cancel(api, "bill_actual_period")
    # 31 * 10/31 = 10
    assert line.price["amount"] == "10"
