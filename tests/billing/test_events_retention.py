"""Billing tells metering which events it still needs: every event under an invoice that is not issued yet is kept
by the retention job (OPENMETER_EVENTS_RETENTION_DAYS), and dropped once the invoice is issued."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.selectors import usage_needed_since
from metering.postgres import partitions
from metering.postgres.fold import fold_all
from metering.postgres.maintenance import retention_apply
from metering.postgres.partitions import Span
from tests.factories import CustomerFactory, MeterFactory, event_partitions_drop_before, ingest

pytestmark = pytest.mark.django_db

UTC = dt.UTC
MARCH = Span.of_month(dt.date(2026, 3, 1))
LINE_START = dt.datetime(2026, 3, 20, 10, 0, 30, tzinfo=UTC)  # a usage period starting mid-minute in March


def _invoice_with_a_march_line(status: S) -> Invoice:
    from billing.services.profiles import billing_profile_default_ensure

    profile = billing_profile_default_ensure()
    customer = CustomerFactory()
    invoice = Invoice.objects.create(
        customer=customer, billing_profile=profile, status=status, number=f"R-{customer.pk}", currency="USD",
        workflow=profile.workflow, customer_snapshot={"name": customer.name}, tax_app=profile.tax_app,
        invoicing_app=profile.invoicing_app, payment_app=profile.payment_app,
    )
    end = dt.datetime(2026, 4, 20, tzinfo=UTC)
    InvoiceLine.objects.create(invoice=invoice, name="tokens", currency="USD", period_start=LINE_START, period_end=end,
                               invoice_at=end)
    return invoice


def test_usage_is_needed_from_the_earliest_line_of_an_invoice_not_issued():
    assert usage_needed_since() is None
    invoice = _invoice_with_a_march_line(S.GATHERING)
    assert usage_needed_since() == LINE_START
    Invoice.objects.filter(pk=invoice.pk).update(status=S.DRAFT_MANUAL_APPROVAL_NEEDED)
    assert usage_needed_since() == LINE_START
    Invoice.objects.filter(pk=invoice.pk).update(status=S.ISSUING_SYNCING)
    assert usage_needed_since() == LINE_START
    Invoice.objects.filter(pk=invoice.pk).update(status=S.ISSUED)
    assert usage_needed_since() is None


def test_retention_keeps_march_until_its_invoice_is_issued(settings):
    # given March's events folded, a 40-day retention long past, and a draft invoice whose line starts in March
    settings.OPENMETER_EVENTS_RETENTION_DAYS = 40
    MeterFactory(aggregation="SUM", group_by={})
    event_partitions_drop_before(dt.date(2026, 4, 1))
    with time_machine.travel(LINE_START):  # so March is a partition of its own
        ingest([{"subject": "s", "time": LINE_START + dt.timedelta(seconds=10), "data": {"tokens": 3}}])
    fold_all()
    invoice = _invoice_with_a_march_line(S.DRAFT_WAITING_AUTO_APPROVAL)
    at = dt.datetime(2026, 9, 1, tzinfo=UTC)
    # then March stays while the invoice is a draft, and goes once it is issued
    assert retention_apply(at=at) == 0
    assert MARCH in partitions.partitions()
    Invoice.objects.filter(pk=invoice.pk).update(status=S.ISSUED)
    assert retention_apply(at=at) == 1
    assert MARCH not in partitions.partitions()


def test_a_progressively_billed_line_needs_the_usage_of_its_whole_split_group():
    # given a gathering line for April whose split group began mid-minute in March (its March usage prices it)
    invoice = _invoice_with_a_march_line(S.GATHERING)
    InvoiceLine.objects.filter(invoice=invoice).update(
        period_start=dt.datetime(2026, 4, 1, tzinfo=UTC), split_group_start=LINE_START,
        split_group_end=dt.datetime(2026, 4, 20, tzinfo=UTC))
    # then the usage is needed from the split group's start
    assert usage_needed_since() == LINE_START
