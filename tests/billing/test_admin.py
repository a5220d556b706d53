"""The invoices in the back office: the list and an invoice's page show money as money and detailed lines under
their parent line; every action goes through the service the API's action calls (success, the refusal shown,
nothing changed); the printable invoice and the CSV of its lines."""

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from html import unescape

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils.html import strip_tags

from billing.models import App, Invoice, InvoiceEvent, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import actions, drafts, gathering
from billing.services.gathering import LineInput
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure
from integrations.models import AppType
from tests.billing.helpers import FEB, T0, custom_invoicing_app, customer, metered_feature, profile
from tests.factories import ingest

pytestmark = pytest.mark.django_db

AT = FEB + dt.timedelta(hours=2)
SUPPORT = LineInput(name="Support plan", period_start=T0, period_end=FEB, invoice_at=T0,
                    price={"type": "flat", "amount": "99.5", "paymentTerm": "in_advance"},
                    discounts={"percentage": {"percentage": "10"}})


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


def _draft(*lines: LineInput, app=None, **workflow) -> Invoice:
    profile(app=app, autoAdvance=False, **workflow)
    cust = customer()
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=list(lines) or [SUPPORT])
    with time_machine.travel(AT, tick=False):
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    return invoice


def _issued_by_hand() -> Invoice:
    """Issued through a custom invoicing app (no hooks): payment is recorded by hand."""
    invoice = _draft(app=custom_invoicing_app(draft_hook=False, issuing_hook=False))
    with time_machine.travel(AT, tick=False):
        return actions.invoice_approve(invoice_id=invoice.pk)


def text_of(html: bytes | str) -> str:
    """The page as an operator reads it: the text of its elements, one space between them."""
    html = html.decode() if isinstance(html, bytes) else html
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def _page(staff, invoice: Invoice) -> str:
    response = staff.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert response.status_code == 200
    return text_of(response.content)


def _do(staff, invoice: Invoice, action: str, data: dict | None = None):
    url = f"/admin/billing/invoice/{invoice.pk}/do/{action}/"
    with time_machine.travel(AT, tick=False):
        return staff.get(url) if data is None else staff.post(url, data, follow=True)


def _messages(response) -> list[str]:
    return [strip_tags(str(m)) for m in response.context["messages"]]


@pytest.mark.parametrize("url", ["/admin/billing/invoice/", "/admin/billing/billingprofile/",
                                 "/admin/billing/customeroverride/", "/admin/billing/invoice/?status_group=draft",
                                 "/admin/billing/invoice/?needs=approval"])
def test_changelists_render(staff, url):
    _draft()
    assert staff.get(url).status_code == 200


def test_invoice_list_shows_the_total_in_its_currency_and_the_status_in_words(staff):
    invoice = _draft()
    text = text_of(staff.get("/admin/billing/invoice/").content)
    # 99.50 - 10% = 89.55
    assert f"{invoice.number} Acme Corp draft: manual approval needed $89.55" in text
    assert "89.5500000000000000000" not in text


def test_invoice_page_nests_detailed_lines_under_their_line_with_money(staff):
    invoice = _draft()
    text = _page(staff, invoice)
    # the line with its price in words, its detailed line under it: 99.50, 10% off = 9.95, total 89.55
    assert ("Support plan $99.50 flat fee, in advance, 10% off 2026-01-01 00:00 UTC → 2026-02-01 00:00 UTC "
            "1 $99.50 −$9.95 $89.55 ↳ Support plan 1 $99.50 $99.50 −$9.95 $89.55") in text
    assert "Amount $99.50 Discounts $9.95 Total $89.55" in text
    assert "draft: manual approval needed" in text and "Customer Acme Corp · USD" in text
    assert "0000000000" not in text


def test_invoice_page_shows_a_minimum_spend_top_up_as_a_charge(staff):
    # usage 10 x $2.00 with a $50 minimum: amount 20, charges 30, total 50
    feature = metered_feature()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=3), "data": {"tokens": 10}}])
    usage = LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature.key,
                      price={"type": "unit", "amount": "2", "minimumAmount": "50"})
    text = _page(staff, _draft(usage))
    assert "Tokens $2.00 per unit, minimum $50.00" in text
    assert "Amount $20.00 Charges (minimum spend) $30.00 Total $50.00" in text


