"""The Stripe sync retry job through a real Celery worker on Redis, talking to localstripe."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from billing.models import Invoice, InvoiceEvent
from integrations.models import StripeInvoiceSync
from openmeter_site.celery import app
from tests import conftest
from tests.billing.helpers import flat_line
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_stripe_invoicing import issue_invoice


@pytest.mark.django_db(transaction=True)
def test_retry_job_on_a_real_worker_syncs_the_failed_invoice_once(api, settings, localstripe_url, start_celery_worker):
    # given: Stripe installed, then an invoice whose sync failed while Stripe was down, three minutes ago
    settings.OPENMETER_STRIPE_API_BASE = localstripe_url
    api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{conftest.free_port()}"
    invoice_id = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])["id"]
    assert Invoice.objects.get(pk=invoice_id).status == "draft.sync_failed"
    InvoiceEvent.objects.filter(invoice_id=invoice_id).update(created_at=timezone.now() - dt.timedelta(minutes=3))
    queue = start_celery_worker(env={"OPENMETER_STRIPE_API_BASE": localstripe_url})
    # when: the job runs twice (Stripe is back)
    first = app.send_task("integrations.stripe_sync_retry_due", queue=queue).get(timeout=90)
    second = app.send_task("integrations.stripe_sync_retry_due", queue=queue).get(timeout=90)

    # then: retried once; the retry's commit kicked the remote sync on the worker, which issues it through Stripe
    assert (first, second) == (1, 0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Invoice.objects.get(pk=invoice_id).status != "payment_processing.pending":
        time.sleep(0.2)  # waiting for the worker; the assertions are on state, not time
    assert Invoice.objects.get(pk=invoice_id).status == "payment_processing.pending"
    assert StripeInvoiceSync.objects.get(invoice_id=invoice_id).finalize_state == "done"
