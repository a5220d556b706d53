"""Back office smoke tests: changelists, change pages, actions through the services, the printable invoice."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import User

from billing.models import Invoice, InvoiceEvent
from billing.models import InvoiceStatus as S
from billing.services import invoicing
from billing.services.invoicing import LineInput
from tests.billing.helpers import FEB, T0, customer, profile

pytestmark = pytest.mark.django_db

AT = FEB + dt.timedelta(hours=2)


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


def _draft(**workflow) -> Invoice:
    profile(autoAdvance=False, **workflow)
    cust = customer()
    invoicing.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[
        LineInput(name="Support plan", period_start=T0, period_end=FEB, invoice_at=T0,
                  price={"type": "flat", "amount": "99.5", "paymentTerm": "in_advance"},
                  discounts={"percentage": {"percentage": "10"}}),
    ])
    with time_machine.travel(AT, tick=False):
        [invoice] = invoicing.invoice_pending_lines(customer_id=cust.pk)
    return invoice


@pytest.mark.parametrize("url", ["/admin/billing/invoice/", "/admin/billing/billingprofile/",
                                 "/admin/billing/customeroverride/", "/admin/billing/invoice/?status_group=draft"])
def test_changelists_render(staff, url):
    _draft()
    assert staff.get(url).status_code == 200


def test_invoice_change_page_and_printable_invoice(staff):
    invoice = _draft()
    page = staff.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200
    assert b"approve, delete" in page.content
    printable = staff.get(f"/admin/billing/invoice/{invoice.pk}/print/")
    assert printable.status_code == 200
    html = printable.content.decode()
    # 99.50 - 10% (9.95) = 89.55
    assert "Support plan" in html
    assert "99.50" in html
    assert "9.95" in html
    assert "89.55" in html
    assert invoice.number in html


def test_admin_approve_action_uses_the_state_machine(staff):
    invoice = _draft()
    with time_machine.travel(AT, tick=False):
        response = staff.post("/admin/billing/invoice/", {"action": "approve", "_selected_action": [invoice.pk]})
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert InvoiceEvent.objects.filter(invoice=invoice, trigger="approve", actor="admin:boss").exists()


def test_admin_action_not_available_reports_an_error_and_changes_nothing(staff):
    invoice = _draft()
    response = staff.post("/admin/billing/invoice/", {"action": "void", "_selected_action": [invoice.pk]}, follow=True)
    assert b"not available" in response.content
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED
