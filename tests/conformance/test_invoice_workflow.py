"""Invoice timing from the billing workflow, as upstream's calculator (billing/service/invoicecalc: collectionat.go,
draftuntil.go, dueat.go) and pending-line collection (billing/service/gatheringinvoicependinglines.go,
rating/service/rate/base.go) compute it; every time derived by hand."""

import datetime as dt
from decimal import Decimal

import pytest

from tests.conformance.conftest import at, customer, default_workflow, iso, metered_feature, usage, utc

pytestmark = pytest.mark.django_db

START, END = utc(2026, 3, 1), utc(2026, 4, 1)


def _usage_line(om, cust, feature: str = "calls", start: dt.datetime = START, end: dt.datetime = END) -> None:
    om.customer_invoice.create_pending_invoice_line(cust.id, {"currency": "USD", "lines": [
        {"name": "Calls", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(end),
         "rateCard": {"featureKey": feature, "price": {"type": "unit", "amount": "1"}}}]})


def _flat_line(om, cust, start: dt.datetime = START, end: dt.datetime = END) -> None:
    om.customer_invoice.create_pending_invoice_line(cust.id, {"currency": "USD", "lines": [
        {"name": "Fee", "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(start),
         "rateCard": {"price": {"type": "flat", "amount": "10", "paymentTerm": "in_advance"}}}]})


def test_auto_advance_waits_the_draft_period_from_creation_and_is_due_after_it(om):
    with at(START):
        default_workflow(om, autoAdvance=True, draftPeriod="P2D", dueAfter="P7D")
        metered_feature(om, "calls")
        cust = customer(om, "timing")
        _usage_line(om, cust)
    created = utc(2026, 4, 3, 10, 0, 0)
    with at(created):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    # collectionAt = the usage line's invoiceAt (Apr 1) + the collection interval PT1H
    assert invoice.collection_at == utc(2026, 4, 1, 1)
    # draftUntil = max(collectionAt, createdAt) + P2D = Apr 3 10:00 + 2 days; dueAt = draftUntil + P7D
    assert invoice.draft_until == utc(2026, 4, 5, 10)
    assert invoice.due_at == utc(2026, 4, 12, 10)
    assert invoice.status_details.extended_status == "draft.waiting_auto_approval"


def test_an_invoice_of_flat_fees_only_has_no_collection_time(om):
    # StandardInvoiceCollectionAt considers only lines that depend on metered quantities: none here, so
    # collectionAt is unset and draftUntil counts from the invoice's creation
    with at(START):
        default_workflow(om, autoAdvance=True, draftPeriod="P1D", dueAfter="P30D")
        cust = customer(om, "flat_only")
        _flat_line(om, cust)
    created = utc(2026, 3, 1, 8, 30)
    with at(created):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    assert invoice.collection_at is None
    assert invoice.draft_until == utc(2026, 3, 2, 8, 30)
    assert invoice.due_at == utc(2026, 4, 1, 8, 30)


def test_draft_until_keeps_counting_from_creation_when_the_draft_is_recalculated(om):
    # CalculateDraftUntil runs on every recalculation with max(collectionAt, createdAt): a later edit of the draft
    # does not push its draft period back
    with at(START):
        default_workflow(om, autoAdvance=True, draftPeriod="P3D", dueAfter="P10D")
        cust = customer(om, "recalc")
        _flat_line(om, cust)
    with at(utc(2026, 3, 1, 6)):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    assert invoice.draft_until == utc(2026, 3, 4, 6)
    with at(utc(2026, 3, 2, 12)):
        edited = om.invoice.update_invoice(invoice.id, {
            "description": "edited",
            "supplier": invoice.supplier.as_dict(), "customer": invoice.customer.as_dict(),
            "workflow": {"workflow": {"invoicing": {"autoAdvance": True, "draftPeriod": "P3D", "dueAfter": "P10D"},
                                      "payment": {"collectionMethod": "charge_automatically"}}},
            "lines": [line.as_dict() for line in invoice.lines],
        })
    assert edited.draft_until == utc(2026, 3, 4, 6)
    assert edited.due_at == utc(2026, 3, 14, 6)


