"""Crash tests of the Stripe sync: a real Celery worker is killed (SIGKILL) between the intent and the result, and
a rerun reaches the same end state as an uninterrupted run: one Stripe invoice with each line once, finalized,
its number ours.

Three commits make a remote sync (`billing.services.remote_sync`): the intent (the invoice waits in a syncing
state), the calls to Stripe (outside any transaction, each with an idempotency key; the app's markers commit as
they go), the result. The worker is killed
- after Stripe answered every call of the draft sync, while it waits to commit the result (the test holds the
  customer's lock, so the worker blocks right there);
- while Stripe finalizes the invoice: localstripe finalizes it but holds its answer back, so the worker never
  learns the number.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import requests
from django.conf import settings as django_settings

from billing.models import Invoice
from billing.models import InvoiceStatus as S
from integrations.models import CustomerAppData, StripeInvoiceSync, SyncState
from openmeter_site.celery import app as celery_app
from tests import conftest
from tests.billing.helpers import flat_line
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.workers import Workers, db_dsn, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def stripe_get(base: str, path: str) -> dict:
    return requests.get(f"{base}{path}", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10).json()


@pytest.fixture
def setup(api, settings, localstripe_url, django_db_blocker) -> Iterator[Workers]:
    """Stripe installed as the default profile's apps; this test's tasks go to its own queue (not run in-process)."""
    settings.OPENMETER_STRIPE_API_BASE = localstripe_url
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    assert response.status_code == 200, response.content
    workers = Workers({"OPENMETER_STRIPE_API_BASE": localstripe_url})
    saved = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager
    celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = workers.queue, False
    try:
        yield workers
    finally:
        celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = saved
        requests.post(f"{localstripe_url}/_config/release", timeout=10)
        workers.stop_all()
        conftest.wait_for_no_connections(django_settings.DATABASES["default"]["NAME"], django_db_blocker)


def invoice_now(api, customer) -> str:
    """Two lines, 10.00 + 2.50 USD, invoiced at once: committed waiting for Stripe (the kick waits in the queue)."""
    lines = [flat_line("Platform fee", "10"), flat_line("Support", "2.50")]
    created = api.post(f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines",
                       {"currency": "USD", "lines": lines}, format="json")
    assert created.status_code == 201, created.content
    [invoice] = api.post("/api/v1/billing/invoices/invoice", {"customerId": customer.pk}, format="json").json()
    assert Invoice.objects.get(pk=invoice["id"]).status == S.DRAFT_SYNCING
    assert not StripeInvoiceSync.objects.filter(invoice_id=invoice["id"]).exists()
    return invoice["id"]


@contextmanager
def customer_lock_held(customer_id: str) -> Iterator[None]:
    with psycopg.connect(db_dsn()) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"billing:customer:{customer_id}"])
        yield
        conn.rollback()


def waiting_on_the_lock() -> list[int]:
    with psycopg.connect(db_dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'").fetchall()
    return [pid for (pid,) in rows]


def rerun_until_issued(workers: Workers, invoice_id: str) -> None:
    """A new worker; beat's minute job finds the invoice still waiting and repeats the call (kicks do the rest)."""
    workers.start()
    celery_app.send_task("billing.sync_remote_apps", queue=workers.queue).get(timeout=90)
    wait_for(lambda: Invoice.objects.get(pk=invoice_id).status == S.PAYMENT_PENDING, "the invoice to be issued")


def assert_one_finalized_stripe_invoice(stripe_base: str, invoice_id: str, customer) -> None:
    invoice = Invoice.objects.get(pk=invoice_id)
    sync = StripeInvoiceSync.objects.get(invoice_id=invoice_id)
    assert (sync.draft_state, sync.finalize_state) == (SyncState.DONE, SyncState.DONE)
    [app_data] = CustomerAppData.objects.filter(customer=customer)
    assert app_data.stripe_customer_id == sync.stripe_customer_id
    [stripe_invoice] = stripe_get(stripe_base, f"/v1/invoices?customer={sync.stripe_customer_id}&limit=100")["data"]
    assert stripe_invoice["id"] == sync.stripe_invoice_id
    assert stripe_invoice["status"] == "open"
    # 10.00 + 2.50 = 1250 cents, each line once
    assert sorted(line["amount"] for line in stripe_invoice["lines"]["data"]) == [250, 1000]
    assert stripe_invoice["total"] == 1250
    assert invoice.number == stripe_invoice["number"]
    assert invoice.external_ids["invoicing"] == stripe_invoice["id"]


def test_worker_killed_after_stripe_answered_before_the_result_commit(api, setup, localstripe_url):
    customer = CustomerFactory(name="Crash Before Commit", primary_email="ap@crash-a.test")
    invoice_id = invoice_now(api, customer)
    with customer_lock_held(customer.pk):
        worker = setup.start()
        # the worker made every call of the draft sync (its markers committed) while the test held the customer's
        # lock, so no Stripe call runs under it; now it waits for the lock to commit the result
        wait_for(waiting_on_the_lock, "the worker to wait for the customer lock")
        sync = StripeInvoiceSync.objects.get(invoice_id=invoice_id)
        assert sync.draft_state == SyncState.DONE and sync.stripe_invoice_id
        setup.kill(worker)
    # nothing of the result was committed: the invoice still waits for its draft sync
    invoice = Invoice.objects.get(pk=invoice_id)
    assert (invoice.status, invoice.app_sync_done) == (S.DRAFT_SYNCING, False)

    rerun_until_issued(setup, invoice_id)

    assert_one_finalized_stripe_invoice(localstripe_url, invoice_id, customer)


def test_worker_killed_while_stripe_finalizes(api, setup, localstripe_url):
    customer = CustomerFactory(name="Crash In Finalize", primary_email="ap@crash-b.test")
    requests.post(f"{localstripe_url}/_config/hold", params={"path_suffix": "/finalize"}, timeout=10)
    invoice_id = invoice_now(api, customer)
    worker = setup.start()
    # the draft is synced and committed; Stripe has finalized the invoice, but the worker never gets the answer
    wait_for(lambda: stripe_get(localstripe_url, "/_config/held")["held"], "Stripe's finalize answer to be held")
    setup.kill(worker)
    requests.post(f"{localstripe_url}/_config/release", timeout=10)
    invoice = Invoice.objects.get(pk=invoice_id)
    sync = StripeInvoiceSync.objects.get(invoice_id=invoice_id)
    assert (invoice.status, invoice.app_sync_done) == (S.ISSUING_SYNCING, False)
    assert invoice.number.startswith("DRAFT-")  # Stripe's number never reached us
    assert (sync.finalize_state, sync.stripe_invoice_number) == (SyncState.STARTED, None)
    assert stripe_get(localstripe_url, f"/v1/invoices/{sync.stripe_invoice_id}")["status"] == "open"

    rerun_until_issued(setup, invoice_id)

    # the repeated finalize (same idempotency key) got Stripe's first answer: the number Stripe gave then
    assert_one_finalized_stripe_invoice(localstripe_url, invoice_id, customer)
