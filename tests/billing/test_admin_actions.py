"""The customer's billing actions (billing.admin_actions, shown on the customer's page in the back office): a
one-off charge becomes a pending line (or an invoice at once), invoice now turns pending lines into invoices; a
rejection is shown on the form and changes nothing.

Driven through the customer's page in the back office (the hub offers these actions)."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.utils.html import strip_tags

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from customers.models import Customer
from tests.billing.helpers import customer, profile

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 30, tzinfo=dt.UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def operator(admin_client):
    """A billing person in Berlin (the back office shows and reads days in the operator's zone)."""
    admin_client.cookies["om_tz"] = "Europe/Berlin"
    return admin_client


def act(operator, cust: Customer, action: str, data: dict | None = None):
    """GET (data None) or POST the action page on the customer's page; returns (response, messages shown)."""
    url = f"/admin/customers/customer/{cust.pk}/do/{action}/"
    response = operator.get(url) if data is None else operator.post(url, data)
    return response, [strip_tags(str(m)) for m in get_messages(response.wsgi_request)]


def charge(**overrides) -> dict:
    return {"name": "Onboarding workshop", "amount": "1500", "currency": "EUR", "service_from": "2026-03-10",
            "service_to": "2026-03-11", "description": "", **overrides}


@pytest.fixture
def acme():
    profile(autoAdvance=False)
    return customer(name="ACME Inc.", subjects=("acme",))


def test_charge_form_offers_the_customer_currency_and_today(operator, acme):
    acme.currency = "EUR"
    acme.save()
    with time_machine.travel(NOW, tick=False):
        response, _ = act(operator, acme, "add_charge")
    html = response.content.decode()
    assert '<option value="EUR" selected>EUR</option>' in html
    assert 'value="2026-03-10"' in html


def test_one_off_charge_becomes_a_pending_line_over_the_service_days(operator, acme):
    with time_machine.travel(NOW, tick=False):
        response, shown = act(operator, acme, "add_charge", charge())
    # then: back to the customer, the line waits on the gathering invoice in EUR
    assert response.status_code == 302
    gathering = Invoice.objects.get(customer=acme, status=S.GATHERING)
    line = InvoiceLine.objects.get(invoice=gathering)
    assert (line.name, line.currency, line.price) == (
        "Onboarding workshop", "EUR", {"type": "flat", "amount": "1500", "paymentTerm": "in_advance"})
    # March 10 and 11 in Berlin (UTC+1): from 2026-03-09 23:00 UTC to 2026-03-11 23:00 UTC, billed in advance
    assert line.period_start == dt.datetime(2026, 3, 9, 23, tzinfo=dt.UTC)
    assert line.period_end == dt.datetime(2026, 3, 11, 23, tzinfo=dt.UTC)
    assert line.invoice_at == line.period_start
    assert shown == [f"Onboarding workshop (€1,500.00) added to the pending lines of {gathering.number}; it is "
                     "invoiced with the next invoice, or now with “Invoice now”."]


def test_one_off_charge_invoiced_at_once_opens_its_invoice(operator, acme):
    with time_machine.travel(NOW, tick=False):
        response, shown = act(operator, acme, "add_charge", charge(invoice_now="on"))
    invoice = Invoice.objects.exclude(status=S.GATHERING).get(customer=acme)
    assert response["Location"] == f"/admin/billing/invoice/{invoice.pk}/change/"
    assert (invoice.total, invoice.currency, invoice.status) == (Decimal(1500), "EUR", S.DRAFT_MANUAL_APPROVAL_NEEDED)
    assert shown == [f"Onboarding workshop (€1,500.00) invoiced: {invoice.number} (€1,500.00, draft: manual "
                     "approval needed)"]


@pytest.mark.parametrize(
    ("case", "data", "error"),
    [
        ("end_before_start", charge(service_to="2026-03-09"), "The service cannot end before it starts."),
        ("negative_amount", charge(amount="-5"), "Ensure this value is greater than or equal to 0."),
        ("lower_case_currency", charge(currency="eur"), "Select a valid choice. eur is not one of"),
        ("no_name", charge(name=""), "This field is required."),
    ],
)
def test_a_bad_charge_is_a_form_error_and_adds_nothing(operator, acme, case, data, error):
    with time_machine.travel(NOW, tick=False):
        response, _ = act(operator, acme, "add_charge", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not InvoiceLine.objects.exists() and not Invoice.objects.exists()


def test_charge_for_a_future_day_invoiced_now_is_refused_and_leaves_no_line(operator, acme):
    # the service refuses: a charge for tomorrow is not due yet, so nothing can be invoiced now
    with time_machine.travel(NOW, tick=False):
        response, _ = act(operator, acme, "add_charge", charge(service_from="2026-03-20", service_to="2026-03-20",
                                                               invoice_now="on"))
    assert response.status_code == 200
    assert "has no pending lines to invoice" in response.content.decode()
    assert not InvoiceLine.objects.filter(deleted_at__isnull=True).exists()
    assert not Invoice.objects.exclude(status=S.GATHERING).exists()


def test_invoice_now_turns_due_pending_lines_into_an_invoice(operator, acme):
    with time_machine.travel(NOW, tick=False):
        act(operator, acme, "add_charge", charge(amount="200", currency="USD"))
        act(operator, acme, "add_charge", charge(name="Hardware", amount="49.99", currency="USD"))
        response, shown = act(operator, acme, "invoice_now", {"progressive": ""})
    invoice = Invoice.objects.exclude(status=S.GATHERING).get()
    # 200 + 49.99 = 249.99
    assert invoice.total == Decimal("249.99")
    assert response["Location"] == f"/admin/billing/invoice/{invoice.pk}/change/"
    assert shown[-1] == f"Invoiced ACME Inc.: {invoice.number} ($249.99, draft: manual approval needed)"
    assert not InvoiceLine.objects.filter(invoice__status=S.GATHERING, deleted_at__isnull=True).exists()


def test_invoice_now_with_two_currencies_makes_two_invoices_and_stays_on_the_customer(operator, acme):
    with time_machine.travel(NOW, tick=False):
        act(operator, acme, "add_charge", charge(amount="200", currency="USD"))
        act(operator, acme, "add_charge", charge(amount="100", currency="EUR"))
        response, shown = act(operator, acme, "invoice_now", {"progressive": "no"})
    assert response.status_code == 302 and response["Location"] == f"/admin/customers/customer/{acme.pk}/change/"
    eur, usd = Invoice.objects.exclude(status=S.GATHERING).order_by("currency")
    assert (eur.total, usd.total) == (Decimal(100), Decimal(200))
    assert shown[-1] == (f"Invoiced ACME Inc.: {eur.number} (€100.00, draft: manual approval needed), {usd.number} "
                         "($200.00, draft: manual approval needed)")


def test_invoice_now_without_pending_lines_shows_the_service_refusal_and_changes_nothing(operator, acme):
    with time_machine.travel(NOW, tick=False):
        response, shown = act(operator, acme, "invoice_now", {"progressive": ""})
    assert response.status_code == 200
    assert f"customer {acme.pk} has no pending lines to invoice" in response.content.decode()
    assert shown == [] and not Invoice.objects.exists()


def test_actions_are_not_offered_for_a_deleted_customer(operator, acme):
    acme.deleted_at = NOW
    acme.save()
    response, shown = act(operator, acme, "invoice_now", {"progressive": ""})
    assert response.status_code == 302
    assert shown == [f"“Invoice now” is not possible for {acme} now."]