def test_manual_approval_is_due_after_the_issue_time_cut_to_the_second(om):
    with at(START):
        default_workflow(om, autoAdvance=False, dueAfter="P14D")
        cust = customer(om, "manual")
        _flat_line(om, cust)
    with at(utc(2026, 3, 1, 9)):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    assert invoice.status_details.extended_status == "draft.manual_approval_needed"
    assert (invoice.draft_until, invoice.due_at) == (None, None)
    approved_at = utc(2026, 3, 2, 15, 20, 30) + dt.timedelta(microseconds=700_000)
    with at(approved_at):
        issued = om.invoice.approve_action(invoice.id)
    # dueAt = issuedAt + P14D, truncated to the second
    assert issued.due_at == utc(2026, 3, 16, 15, 20, 30)


def test_progressive_billing_splits_a_usage_line_at_as_of_cut_to_the_second(om):
    # ResolveBillablePeriod truncates asOf to streaming.MinimumWindowSizeDuration (one second): the billed part is
    # [START, asOf) at whole seconds, the rest stays pending
    with at(START):
        default_workflow(om, progressiveBilling=True)
        metered_feature(om, "calls")
        cust = customer(om, "progressive")
        _usage_line(om, cust)
    usage(om, cust.key, "calls", utc(2026, 3, 10), 7)
    usage(om, cust.key, "calls", utc(2026, 3, 16, 12, 30, 44), 2)
    usage(om, cust.key, "calls", utc(2026, 3, 16, 12, 30, 46), 100)
    as_of = utc(2026, 3, 16, 12, 30, 45) + dt.timedelta(microseconds=500_000)
    with at(as_of + dt.timedelta(minutes=5)):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id, "asOf": iso(as_of)})
    [line] = invoice.lines
    assert (line.period.from_property, line.period.to) == (START, utc(2026, 3, 16, 12, 30, 45))
    # 7 + 2 before 12:30:45; the 100 at 12:30:46 stays for the rest of the period
    assert (Decimal(line.quantity), Decimal(invoice.totals.total)) == (9, 9)


def test_progressive_billing_without_as_of_splits_at_the_current_second(om):
    with at(START):
        default_workflow(om, progressiveBilling=True)
        metered_feature(om, "calls")
        cust = customer(om, "progressive_now")
        _usage_line(om, cust)
    usage(om, cust.key, "calls", utc(2026, 3, 10), 3)
    with at(utc(2026, 3, 20, 8, 15, 9) + dt.timedelta(microseconds=250_000)):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    [line] = invoice.lines
    assert line.period.to == utc(2026, 3, 20, 8, 15, 9)
    assert Decimal(line.quantity) == 3


def test_pending_line_periods_and_invoice_at_are_cut_to_the_second(om):
    # GatheringLineBase.NormalizeValues (and the simulate / update mappings) truncate the service period and
    # invoiceAt to streaming.MinimumWindowSizeDuration (one second)
    with at(START):
        metered_feature(om, "calls")
        cust = customer(om, "subsecond")
        created = om.customer_invoice.create_pending_invoice_line(cust.id, {"currency": "USD", "lines": [
            {"name": "Calls", "period": {"from": "2026-03-01T00:00:00.750Z", "to": "2026-03-31T23:59:59.999Z"},
             "invoiceAt": "2026-03-31T23:59:59.999Z",
             "rateCard": {"featureKey": "calls", "price": {"type": "unit", "amount": "1"}}}]})
    [line] = created.lines
    assert (line.period.from_property, line.period.to, line.invoice_at) == (
        START, utc(2026, 3, 31, 23, 59, 59), utc(2026, 3, 31, 23, 59, 59))
    with at(START):
        simulated = om.customer_invoice.simulate_invoice(cust.id, {"currency": "USD", "lines": [
            {"name": "Calls", "period": {"from": "2026-03-01T00:00:00.750Z", "to": "2026-03-02T00:00:00.250Z"},
             "invoiceAt": "2026-03-02T00:00:00.250Z", "quantity": "3",
             "rateCard": {"featureKey": "calls", "price": {"type": "unit", "amount": "1"}}}]})
    [line] = simulated.lines
    assert (line.period.from_property, line.period.to, line.invoice_at) == (START, utc(2026, 3, 2), utc(2026, 3, 2))
