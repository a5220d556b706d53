"""The back office's front page (the admin index): billed revenue per month and currency, what customers owe and
what is overdue, the invoices that need someone, failed webhook deliveries, events waiting to be folded and each
scheduled job's last run; a fixed number of queries."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from playwright.sync_api import expect

from backoffice.dashboard import billed_revenue, needs_attention, owed
from billing.models import Invoice
from billing.models import InvoiceStatus as S
from billing.services import actions, drafts, gathering
from billing.services.gathering import LineInput
from billing.tasks import mark_overdue_invoices_task
from notifications.models import (
    DeliveryState,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    NotificationRule,
)
from tests.billing.helpers import custom_invoicing_app, customer, profile
from tests.billing.test_admin import text_of
from tests.conftest import free_port
from tests.factories import ingest

NOW = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def _invoice(cust, amount: str, at: dt.datetime, *, currency: str = "USD", approve: bool = True) -> Invoice:
    """A flat charge invoiced at `at`; approved (issued) unless told not to."""
    gathering.pending_lines_create(customer_id=cust.pk, currency=currency, lines=[
        LineInput(name="Fee", period_start=at - dt.timedelta(days=1), period_end=at, invoice_at=at - dt.timedelta(days=1),
                  price={"type": "flat", "amount": amount, "paymentTerm": "in_advance"})])
    with time_machine.travel(at, tick=False):
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
        if approve:
            invoice = actions.invoice_approve(invoice_id=invoice.pk)
    return invoice


@pytest.fixture
def acme(db):
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), autoAdvance=False, dueAfter="P10D")
    return customer(name="ACME Inc.", subjects=("acme",))


@pytest.mark.django_db
def test_billed_revenue_per_month_in_the_operator_zone_per_currency(acme):
    _invoice(acme, "100", dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    _invoice(acme, "250.50", dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC))  # April 1 in Berlin
    _invoice(acme, "49.50", dt.datetime(2026, 4, 20, tzinfo=dt.UTC))
    _invoice(acme, "80", dt.datetime(2026, 5, 2, tzinfo=dt.UTC), currency="EUR")
    voided = _invoice(acme, "999", dt.datetime(2026, 5, 3, tzinfo=dt.UTC))
    with time_machine.travel(dt.datetime(2026, 5, 4, tzinfo=dt.UTC), tick=False):
        actions.invoice_void(invoice_id=voided.pk)
    _invoice(acme, "500", dt.datetime(2026, 6, 1, tzinfo=dt.UTC), approve=False)  # a draft is not billed
    _invoice(acme, "70", dt.datetime(2025, 6, 1, tzinfo=dt.UTC))  # 12 months back is July 2025: left out
    # when
    with timezone.override(BERLIN):
        revenue = billed_revenue(now=NOW)
    # then
    eur, usd = revenue
    assert eur.currency == "EUR" and [v for m, v in eur.months if v] == [Decimal(80)]
    assert usd.months[0][0] == dt.date(2025, 7, 1) and usd.months[-1][0] == dt.date(2026, 6, 1)
    assert {m.isoformat(): v for m, v in usd.months if v} == {
        "2026-01-01": Decimal(100), "2026-04-01": Decimal("300.00")}  # 250.50 + 49.50


@pytest.mark.django_db
def test_owed_per_currency_with_what_is_past_its_due_date(acme):
    _invoice(acme, "100", dt.datetime(2026, 6, 10, tzinfo=dt.UTC))  # due June 20: outstanding
    _invoice(acme, "40", dt.datetime(2026, 5, 1, tzinfo=dt.UTC))  # due May 11: overdue
    paid = _invoice(acme, "60", dt.datetime(2026, 5, 2, tzinfo=dt.UTC))
    actions.invoice_trigger_payment(invoice_id=paid.pk, trigger="paid")
    _invoice(acme, "15", dt.datetime(2026, 6, 1, tzinfo=dt.UTC), currency="EUR")
    with time_machine.travel(NOW, tick=False):
        mark_overdue_invoices_task.apply()
    # when
    rows = owed(now=NOW)
    # then: USD 100 + 40 = 140 owed, 40 of it overdue; EUR 15 owed (due June 11), all of it overdue
    assert [(o.currency, o.outstanding, o.outstanding_count, o.overdue, o.overdue_count) for o in rows] == [
        ("EUR", Decimal(15), 1, Decimal(15), 1), ("USD", Decimal(140), 2, Decimal(40), 1)]


@pytest.mark.django_db
def test_needs_attention_counts_invoices_by_reason_with_their_filtered_list(acme):
    _invoice(acme, "10", dt.datetime(2026, 6, 1, tzinfo=dt.UTC), approve=False)
    _invoice(acme, "20", dt.datetime(2026, 6, 2, tzinfo=dt.UTC), currency="EUR", approve=False)
    assert [(a.label, a.count, a.url) for a in needs_attention()] == [
        ("drafts waiting for approval", 2, "/admin/billing/invoice/?needs=approval")]


def _failed_delivery() -> None:
    channel = NotificationChannel.objects.create(name="ERP hook", url="https://erp.example.com/hook",
                                                 signing_secret_encrypted="x")
    rule = NotificationRule.objects.create(type="invoice.created", name="Invoices")
    event = NotificationEvent.objects.create(type="invoice.created", rule=rule, payload_json="{}")
    NotificationDelivery.objects.create(event=event, channel=channel, state=DeliveryState.FAILED, reason="HTTP 500")


@pytest.mark.django_db
def test_dashboard_page_shows_each_panel(admin_client, acme, django_assert_max_num_queries):
    _invoice(acme, "1250", dt.datetime(2026, 6, 10, tzinfo=dt.UTC))  # due June 20
    _invoice(acme, "10", dt.datetime(2026, 6, 11, tzinfo=dt.UTC), approve=False)
    _failed_delivery()
    ingest([{"subject": "acme", "time": NOW, "data": {"tokens": 1}}])  # not folded yet
    every, _ = IntervalSchedule.objects.get_or_create(every=900, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="Billing: mark unpaid invoices overdue", task="billing.mark_overdue_invoices",
                                interval=every)
    with time_machine.travel(NOW, tick=False):
        mark_overdue_invoices_task.apply()
        with django_assert_max_num_queries(20):
            text = text_of(admin_client.get("/admin/").content)
    assert "USD: $1,250.00 billed in 12 months" in text
    assert "USD $1,250.00 1 invoice $0.00 0 invoices" in text
    assert "Drafts waiting for approval: 1" in text
    assert "Failed webhook deliveries: 1" in text
    assert "Events waiting to be folded into the meters: 1 , the oldest for" in text
    assert "Billing: mark unpaid invoices overdue Succeeded" in text and "invoices past due: 0" in text


@pytest.mark.django_db
def test_dashboard_queries_do_not_grow_with_the_data(admin_client, acme, django_assert_max_num_queries):
    for day in range(1, 11):
        _invoice(acme, "10", dt.datetime(2026, 5, day, tzinfo=dt.UTC), currency=("USD", "EUR")[day % 2])
    with django_assert_max_num_queries(20):
        assert admin_client.get("/admin/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_operator_sees_revenue_and_goes_to_the_drafts_waiting(operator_page):
    page = operator_page
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), autoAdvance=False)
    cust = customer(name="Umbrella", subjects=("umbrella",))
    now = timezone.now()
    _invoice(cust, "300", now - dt.timedelta(days=1))
    draft = _invoice(cust, "75", now, approve=False)
    page.goto("/admin/")
    expect(page.locator(".om-dashboard figure")).to_contain_text("USD: $300.00 billed in 12 months")
    expect(page.locator(".om-owed")).to_contain_text("$300.00")
    page.get_by_role("link", name="Drafts waiting for approval: 1").click()
    expect(page.locator("#result_list")).to_contain_text(draft.number)
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    assert Invoice.objects.filter(status=S.DRAFT_MANUAL_APPROVAL_NEEDED).count() == 1


@pytest.mark.django_db
def test_dashboard_says_when_the_job_queue_does_not_answer(admin_client, settings):
    assert "The job queue (Redis) does not answer" not in text_of(admin_client.get("/admin/").content)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    text = text_of(admin_client.get("/admin/").content)
    assert "The job queue (Redis) does not answer: scheduled jobs, webhook deliveries and Stripe syncs wait" in text
    assert "Nothing waits for you" not in text