def test_gathering_invoice_page_shows_pending_lines_to_date(staff):
    profile(autoAdvance=False)
    cust = customer()
    result = gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[SUPPORT])
    text = _page(staff, result.invoice)
    assert "Pending lines" in text and "Total to date $89.55" in text
    listing = text_of(staff.get("/admin/billing/invoice/").content)
    assert f"{result.invoice.number} Acme Corp gathering pending" in listing


def test_invoice_page_offers_only_the_actions_its_state_allows(staff):
    invoice = _draft()
    page = staff.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    for offered in ("do/approve/", "do/delete/"):
        assert offered in page
    for not_offered in ("do/void/", "do/retry/", "do/mark_paid/", "do/invoice_now/", "do/snapshot/"):
        assert not_offered not in page


def test_approve_issues_the_draft_through_the_state_machine(staff):
    invoice = _draft()
    response = _do(staff, invoice, "approve", {})
    invoice.refresh_from_db()
    assert invoice.status == S.PAID  # the sandbox app issues it and settles the payment
    assert response.redirect_chain[-1][0] == f"/admin/billing/invoice/{invoice.pk}/change/"
    assert _messages(response) == [f"DRAFT-ACCO-1: approved; issued as {invoice.number}; now paid."]
    assert InvoiceEvent.objects.filter(invoice=invoice, trigger="approve", actor="admin:boss").exists()


def test_void_asks_for_confirmation_then_voids_with_the_reason(staff):
    invoice = _issued_by_hand()
    assert invoice.status == S.PAYMENT_PENDING
    page = _do(staff, invoice, "void").content.decode()
    assert "Voiding cannot be undone" in page
    invoice.refresh_from_db()
    assert invoice.status == S.PAYMENT_PENDING  # showing the confirmation changed nothing
    response = _do(staff, invoice, "void", {"reason": "duplicate of INV-7"})
    invoice.refresh_from_db()
    assert invoice.status == S.VOIDED and invoice.voided_at == AT
    assert InvoiceEvent.objects.get(invoice=invoice, to_status=S.VOIDED).note == "duplicate of INV-7"
    assert _messages(response) == [f"{invoice.number} is voided."]


def test_an_action_the_state_no_longer_allows_is_refused_and_changes_nothing(staff):
    invoice = _draft()
    events = InvoiceEvent.objects.count()
    response = _do(staff, invoice, "void", {"reason": ""})
    assert _messages(response) == [f"“Void” is not possible for {invoice.number} now."]
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED and InvoiceEvent.objects.count() == events


def test_mark_paid_is_offered_where_payment_is_recorded_by_hand(staff):
    invoice = _issued_by_hand()
    assert "do/mark_paid/" in staff.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    response = _do(staff, invoice, "mark_paid", {})
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert _messages(response) == [f"{invoice.number}: payment recorded; now paid."]
    # paid: nothing more to record
    assert "do/mark_paid/" not in staff.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()


def test_mark_paid_is_not_offered_for_an_app_that_reports_payments_itself(staff):
    invoice = _draft()  # the sandbox app pays at issue, Stripe reports through its webhook
    response = _do(staff, invoice, "mark_paid", {})
    assert _messages(response) == [f"“Mark paid” is not possible for {invoice.number} now."]
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED


def test_collect_now_takes_the_quantities_of_a_draft_waiting_for_collection(staff):
    feature = metered_feature()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=3), "data": {"tokens": 7}}])
    # the period ended 2 hours ago and late events are awaited for a day: the draft waits for collection
    usage = LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature.key,
                      price={"type": "unit", "amount": "3"})
    app = billing_profile_default_ensure().invoicing_app
    billing_profile_create(name="Late events", supplier={"name": "Supplier Inc"}, default=True,
                           workflow={"collection": {"interval": "P1D"}, "invoicing": {"autoAdvance": False}},
                           apps=ProfileApps(tax=app.pk, invoicing=app.pk, payment=app.pk))
    cust = customer()
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[usage])
    with time_machine.travel(AT, tick=False):
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    assert invoice.status == S.DRAFT_WAITING_FOR_COLLECTION
    # when
    response = _do(staff, invoice, "snapshot", {})
    # then: 7 x 3 = 21, and the draft waits for approval
    invoice.refresh_from_db()
    assert (invoice.status, invoice.total) == (S.DRAFT_MANUAL_APPROVAL_NEEDED, Decimal(21))
    assert _messages(response) == [f"{invoice.number}: quantities taken; now draft: manual approval needed."]


