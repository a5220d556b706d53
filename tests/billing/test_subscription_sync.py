"""Subscriptions feed gathering lines: flat fees in advance (pro-rated), usage in arrears, mid-period start,
cancel and plan change; totals computed by hand."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import invoicing, jobs
from billing.services.subscription_sync import subscription_sync, subscriptions_sync_all
from tests.billing.helpers import customer, metered_feature, profile
from tests.factories import flat_fee_card, ingest, plan_body, usage_card

pytestmark = pytest.mark.django_db


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


LONG_AGO = utc(2020, 1, 1)


def _publish(api, body: dict) -> None:
    with time_machine.travel(LONG_AGO, tick=False):
        plan = api.post("/api/v1/plans", body, format="json")
        assert plan.status_code == 201, plan.content
        assert api.post(f"/api/v1/plans/{plan.json()['id']}/publish").status_code == 200


def _subscribe(api, cust, plan_key: str, at: dt.datetime, **body) -> str:
    with time_machine.travel(at, tick=False):
        r = api.post("/api/v1/subscriptions", {"plan": {"key": plan_key}, "customerKey": cust.key, **body},
                     format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


def _gathering_lines(cust) -> dict[str, InvoiceLine]:
    lines = InvoiceLine.objects.filter(invoice__customer=cust, invoice__status=S.GATHERING, parent__isnull=True,
                                       deleted_at__isnull=True).order_by("period_start")
    return {f"{line.name}@{line.period_start.date()}": line for line in lines}


@pytest.fixture
def tokens():
    return metered_feature("tokens")


def test_flat_in_advance_and_usage_in_arrears_on_one_invoice(api, tokens):
    profile(autoAdvance=False)
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="49"), usage_card("tokens", amount="0.01")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    sub_id = _subscribe(api, cust, "pro", utc(2026, 1, 1), billingAnchor="2026-01-01T00:00:00Z")
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, 15), "data": {"tokens": 1000}}])

    # January: the fee is due at once, the usage line waits for the end of the period
    subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 1, 0, 5))
    jan = _gathering_lines(cust)
    assert sorted(jan) == ["base_fee@2026-01-01", "tokens@2026-01-01"]
    assert jan["base_fee@2026-01-01"].invoice_at == utc(2026, 1, 1)
    assert jan["tokens@2026-01-01"].invoice_at == utc(2026, 2, 1)
    assert subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 1, 0, 5)).created == 0  # idempotent

    jobs.collect_gathering_invoices(at=utc(2026, 1, 1, 1))
    [first] = Invoice.objects.exclude(status=S.GATHERING)
    assert first.total == Decimal(49)

    # February 1st: February's fee in advance and January's usage in arrears land on one invoice
    subscriptions_sync_all(at=utc(2026, 2, 1, 1))
    jobs.collect_gathering_invoices(at=utc(2026, 2, 1, 1))
    second = Invoice.objects.exclude(status=S.GATHERING).exclude(pk=first.pk).get()
    # 49 + 1,000 * 0.01 = 59
    assert second.total == Decimal(59)
    names = sorted(second.all_lines.filter(parent__isnull=True).values_list("name", "period_start"))
    assert names == [("base_fee", utc(2026, 2, 1)), ("tokens", utc(2026, 1, 1))]


def test_mid_period_start_and_cancel_are_pro_rated(api, tokens):
    profile(autoAdvance=False)
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="31"), usage_card("tokens", amount="1")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    # starts Jan 11, billed on calendar months (anchor Jan 1)
    sub_id = _subscribe(api, cust, "pro", utc(2026, 1, 11), billingAnchor="2026-01-01T00:00:00Z")
    subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 11))
    lines = _gathering_lines(cust)
    # 21 of 31 days: 31 * 21 / 31 = 21
    assert lines["base_fee@2026-01-11"].price["amount"] == "21"
    assert (lines["tokens@2026-01-11"].period_start, lines["tokens@2026-01-11"].period_end) == (
        utc(2026, 1, 11), utc(2026, 2, 1))

    # cancelled on Jan 21, before anything was invoiced
    with time_machine.travel(utc(2026, 1, 20), tick=False):
        r = api.post(f"/api/v1/subscriptions/{sub_id}/cancel", {"timing": "2026-01-21T00:00:00Z"}, format="json")
    assert r.status_code == 200, r.content
    result = subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 20))
    assert result.updated == 2
    lines = _gathering_lines(cust)
    # 10 of 31 days: 31 * 10 / 31 = 10; usage only for [Jan 11, Jan 21)
    assert lines["base_fee@2026-01-11"].price["amount"] == "10"
    assert lines["tokens@2026-01-11"].period_end == utc(2026, 1, 21)
    assert lines["tokens@2026-01-11"].invoice_at == utc(2026, 1, 21)

    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, d), "data": {"tokens": 3}} for d in (12, 25)])
    jobs.collect_gathering_invoices(at=utc(2026, 1, 21, 1))
    [invoice] = Invoice.objects.exclude(status=S.GATHERING)
    # 10 + 3 tokens * 1 (the Jan 25 event is after the cancel) = 13
    assert invoice.total == Decimal(13)
    assert subscriptions_sync_all(at=utc(2026, 2, 15)) == 1
    assert not _gathering_lines(cust)  # nothing more after the end


def test_plan_change_mid_period(api, tokens):
    profile(autoAdvance=False)
    _publish(api, plan_body("basic", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="30")]}]))
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="60")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    old_id = _subscribe(api, cust, "basic", utc(2026, 1, 1), billingAnchor="2026-01-01T00:00:00Z")
    with time_machine.travel(utc(2026, 1, 16), tick=False):
        r = api.post(f"/api/v1/subscriptions/{old_id}/change",
                     {"timing": "immediate", "plan": {"key": "pro"}}, format="json")
    assert r.status_code == 200, r.content
    new_id = r.json()["next"]["id"]
    for sub_id in (old_id, new_id):
        subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 16))
    lines = _gathering_lines(cust)
    # basic for 15 of 31 days: 30 * 15 / 31 = 14.516… → 14.52; pro for 16 of 31: 60 * 16 / 31 = 30.967… → 30.97
    assert {k: v.price["amount"] for k, v in lines.items()} == {
        "base_fee@2026-01-01": "14.52", "base_fee@2026-01-16": "30.97"}
    [invoice] = invoicing.invoice_pending_lines(customer_id=cust.pk, at=utc(2026, 1, 16, 1), as_of=utc(2026, 1, 16, 1))
    assert invoice.total == Decimal("45.49")


def test_spend_commitments_are_not_pro_rated_for_a_late_start(api, tokens):
    # OpenMeter pro-rates flat prices only: a period that starts late keeps its full minimum and maximum spend
    profile(autoAdvance=False)
    minimum = {"type": "unit", "amount": "1", "minimumAmount": "100"}
    maximum = {"type": "unit", "amount": "1", "maximumAmount": "50"}
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        usage_card("tokens", key="committed", price=minimum), usage_card("tokens", key="capped", price=maximum)]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    sub_id = _subscribe(api, cust, "pro", utc(2026, 1, 11), billingAnchor="2026-01-01T00:00:00Z")
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, 15), "data": {"tokens": 80}}])
    subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 11))
    jobs.collect_gathering_invoices(at=utc(2026, 2, 1, 2))
    [invoice] = Invoice.objects.exclude(status=S.GATHERING)
    # committed: 80 + a 20 minimum-spend top-up = 100 (not 100 * 21/31); capped: 80 - 30 over the cap = 50
    assert invoice.total == Decimal(150)
    top_up = InvoiceLine.objects.get(parent__isnull=False, category="commitment")
    assert (top_up.total, top_up.period_start) == (Decimal(20), utc(2026, 1, 11))
