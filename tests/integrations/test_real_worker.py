"""The Stripe sync retry job through a real Celery worker on Redis, talking to localstripe."""

import datetime as dt
import os
import subprocess
import sys

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

QUEUE = "integrations-tests"


@pytest.mark.django_db(transaction=True)
def test_retry_job_on_a_real_worker_syncs_the_failed_invoice_once(api, settings, localstripe_url):
    # given: Stripe installed, then an invoice whose sync failed while Stripe was down, three minutes ago
    settings.OPENMETER_STRIPE_API_BASE = localstripe_url
    api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{conftest.free_port()}"
    invoice_id = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])["id"]
    assert Invoice.objects.get(pk=invoice_id).status == "draft.sync_failed"
    InvoiceEvent.objects.filter(invoice_id=invoice_id).update(created_at=timezone.now() - dt.timedelta(minutes=3))
    env = {**os.environ, "DATABASE_URL": conftest.test_database_url(), "DJANGO_SETTINGS_MODULE": "openmeter_site.settings",
           "CELERY_TASK_ALWAYS_EAGER": "0", "OPENMETER_STRIPE_API_BASE": localstripe_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "openmeter_site", "worker", "--pool", "solo", "-Q", QUEUE,
         "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=conftest.ROOT, env=env,
    )
    try:
        # when: the job runs twice (Stripe is back)
        first = app.send_task("integrations.stripe_sync_retry_due", queue=QUEUE).get(timeout=90)
        second = app.send_task("integrations.stripe_sync_retry_due", queue=QUEUE).get(timeout=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    # then: retried once, issued through Stripe
    assert (first, second) == (1, 0)
    assert Invoice.objects.get(pk=invoice_id).status == "payment_processing.pending"
    assert StripeInvoiceSync.objects.get(invoice_id=invoice_id).finalize_state == "done"