def test_delete_draft_asks_for_confirmation_and_returns_the_lines_to_pending(staff):
    invoice = _draft()
    assert "The draft is deleted" in _do(staff, invoice, "delete").content.decode()
    response = _do(staff, invoice, "delete", {})
    invoice.refresh_from_db()
    assert invoice.status == S.DELETED
    assert _messages(response) == [f"{invoice.number}: the draft is deleted."]


def test_invoice_now_on_a_gathering_invoice_makes_the_invoice_and_opens_it(staff):
    profile(autoAdvance=False)
    cust = customer()
    pending_invoice = gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[SUPPORT]).invoice
    response = _do(staff, pending_invoice, "invoice_now", {})
    invoice = Invoice.objects.exclude(status=S.GATHERING).get()
    assert response.redirect_chain[-1][0] == f"/admin/billing/invoice/{invoice.pk}/change/"
    assert _messages(response) == [f"Invoiced the pending lines of {pending_invoice.number}: {invoice.number} ($89.55, "
                                   "draft: manual approval needed)"]


def test_invoice_now_refused_by_the_service_is_shown_on_the_form(staff):
    profile(autoAdvance=False)
    cust = customer()
    later = LineInput(name="Next year's support", period_start=AT + dt.timedelta(days=300),
                      period_end=AT + dt.timedelta(days=330), invoice_at=AT + dt.timedelta(days=300),
                      price={"type": "flat", "amount": "10", "paymentTerm": "in_advance"})
    pending_invoice = gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[later]).invoice
    response = _do(staff, pending_invoice, "invoice_now", {})
    assert response.status_code == 200
    assert "has no pending lines to invoice" in response.content.decode()
    assert not Invoice.objects.exclude(status=S.GATHERING).exists()
    assert InvoiceLine.objects.get().invoice_id == pending_invoice.pk


def test_bulk_approve_uses_the_state_machine(staff):
    invoice = _draft()
    with time_machine.travel(AT, tick=False):
        response = staff.post("/admin/billing/invoice/", {"action": "approve", "_selected_action": [invoice.pk]})
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert InvoiceEvent.objects.filter(invoice=invoice, trigger="approve", actor="admin:boss").exists()


def test_bulk_void_asks_for_confirmation_first(staff):
    invoice = _issued_by_hand()
    page = staff.post("/admin/billing/invoice/", {"action": "void", "_selected_action": [invoice.pk]})
    assert "Voiding cannot be undone" in page.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == S.PAYMENT_PENDING
    staff.post("/admin/billing/invoice/", {"action": "void", "_selected_action": [invoice.pk], "confirmed": "yes"})
    invoice.refresh_from_db()
    assert invoice.status == S.VOIDED


def test_bulk_action_not_available_reports_an_error_and_changes_nothing(staff):
    invoice = _draft()
    response = staff.post("/admin/billing/invoice/", {"action": "retry", "_selected_action": [invoice.pk]},
                          follow=True)
    assert b"not available" in response.content
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED


def _issued_to_an_addressed_customer() -> Invoice:
    """Support plan ($99.50 with 10% off) issued by hand at AT to Acme Corp, both parties with an address."""
    app = custom_invoicing_app(draft_hook=False, issuing_hook=False)
    billing_profile_create(
        name="Invoicing", default=True, workflow={"invoicing": {"autoAdvance": False}},
        supplier={"name": "Supplier Inc", "taxId": {"code": "DE123456789"},
                  "addresses": [{"line1": "Hauptstr. 1", "postalCode": "10115", "city": "Berlin", "country": "DE"}]},
        apps=ProfileApps(tax=app.pk, invoicing=app.pk, payment=app.pk),
    )
    cust = customer()
    cust.billing_address = {"line1": "1 Main St", "line2": "Suite 400", "postalCode": "94105", "city": "San Francisco",
                            "state": "CA", "country": "US", "phoneNumber": "+1 415 555 0100"}
    cust.save(update_fields=["billing_address"])
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[SUPPORT])
    with time_machine.travel(AT, tick=False):
        [draft] = drafts.invoice_pending_lines(customer_id=cust.pk)
        return actions.invoice_approve(invoice_id=draft.pk)


