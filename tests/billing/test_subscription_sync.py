"""Subscriptions feed gathering lines: flat fees in advance (pro-rated), usage in arrears, mid-period start,
cancel and plan change; totals computed by hand."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import drafts, jobs
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
    [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk, at=utc(2026, 1, 16, 1), as_of=utc(2026, 1, 16, 1))
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


def test_line_periods_are_cut_to_whole_seconds_so_usage_from_the_first_second_counts(api, tokens):
    # upstream truncates service and billing periods to the meters' one-second resolution: a subscription that
    # starts at 10:00:51.473044 bills from 10:00:51, so 4 tokens at 10:00:51.100 are billed: January's 20 + 4 x 1,
    # and February's fee in advance (its period has started): 20 + 4 + 20 = 44
    profile(autoAdvance=False)
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="20"), usage_card("tokens", amount="1")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    start = utc(2026, 1, 1, 10, 0, 51, 473044)
    sub_id = _subscribe(api, cust, "pro", start)
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, 1, 10, 0, 51, 100000), "data": {"tokens": 4}}])
    subscription_sync(subscription_id=sub_id, at=start)
    lines = _gathering_lines(cust)
    assert {(line.period_start, line.period_end) for line in lines.values()} == {
        (utc(2026, 1, 1, 10, 0, 51), utc(2026, 2, 1, 10, 0, 51))}
    with time_machine.travel(utc(2026, 1, 2), tick=False):
        gathering = api.get("/api/v1/billing/invoices?statuses=gathering&expand=lines").json()["items"][0]
    assert {line["period"]["from"] for line in gathering["lines"]} == {"2026-01-01T10:00:51Z"}
    assert {line["subscription"]["billingPeriod"]["from"] for line in gathering["lines"]} == {"2026-01-01T10:00:51Z"}
    subscriptions_sync_all(at=utc(2026, 2, 1, 11))
    [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk, at=utc(2026, 2, 1, 11))
    assert invoice.total == Decimal(44)


def test_a_billing_period_starts_no_earlier_than_its_phase(api, tokens):
    # anchored on the 1st, started on Dec 5: the first billing period is [Dec 5, Jan 1), as upstream's
    # GetAlignedBillingPeriodAt narrows the anchor's period to the phase; then [Jan 1, Feb 1)
    profile(autoAdvance=False)
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="31"), usage_card("tokens", amount="1")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    sub_id = _subscribe(api, cust, "pro", utc(2026, 12, 5), billingAnchor="2026-12-01T00:00:00Z")
    subscription_sync(subscription_id=sub_id, at=utc(2027, 1, 1))
    periods = {key: (line.subscription_billing_period_start, line.subscription_billing_period_end)
               for key, line in _gathering_lines(cust).items()}
    assert periods == {
        "base_fee@2026-12-05": (utc(2026, 12, 5), utc(2027, 1, 1)), "tokens@2026-12-05": (utc(2026, 12, 5), utc(2027, 1, 1)),
        "base_fee@2027-01-01": (utc(2027, 1, 1), utc(2027, 2, 1)), "tokens@2027-01-01": (utc(2027, 1, 1), utc(2027, 2, 1))}
    with time_machine.travel(utc(2027, 1, 1), tick=False):
        gathering = api.get("/api/v1/billing/invoices?statuses=gathering&expand=lines").json()["items"][0]
    assert sorted(line["subscription"]["billingPeriod"]["from"] for line in gathering["lines"]) == [
        "2026-12-05T00:00:00Z", "2026-12-05T00:00:00Z", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z"]


def test_gathering_totals_are_the_same_on_every_read(api, tokens, django_capture_on_commit_callbacks):
    # a subscription's fee in advance (30), its usage so far (7 x 1) and a manual line (10): 47 wherever it is read
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(amount="30"), usage_card("tokens", amount="1")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    start = utc(2026, 1, 1)
    with time_machine.travel(start, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": cust.key},
                        format="json").status_code == 201
    ingest([{"subject": "acme", "type": "tokens", "time": utc(2026, 1, 3), "data": {"tokens": 7}}])
    with time_machine.travel(utc(2026, 1, 10), tick=False):
        manual = {"name": "Setup", "period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
                  "invoiceAt": "2026-02-01T00:00:00Z", "rateCard": {"price": {"type": "flat", "amount": "10",
                                                                               "paymentTerm": "in_arrears"}}}
        created = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                           {"currency": "USD", "lines": [manual]}, format="json").json()["invoice"]
        invoice_id = created["id"]
        reads = [
            created,
            api.get(f"/api/v1/billing/invoices/{invoice_id}").json(),
            api.get(f"/api/v1/billing/invoices/{invoice_id}?expand=lines").json(),
            api.get("/api/v1/billing/invoices?statuses=gathering").json()["items"][0],
            api.get("/api/v1/billing/invoices?statuses=gathering&expand=lines").json()["items"][0],
        ]
    assert [r["totals"]["total"] for r in reads] == ["47"] * 5
    assert [r["totals"]["amount"] for r in reads] == ["47"] * 5


def test_a_free_flat_fee_makes_no_line_and_a_fee_is_rounded_to_the_currency(api, tokens):
    # upstream's GetExpectedLine: the per-unit amount is rounded to the currency (9.999 → 10.00) and a fee that
    # comes to zero is not billed at all
    _publish(api, plan_body("pro", phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        flat_fee_card(key="free", amount="0"), flat_fee_card(key="odd", amount="9.999")]}]))
    cust = customer(name="Acme Corp", subjects=("acme",))
    sub_id = _subscribe(api, cust, "pro", utc(2026, 1, 1))
    subscription_sync(subscription_id=sub_id, at=utc(2026, 1, 1))
    assert {key: line.price["amount"] for key, line in _gathering_lines(cust).items()} == {"odd@2026-01-01": "10"}
