"""A billing person works the invoices in headless Chromium: reviews and approves a draft, voids an invoice after
confirming, records a payment made outside the invoicing app, collects a draft that waits for late events (the
API's snapshotQuantities), advances a draft the auto-advance job has not reached, marks an invoice uncollectible,
prints and downloads an invoice."""

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import Invoice
from billing.models import InvoiceStatus as S
from billing.services import actions, drafts, gathering
from billing.services.gathering import LineInput
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure
from tests.billing.helpers import custom_invoicing_app, customer, metered_feature, profile
from tests.factories import ingest

pytestmark = pytest.mark.django_db(transaction=True)


def _recent_period() -> tuple[dt.datetime, dt.datetime]:
    end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return end - dt.timedelta(days=30), end


def _draft(app=None) -> Invoice:
    """A draft waiting for approval: onboarding $1,200 with 10% off, and 1,500 API calls at $0.02."""
    profile(app=app, autoAdvance=False)
    start, end = _recent_period()
    feature = metered_feature("api_calls")
    cust = customer(name="Globex Corporation", subjects=("globex",))
    ingest([{"subject": "globex", "type": "api_calls", "time": start + dt.timedelta(days=2), "data": {"tokens": 1500}}])
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[
        LineInput(name="Onboarding", period_start=start, period_end=end, invoice_at=start,
                  price={"type": "flat", "amount": "1200", "paymentTerm": "in_advance"},
                  discounts={"percentage": {"percentage": "10"}}),
        LineInput(name="API calls", period_start=start, period_end=end, invoice_at=start, feature_key=feature.key,
                  price={"type": "unit", "amount": "0.02"}),
    ])
    [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk, as_of=end)
    return invoice


def test_operator_reviews_and_approves_a_draft(operator_page):
    page = operator_page
    invoice = _draft()
    page.goto("/admin/billing/invoice/?needs=approval")
    expect(page.locator("#result_list")).to_contain_text("draft: manual approval needed")
    # 1,200 - 10% + 1,500 x 0.02 = 1,080 + 30 = 1,110
    expect(page.locator("#result_list")).to_contain_text("$1,110.00")
    page.get_by_role("link", name=invoice.number).click()
    lines = page.locator("table.om-lines")
    expect(lines.locator("tr.om-parent").nth(0)).to_contain_text("Onboarding")
    expect(lines.locator("tr.om-parent").nth(0)).to_contain_text("$1,200.00 flat fee, in advance, 10% off")
    expect(lines.locator("tr.om-detail").nth(0)).to_contain_text("−$120.00")
    expect(lines.locator("tr.om-parent").nth(1)).to_contain_text("1,500")
    expect(lines.locator("tr.om-parent").nth(1)).to_contain_text("$30.00")
    expect(page.locator(".om-total-value")).to_have_text("$1,110.00")
    page.get_by_role("link", name="Approve").click()
    page.locator("input[type=submit][value='Approve']").click()
    expect(page.locator(".messagelist")).to_contain_text(f"{invoice.number}: approved")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("paid")  # the sandbox settles at once


def test_operator_voids_an_invoice_after_confirming(operator_page):
    page = operator_page
    invoice = actions.invoice_approve(invoice_id=_draft(custom_invoicing_app(draft_hook=False,
                                                                                 issuing_hook=False)).pk)
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("payment processing: pending")
    page.get_by_role("link", name="Void").click()
    expect(page.locator(".om-confirm")).to_contain_text("Voiding cannot be undone")
    page.fill("textarea[name=reason]", "sent twice")
    page.locator("input[type=submit][value='Void']").click()
    expect(page.locator(".messagelist")).to_contain_text(f"{invoice.number} is voided.")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("voided")
    assert Invoice.objects.get(pk=invoice.pk).status == S.VOIDED


def test_operator_records_a_payment_made_outside_the_invoicing_app(operator_page):
    page = operator_page
    invoice = actions.invoice_approve(invoice_id=_draft(custom_invoicing_app(draft_hook=False,
                                                                                 issuing_hook=False)).pk)
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    page.get_by_role("link", name="Mark paid").click()
    page.locator("input[type=submit][value='Mark paid']").click()
    expect(page.locator(".messagelist")).to_contain_text("payment recorded; now paid")
    expect(page.locator(".object-tools")).not_to_contain_text("Mark paid")


