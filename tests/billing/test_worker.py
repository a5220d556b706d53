"""The invoice lifecycle driven by a real Celery worker on Redis (not eager): period close, issuing through the
invoicing app, overdue, then payment news."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import actions, gathering
from billing.services.gathering import LineInput
from openmeter_site.celery import app
from tests.billing.helpers import custom_invoicing_app, customer, metered_feature, profile
from tests.factories import flat_fee_card, ingest, plan_body


@pytest.fixture
def worker(transactional_db, start_celery_worker):
    return start_celery_worker()


def _run(task: str, **kwargs) -> int:
    # send_task always goes through the broker (test settings make .delay() eager)
    return app.send_task(task, kwargs=kwargs).get(timeout=60)  # the worker's queue is the default while it runs


def test_lifecycle_with_a_real_worker(worker):
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), dueAfter="PT2S")
    feature = metered_feature()
    start = (timezone.now() - dt.timedelta(days=31)).replace(microsecond=0)
    end = start + dt.timedelta(days=30)
    customers = [customer(name=f"Worker {n}", subjects=(f"w{n}",)) for n in range(2)]
    for n, c in enumerate(customers):
        ingest([{"subject": f"w{n}", "type": "tokens", "time": start + dt.timedelta(days=1), "data": {"tokens": 100}}])
        gathering.pending_lines_create(customer_id=c.pk, currency="USD", lines=[
            LineInput(name="Tokens", period_start=start, period_end=end, invoice_at=end, feature_key=feature.key,
                      price={"type": "unit", "amount": "0.25"})])

    assert _run("billing.collect_gathering_invoices") == 2
    invoices = list(Invoice.objects.exclude(status=S.GATHERING))
    assert len(invoices) == 2
    # 100 * 0.25 = 25 each, issued by the custom invoicing app (hooks off) and waiting for payment
    assert all(i.status == S.PAYMENT_PENDING and i.total == 25 for i in invoices)
    assert _run("billing.collect_gathering_invoices") == 0  # nothing doubled

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and timezone.now() <= max(i.due_at for i in invoices):
        time.sleep(0.2)  # wait for the 2 s due date to pass; the assertion below is on state, not time
    _run("billing.mark_overdue_invoices")
    assert set(Invoice.objects.exclude(status=S.GATHERING).values_list("status", flat=True)) == {S.OVERDUE}

    for invoice in invoices:
        actions.invoice_trigger_payment(invoice_id=invoice.pk, trigger="paid")
    assert set(Invoice.objects.exclude(status=S.GATHERING).values_list("status", flat=True)) == {S.PAID}


def test_subscription_sync_task_with_a_real_worker(worker, api):
    with_fee = plan_body("solo", phases=[{"key": "main", "name": "Main", "duration": None,
                                          "rateCards": [flat_fee_card(amount="12")]}])
    plan = api.post("/api/v1/plans", with_fee, format="json").json()
    assert api.post(f"/api/v1/plans/{plan['id']}/publish").status_code == 200
    cust = customer(name="Worker Sync")
    sub = api.post("/api/v1/subscriptions", {"plan": {"key": "solo"}, "customerKey": cust.key}, format="json").json()
    # the commit kicks the outbox relay on the worker, whose billing handler puts the fee on the gathering invoice
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not InvoiceLine.objects.filter(subscription_id=sub["id"]).exists():
        time.sleep(0.2)  # waiting for the worker; the assertion below is on state, not time
    assert InvoiceLine.objects.get(subscription_id=sub["id"]).price["amount"] == "12"
    # a lost line is restored by the periodic sync, run twice (idempotent)
    InvoiceLine.objects.all().delete()
    for _ in range(2):
        _run("billing.sync_subscriptions")
    [line] = InvoiceLine.objects.filter(subscription_id=sub["id"], deleted_at__isnull=True)
    started = dt.datetime.fromisoformat(sub["activeFrom"]).replace(microsecond=0)  # lines are cut to whole seconds
    assert (line.price["amount"], line.period_start) == ("12", started)


def test_period_close_batches_run_on_two_workers_and_invoice_each_customer_once(transactional_db, start_celery_worker):
    # given 7 customers due for period close and two worker processes
    start_celery_worker(concurrency=2)
    profile(autoAdvance=False)
    feature = metered_feature()
    start = (timezone.now() - dt.timedelta(days=31)).replace(microsecond=0)
    end = start + dt.timedelta(days=30)
    customers = [customer(name=f"Batch {n}", subjects=(f"b{n}",)) for n in range(7)]
    for n, c in enumerate(customers):
        ingest([{"subject": f"b{n}", "type": "tokens", "time": start + dt.timedelta(days=1), "data": {"tokens": n + 1}}])
        gathering.pending_lines_create(customer_id=c.pk, currency="USD", lines=[
            LineInput(name="Tokens", period_start=start, period_end=end, invoice_at=end, feature_key=feature.key,
                      price={"type": "unit", "amount": "2"})])
    # when the scheduled job runs in batches of 2: it closes the first and sends three to the workers
    assert _run("billing.collect_gathering_invoices", batch_size=2) == 2
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Invoice.objects.exclude(status=S.GATHERING).count() < 7:
        time.sleep(0.2)  # waiting for the workers; the assertions below are on state, not time
    # then each customer has one invoice, (n + 1) tokens * 2, numbered 1..7 whichever worker took which batch
    invoices = sorted(Invoice.objects.exclude(status=S.GATHERING), key=lambda i: i.customer.name)
    assert [(i.customer_id, int(i.total)) for i in invoices] == [(c.pk, 2 * (n + 1)) for n, c in enumerate(customers)]
    assert sorted(int(i.number.rsplit("-", 1)[1]) for i in invoices) == [1, 2, 3, 4, 5, 6, 7]
    assert InvoiceLine.objects.filter(parent__isnull=True).exclude(invoice__status=S.GATHERING).count() == 7
