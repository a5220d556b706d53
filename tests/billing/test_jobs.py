"""Periodic jobs: idempotent, crash-safe (one transaction per customer/invoice), and safe with two workers."""

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection

from billing.models import Invoice, InvoiceEvent, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import invoicing, jobs
from billing.services.invoicing import LineInput
from openmeter_site.core.errors import DomainError
from tests.billing.helpers import FEB, T0, custom_invoicing_app, customer, metered_feature, profile
from tests.factories import ingest

AFTER_CLOSE = FEB + dt.timedelta(hours=1)


def _lines(feature_key: str) -> list[LineInput]:
    return [
        LineInput(name="Fee", period_start=T0, period_end=FEB, invoice_at=T0,
                  price={"type": "flat", "amount": "20", "paymentTerm": "in_advance"}),
        LineInput(name="Tokens", period_start=T0, period_end=FEB, invoice_at=FEB, feature_key=feature_key,
                  price={"type": "unit", "amount": "0.5"}),
    ]


def _setup_customers(n: int, **workflow) -> list:
    if workflow:
        profile(**workflow)
    feature = metered_feature()
    customers = [customer(name=f"Customer {i}", subjects=(f"sub-{i}",)) for i in range(n)]
    for i, c in enumerate(customers):
        ingest([{"subject": f"sub-{i}", "type": "tokens", "time": T0 + dt.timedelta(days=3),
                 "data": {"tokens": 10 * (i + 1)}}])
        invoicing.pending_lines_create(customer_id=c.pk, currency="USD", lines=_lines(feature.key))
    return customers


def _standard_invoices() -> list[Invoice]:
    return list(Invoice.objects.exclude(status=S.GATHERING).order_by("customer__name"))


@pytest.mark.django_db
def test_collect_waits_for_the_grace_period_then_invoices_once():
    customers = _setup_customers(3, autoAdvance=False)
    # the in-advance fee is due at T0 but collection waits T0 + PT1H
    assert jobs.collect_gathering_invoices(at=T0 + dt.timedelta(minutes=30)) == 0
    jobs.collect_gathering_invoices(at=T0 + dt.timedelta(hours=1))
    early = _standard_invoices()
    # fee only (usage is due at the end of the period): 20 each
    assert [str(i.total) for i in early] == ["20.0000000000000000000"] * 3
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)  # a rerun changes nothing
    invoices = _standard_invoices()
    assert len(invoices) == 6
    # usage: customer i used 10 * (i + 1) tokens * 0.5
    usage_totals = sorted(i.total for i in invoices if i.total != 20)
    assert [int(t) for t in usage_totals] == [5, 10, 15]
    assert all(i.status == S.DRAFT_MANUAL_APPROVAL_NEEDED for i in invoices)
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 6  # no line doubled
    assert not Invoice.objects.filter(status=S.GATHERING).exists()
    assert len({c.pk for c in customers}) == 3


@pytest.mark.django_db
def test_collect_crash_halfway_then_rerun_gives_the_same_invoices():
    _setup_customers(3, autoAdvance=False)
    # a run that stops after the first customer (as if the worker died), then a full rerun
    assert jobs.collect_gathering_invoices(at=AFTER_CLOSE, limit=1) == 1
    assert len(_standard_invoices()) == 1
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    invoices = _standard_invoices()
    assert len(invoices) == 3
    # 20 + 10 * (i + 1) * 0.5
    assert sorted(int(i.total) for i in invoices) == [25, 30, 35]


@pytest.mark.django_db
def test_auto_advance_after_the_draft_period():
    _setup_customers(1, draftPeriod="P1D")
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    assert invoice.status == S.DRAFT_WAITING_AUTO_APPROVAL
    assert invoice.draft_until == AFTER_CLOSE + dt.timedelta(days=1)
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(hours=23)) == 0
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1)) == 1
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    # due date: draftUntil + P30D
    assert invoice.due_at == AFTER_CLOSE + dt.timedelta(days=31)
    assert jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=2)) == 0


@pytest.mark.django_db
def test_overdue_after_the_due_date():
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), dueAfter="P7D")
    _setup_customers(1)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    assert invoice.status == S.PAYMENT_PENDING
    assert jobs.mark_overdue_invoices(at=invoice.due_at) == 0  # due_at itself is not yet overdue
    jobs.mark_overdue_invoices(at=invoice.due_at + dt.timedelta(seconds=1))
    invoice.refresh_from_db()
    assert invoice.status == S.OVERDUE
    jobs.mark_overdue_invoices(at=invoice.due_at + dt.timedelta(days=1))
    assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.OVERDUE).count() == 1


def _in_threads(target, n: int = 2) -> list:
    results: list = []
    barrier = threading.Barrier(n)

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except DomainError as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_period_close_runs_at_once_produce_one_result():
    _setup_customers(4, autoAdvance=False)
    _in_threads(lambda: jobs.collect_gathering_invoices(at=AFTER_CLOSE))
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)  # whatever one worker skipped, a later run picks up
    invoices = _standard_invoices()
    assert len(invoices) == 4
    assert InvoiceLine.objects.filter(parent__isnull=True).count() == 8
    # 20 + 10 * (i + 1) * 0.5
    assert sorted(int(i.total) for i in invoices) == [25, 30, 35, 40]


@pytest.mark.django_db(transaction=True)
def test_two_workers_advancing_the_same_invoice_produce_one_result():
    _setup_customers(1, autoAdvance=False)
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    [invoice] = _standard_invoices()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        results = _in_threads(lambda: invoicing.invoice_approve(invoice_id=invoice.pk))
    winners = [r for r in results if isinstance(r, Invoice)]
    assert len(winners) == 1
    assert winners[0].status == S.PAID
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert invoice.number == "OM-SANDBOX-CU0-1"
    assert InvoiceEvent.objects.filter(invoice=invoice, trigger="approve").count() == 1
    assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.PAID).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_auto_advance_jobs_at_once_issue_once():
    _setup_customers(3, draftPeriod="P1D")
    jobs.collect_gathering_invoices(at=AFTER_CLOSE)
    assert all(i.status == S.DRAFT_WAITING_AUTO_APPROVAL for i in _standard_invoices())
    _in_threads(lambda: jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1)))
    jobs.advance_due_invoices(at=AFTER_CLOSE + dt.timedelta(days=1))  # picks up whatever a busy worker skipped
    invoices = _standard_invoices()
    assert all(i.status == S.PAID for i in invoices)
    # gap-free: three numbers, 1..3, whichever worker issued which
    assert sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices) == [1, 2, 3]
    for invoice in invoices:
        assert InvoiceEvent.objects.filter(invoice=invoice, to_status=S.ISSUED).count() == 1