def test_printable_invoice_shows_parties_dates_lines_and_totals_as_money(staff):
    invoice = _issued_to_an_addressed_customer()
    staff.cookies["om_tz"] = "America/Los_Angeles"  # UTC-8 in winter
    text = text_of(staff.get(f"/admin/billing/invoice/{invoice.pk}/print/").content)
    # issued 2026-02-01 02:00 UTC, due 30 days later: 2026-03-03 02:00 UTC, the evening before in Los Angeles
    assert f"Invoice {invoice.number} Issued 2026-01-31 · Due 2026-03-02" in text
    assert "From Supplier Inc tax ID DE123456789 Hauptstr. 1 10115 Berlin DE" in text
    assert "Bill to Acme Corp 1 Main St Suite 400 94105 San Francisco CA US +1 415 555 0100" in text
    assert "key " not in text  # our keys are not for the customer's eyes
    # the line at its total, its detailed line under it with the discount
    assert "Support plan $99.50 flat fee, in advance, 10% off 2025-12-31 – 2026-01-31 1 $89.55" in text
    assert "Support plan 1 $99.50 $99.50 (discount −$9.95)" in text
    assert "Amount $99.50 Discounts $9.95 Total due (USD) $89.55" in text


def test_printable_invoice_and_csv_need_the_permission_to_view_invoices(client):
    invoice = _draft()
    clerk = User.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    client.force_login(clerk)
    assert client.get(f"/admin/billing/invoice/{invoice.pk}/print/").status_code == 403
    assert client.get(f"/admin/billing/invoice/{invoice.pk}/download/").status_code == 403


def test_download_gives_the_lines_as_csv(staff):
    invoice = _draft()
    response = staff.get(f"/admin/billing/invoice/{invoice.pk}/download/")
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["line", "detail of", "service from", "service to", "quantity", "unit price", "amount",
                       "discounts", "charges", "credits", "taxes", "total", "currency"]
    # 99.50 - 10% = 89.55; the detailed line names its parent line
    assert rows[1][0] == "Support plan" and rows[1][6:] == ["99.50", "9.95", "0.00", "0.00", "0.00", "89.55", "USD"]
    assert rows[2][:2] == ["Support plan", "Support plan"] and rows[2][4:6] == ["1", "99.5"]
    assert rows[2][2:4] == ["2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"]
    assert rows[-1] == ["Total", "", "", "", "", "", "99.50", "9.95", "0.00", "0.00", "0.00", "89.55", "USD"]


def test_a_stripe_invoice_links_to_stripe(staff):
    stripe = App.objects.create(type=AppType.STRIPE, name="Stripe", livemode=False)
    invoice = _draft()
    Invoice.objects.filter(pk=invoice.pk).update(invoicing_app=stripe, external_ids={"invoicing": "in_123"})
    html = staff.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    assert ('invoicing: <a href="https://dashboard.stripe.com/test/invoices/in_123" target="_blank" '
            'rel="noopener">in_123</a>') in html


def test_invoice_list_queries_do_not_grow_with_the_invoices(staff, django_assert_max_num_queries):
    profile(autoAdvance=False)
    for n in range(8):
        cust = customer(name=f"Customer {n}", subjects=(f"c{n}",))
        gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[SUPPORT])
        with time_machine.travel(AT, tick=False):
            drafts.invoice_pending_lines(customer_id=cust.pk)
    with django_assert_max_num_queries(12):
        text = text_of(staff.get("/admin/billing/invoice/").content)
    assert text.count("$89.55") == 8


def test_retry_runs_the_failed_validation_again_once_the_cause_is_fixed(staff):
    # a usage line whose feature was archived before the draft was made: the draft is invalid
    feature = metered_feature()
    usage = LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature.key,
                      price={"type": "unit", "amount": "2"})
    profile(autoAdvance=False)
    cust = customer()
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[usage])
    feature.archived_at = T0
    feature.save()
    with time_machine.travel(AT, tick=False):
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    assert invoice.status == S.DRAFT_INVALID
    page = _page(staff, invoice)
    assert "Validation issues" in page and "not found or has no meter" in page
    # retried while the cause is still there: it fails again, and says so
    response = _do(staff, invoice, "retry", {})
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_INVALID
    assert _messages(response) == [f"{invoice.number}: retried; now draft: invalid."]
    # the feature is back: the retry goes through
    feature.archived_at = None
    feature.save()
    response = _do(staff, invoice, "retry", {})
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED
    assert _messages(response) == [f"{invoice.number}: retried; now draft: manual approval needed."]