def test_operator_collects_a_draft_that_waits_for_late_events(operator_page):
    page = operator_page
    app = billing_profile_default_ensure().invoicing_app
    billing_profile_create(name="Late events", supplier={"name": "Supplier Inc"}, default=True,
                           workflow={"collection": {"interval": "P2D"}, "invoicing": {"autoAdvance": False}},
                           apps=ProfileApps(tax=app.pk, invoicing=app.pk, payment=app.pk))
    feature = metered_feature("api_calls")
    cust = customer(name="Initech", subjects=("initech",))
    end = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    start = end - dt.timedelta(days=30)
    ingest([{"subject": "initech", "type": "api_calls", "time": start + dt.timedelta(days=1), "data": {"tokens": 40}}])
    gathering.pending_lines_create(customer_id=cust.pk, currency="EUR", lines=[
        LineInput(name="API calls", period_start=start, period_end=end, invoice_at=end, feature_key=feature.key,
                  price={"type": "unit", "amount": "0.5"})])
    [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    assert invoice.status == S.DRAFT_WAITING_FOR_COLLECTION
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    expect(page.locator(".om-invoice-head")).to_contain_text("Collection")
    page.get_by_role("link", name="Collect now").click()
    page.locator("input[type=submit][value='Collect now']").click()
    # 40 x 0.50 = 20
    expect(page.locator(".messagelist")).to_contain_text("quantities taken; now draft: manual approval needed")
    expect(page.locator(".om-total-value")).to_have_text("€20.00")


def test_operator_bills_a_one_off_charge_from_the_customer_page(operator_page):
    page = operator_page
    profile(autoAdvance=False)
    cust = customer(name="Hooli", subjects=("hooli",))
    page.goto(f"/admin/customers/customer/{cust.pk}/change/")
    page.get_by_role("link", name="Add one-off charge").click()
    page.fill("input[name=name]", "Onboarding workshop")
    page.fill("input[name=amount]", "1500")
    page.select_option("select[name=currency]", "EUR")
    page.check("input[name=invoice_now]")
    page.locator("input[type=submit][value='Add one-off charge']").click()
    # the invoice of the charge opens, waiting for approval
    expect(page.locator(".messagelist")).to_contain_text("Onboarding workshop (€1,500.00) invoiced")
    expect(page.locator(".om-total-value")).to_have_text("€1,500.00")
    expect(page.locator("table.om-lines")).to_contain_text("€1,500.00 flat fee, in advance")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("draft: manual approval needed")


def test_operator_advances_a_draft_the_auto_advance_job_has_not_reached_yet(operator_page):
    page = operator_page
    # made two days ago with a one-day draft period: the draft period is over, the job has not run yet
    profile(autoAdvance=True, draftPeriod="P1D")
    cust = customer(name="Umbrella Corp", subjects=("umbrella",))
    made = timezone.now().replace(microsecond=0) - dt.timedelta(days=2)
    with time_machine.travel(made, tick=False):
        gathering.pending_lines_create(customer_id=cust.pk, currency="GBP", lines=[
            LineInput(name="Platform fee", period_start=made, period_end=made + dt.timedelta(days=30), invoice_at=made,
                      price={"type": "flat", "amount": "250.5", "paymentTerm": "in_advance"})])
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    assert invoice.status == S.DRAFT_WAITING_AUTO_APPROVAL
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("draft: waiting auto approval")
    expect(page.locator(".om-invoice-head")).to_contain_text("Draft until")
    expect(page.locator(".om-total-value")).to_have_text("£250.50")
    page.get_by_role("link", name="Advance").click()
    expect(page.locator("#content")).to_contain_text("Move the invoice on to its next state now")
    page.locator("input[type=submit][value='Advance']").click()
    issued = Invoice.objects.get(pk=invoice.pk)
    # issued through the sandbox, which numbers it and settles it at once
    expect(page.locator(".messagelist")).to_contain_text(
        f"{invoice.number}: advanced; issued as {issued.number}; now paid.")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("paid")
    expect(page.locator(".om-invoice-head")).to_contain_text("Issued")
    assert issued.status == S.PAID and issued.issued_at is not None


def test_operator_marks_an_invoice_uncollectible_after_confirming(operator_page):
    page = operator_page
    invoice = actions.invoice_approve(invoice_id=_draft(custom_invoicing_app(draft_hook=False,
                                                                                 issuing_hook=False)).pk)
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    page.get_by_role("link", name="Mark uncollectible").click()
    expect(page.locator(".om-confirm")).to_contain_text("The invoice will no longer be collected.")
    page.locator("input[type=submit][value='Mark uncollectible']").click()
    expect(page.locator(".messagelist")).to_contain_text(f"{invoice.number}: marked uncollectible; now uncollectible.")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("uncollectible")
    expect(page.locator(".om-total-value")).to_have_text("$1,110.00")  # what the customer did not pay
    expect(page.locator(".object-tools")).not_to_contain_text("Mark uncollectible")
    assert Invoice.objects.get(pk=invoice.pk).status == S.UNCOLLECTIBLE


def test_operator_prints_and_downloads_an_invoice(operator_page):
    page = operator_page
    invoice = _draft()
    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Print").click()
    printable = opened.value
    expect(printable.locator("h1")).to_have_text(f"Invoice {invoice.number}")
    expect(printable.locator(".parties")).to_contain_text("Bill to")
    expect(printable.locator(".parties")).to_contain_text("Globex Corporation")
    expect(printable.locator("tr.detail").first).to_contain_text("−$120.00")  # Onboarding's 10% off, under it
    expect(printable.locator(".totals tr.grand")).to_have_text("Total due (USD)$1,110.00")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download CSV").click()
    download = downloading.value
    assert download.suggested_filename == f"{invoice.number}.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    # 1,200 - 120 + 1,500 x 0.02 = 1,110
    assert rows[-1] == ["Total", "", "", "", "", "", "1230.00", "120.00", "0.00", "0.00", "0.00", "1110.00", "USD"]
