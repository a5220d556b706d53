"""Invoice sync: our invoice issued through the Stripe app becomes a finalized Stripe invoice (localstripe), and
Stripe's webhooks move it to paid, payment failed or uncollectible.

Stripe is a remote app: an invoice action commits with the invoice waiting in `draft.syncing` or `issuing.syncing`,
and `billing.sync_remote_apps` (kicked after the commit; here run as the worker would) makes the calls."""

import datetime as dt

import pytest
import requests
import time_machine
from django.urls import reverse

from billing.models import App, Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import jobs
from billing.services.remote_sync import sync_remote_apps
from integrations.models import StripeInvoiceSync
from integrations.stripe.invoicing import StripeInvoicingBackend
from integrations.stripe.retries import retry_delay, stripe_sync_retry_due
from tests.billing.helpers import FEB, flat_line
from tests.conftest import free_port
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_stripe_webhook import event, post, sign

pytestmark = pytest.mark.django_db


def stripe_get(base: str, path: str) -> dict:
    return requests.get(f"{base}{path}", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5).json()


@pytest.fixture
def stripe_app(api, stripe_api) -> App:
    """Installed with the default `createBillingProfile`: the default billing profile now invoices through Stripe."""
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    assert response.status_code == 200, response.content
    return App.objects.get(pk=response.json()["app"]["id"])


def run_remote_syncs() -> int:
    """What a worker does after the kicks: each run makes the due calls (the draft's sync, then its finalize)."""
    runs = 0
    while sync_remote_apps():
        runs += 1
    return runs


def issue_invoice(api, customer, lines: list[dict]) -> dict:
    created = api.post(
        f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines", {"currency": "USD", "lines": lines},
        format="json",
    )
    assert created.status_code == 201, created.content
    invoiced = api.post("/api/v1/billing/invoices/invoice", {"customerId": customer.pk}, format="json")
    assert invoiced.status_code == 201, invoiced.content
    [invoice] = invoiced.json()
    run_remote_syncs()
    return api.get(f"/api/v1/billing/invoices/{invoice['id']}").json()


def test_issued_invoice_is_a_finalized_stripe_invoice_to_the_cent(api, stripe_app, stripe_api):
    customer = CustomerFactory(name="Acme Corp", primary_email="ap@acme.test")

    created = api.post(f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines",
                       {"currency": "USD", "lines": [flat_line("Platform fee", "10.005"), flat_line("Support", "2.50")]},
                       format="json")
    assert created.status_code == 201, created.content
    [invoice] = api.post("/api/v1/billing/invoices/invoice", {"customerId": customer.pk}, format="json").json()
    # the invoice is committed waiting for Stripe, which is called after the commit, outside the transaction
    assert invoice["statusDetails"]["extendedStatus"] == "draft.syncing"
    assert not StripeInvoiceSync.objects.filter(invoice_id=invoice["id"]).exists()
    assert run_remote_syncs() == 2  # the draft's sync, then (auto-advanced) its finalize
    invoice = api.get(f"/api/v1/billing/invoices/{invoice['id']}").json()

    # 10.005 rounds half up to 10.01; 10.01 + 2.50 = 12.51 USD = 1251 cents
    assert invoice["status"] == "payment_processing", invoice["statusDetails"]
    assert invoice["totals"]["total"] == "12.51"
    sync = StripeInvoiceSync.objects.get(invoice_id=invoice["id"])
    stripe_invoice = stripe_get(stripe_api, f"/v1/invoices/{sync.stripe_invoice_id}")
    assert stripe_invoice["status"] == "open"
    assert stripe_invoice["total"] == 1251
    assert stripe_invoice["currency"] == "usd"
    assert sorted(line["amount"] for line in stripe_invoice["lines"]["data"]) == [250, 1001]
    assert stripe_invoice["metadata"]["om_invoice_id"] == invoice["id"]
    assert invoice["number"] == stripe_invoice["number"]
    stripe_customer = stripe_get(stripe_api, f"/v1/customers/{stripe_invoice['customer']}")
    assert (stripe_customer["name"], stripe_customer["email"]) == ("Acme Corp", "ap@acme.test")
    line_ids = set(InvoiceLine.objects.filter(invoice_id=invoice["id"], parent__isnull=True).values_list("pk", flat=True))
    assert set(sync.line_items) == line_ids


def test_period_close_syncs_each_draft_to_stripe(api, stripe_app, stripe_api):
    # given two customers with a pending fee, billed through Stripe (a remote app: synced once saved)
    customers = [CustomerFactory(name=f"Stripe Customer {i}") for i in range(2)]
    for i, customer in enumerate(customers):
        created = api.post(f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines",
                           {"currency": "USD", "lines": [flat_line("Platform fee", f"1{i}.50")]}, format="json")
        assert created.status_code == 201, created.content
    # when the period closes, both in one chunk, and the remote syncs it asked for run
    jobs.collect_gathering_invoices(at=FEB + dt.timedelta(hours=1))
    assert set(Invoice.objects.values_list("status", flat=True)) == {S.DRAFT_SYNCING}
    assert StripeInvoiceSync.objects.count() == 0  # no Stripe call inside the period-close transaction
    assert run_remote_syncs() == 2  # drafts synced, then finalized
    # then each invoice is issued as its own Stripe invoice: 10.50 and 11.50 USD
    for customer, cents in zip(customers, [1050, 1150], strict=True):
        invoice = Invoice.objects.get(customer=customer)
        assert invoice.status == S.PAYMENT_PENDING
        sync = StripeInvoiceSync.objects.get(invoice_id=invoice.pk)
        assert stripe_get(stripe_api, f"/v1/invoices/{sync.stripe_invoice_id}")["total"] == cents


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "expected"),
    [
        ("invoice.paid", "paid", "paid"),
        ("invoice.payment_failed", "open", "payment_processing.failed"),
        ("invoice.marked_uncollectible", "uncollectible", "uncollectible"),
    ],
)
def test_stripe_webhooks_move_our_invoice(client, api, stripe_app, stripe_api, event_type, stripe_status, expected):
    invoice = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])
    stripe_invoice_id = StripeInvoiceSync.objects.get(invoice_id=invoice["id"]).stripe_invoice_id
    payload = event(event_type, {"id": stripe_invoice_id, "object": "invoice", "status": stripe_status, "metadata": {}})

    response = post(client, stripe_app.id, payload, sign(payload, stripe_app.webhook_secret))

    assert response.status_code == 200, response.content
    assert response.json()["message"].startswith(f"invoice {invoice['id']}")
    assert Invoice.objects.get(pk=invoice["id"]).status == expected


def test_a_late_payment_failed_after_paid_is_acknowledged_and_ignored(client, api, stripe_app):
    invoice = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])
    stripe_invoice_id = StripeInvoiceSync.objects.get(invoice_id=invoice["id"]).stripe_invoice_id
    paid = event("invoice.paid", {"id": stripe_invoice_id, "status": "paid"}, event_id="evt_paid")
    failed = event("invoice.payment_failed", {"id": stripe_invoice_id, "status": "open"}, event_id="evt_failed")

    post(client, stripe_app.id, paid, sign(paid, stripe_app.webhook_secret))
    response = post(client, stripe_app.id, failed, sign(failed, stripe_app.webhook_secret))

    assert response.status_code == 200
    assert "not applied" in response.json()["message"]
    assert Invoice.objects.get(pk=invoice["id"]).status == "paid"


def test_an_event_the_stripe_status_does_not_confirm_is_ignored(client, api, stripe_app):
    invoice = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])
    stripe_invoice_id = StripeInvoiceSync.objects.get(invoice_id=invoice["id"]).stripe_invoice_id
    payload = event("invoice.paid", {"id": stripe_invoice_id, "status": "open"})

    response = post(client, stripe_app.id, payload, sign(payload, stripe_app.webhook_secret))

    assert response.json()["message"] == "ignoring invoice.paid: the Stripe invoice is open"
    assert Invoice.objects.get(pk=invoice["id"]).status == "payment_processing.pending"


def stripe_invoices_of(base: str, stripe_customer_id: str) -> list[dict]:
    return stripe_get(base, f"/v1/invoices?customer={stripe_customer_id}&limit=100")["data"]


def draft_invoice(api, customer, lines: list[dict]) -> Invoice:
    """An invoice that stops in draft (manual approval), so the test drives the backend itself."""
    from billing.models import BillingProfile

    BillingProfile.objects.filter(is_default=True).update(
        workflow={**BillingProfile.objects.get(is_default=True).workflow,
                  "invoicing": {**BillingProfile.objects.get(is_default=True).workflow["invoicing"],
                                "autoAdvance": False}}
    )
    return Invoice.objects.get(pk=issue_invoice(api, customer, lines)["id"])


def test_rerun_after_a_crash_gives_the_same_stripe_invoice(api, stripe_app, stripe_api):
    customer = CustomerFactory()
    invoice = draft_invoice(api, customer, [flat_line("Platform fee", "10"), flat_line("Support", "2.50")])
    backend = StripeInvoicingBackend(stripe_app)
    first = backend.sync_draft(invoice)

    # a crash that lost our record of the calls (the billing transaction rolled back after Stripe answered)
    StripeInvoiceSync.objects.filter(invoice_id=invoice.pk).delete()
    again = backend.sync_draft(invoice)
    finalized = backend.finalize(invoice)
    finalized_again = backend.finalize(invoice)

    assert again.external_id == first.external_id
    assert again.line_external_ids == first.line_external_ids
    stripe_customer_id = StripeInvoiceSync.objects.get(invoice_id=invoice.pk).stripe_customer_id
    [stripe_invoice] = stripe_invoices_of(stripe_api, stripe_customer_id)
    assert stripe_invoice["id"] == first.external_id
    # 10.00 + 2.50 = 1250 cents, each line once
    assert stripe_invoice["total"] == 1250
    assert len(stripe_invoice["lines"]["data"]) == 2
    assert finalized.invoice_number == finalized_again.invoice_number == stripe_invoice["number"]


def test_crash_between_two_lines_then_rerun_creates_each_item_once(api, stripe_app, stripe_api):
    customer = CustomerFactory()
    invoice = draft_invoice(api, customer, [flat_line("Platform fee", "10"), flat_line("Support", "2.50")])
    second_line = invoice.all_lines.filter(parent__isnull=True).order_by("index", "created_at", "id").last()
    backend = StripeInvoicingBackend(stripe_app)
    # the first run got as far as the first line's item, then died (and our progress rolled back)
    InvoiceLine.objects.filter(pk=second_line.pk).update(deleted_at=invoice.created_at)
    backend.sync_draft(invoice)
    StripeInvoiceSync.objects.filter(invoice_id=invoice.pk).delete()
    InvoiceLine.objects.filter(pk=second_line.pk).update(deleted_at=None)

    result = backend.sync_draft(invoice)

    stripe_invoice = stripe_get(stripe_api, f"/v1/invoices/{result.external_id}")
    assert sorted(line["amount"] for line in stripe_invoice["lines"]["data"]) == [250, 1000]
    assert stripe_invoice["total"] == 1250


def test_resync_after_an_edit_updates_changed_items_and_removes_deleted_ones(api, stripe_app, stripe_api):
    invoice = draft_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10"), flat_line("Support", "2.50")])
    backend = StripeInvoicingBackend(stripe_app)
    before = backend.sync_draft(invoice)
    fee, support = invoice.all_lines.filter(parent__isnull=True).order_by("index", "created_at", "id")

    InvoiceLine.objects.filter(pk=fee.pk).update(total="12.00")
    InvoiceLine.objects.filter(pk=support.pk).update(deleted_at=invoice.created_at)
    after = backend.sync_draft(invoice)

    assert after.line_external_ids == {fee.pk: before.line_external_ids[fee.pk]}  # updated in place
    stripe_invoice = stripe_get(stripe_api, f"/v1/invoices/{after.external_id}")
    assert [line["amount"] for line in stripe_invoice["lines"]["data"]] == [1200]


def test_a_rolled_back_edit_is_healed_from_stripe(api, stripe_app, stripe_api):
    invoice = draft_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10"), flat_line("Support", "2.50")])
    backend = StripeInvoicingBackend(stripe_app)
    backend.sync_draft(invoice)
    support = invoice.all_lines.filter(parent__isnull=True).order_by("index", "created_at", "id").last()
    recorded = dict(StripeInvoiceSync.objects.get(invoice_id=invoice.pk).line_items)
    # a transaction removed the line and synced (Stripe deleted its item), then rolled back: our rows say the line
    # and its item exist, Stripe no longer has the item
    InvoiceLine.objects.filter(pk=support.pk).update(deleted_at=invoice.created_at)
    backend.sync_draft(invoice)
    InvoiceLine.objects.filter(pk=support.pk).update(deleted_at=None)
    StripeInvoiceSync.objects.filter(invoice_id=invoice.pk).update(line_items=recorded)

    result = backend.finalize(invoice)

    stripe_invoice = stripe_get(stripe_api, f"/v1/invoices/{result.external_id}")
    assert stripe_invoice["status"] == "open"
    assert sorted(line["amount"] for line in stripe_invoice["lines"]["data"]) == [250, 1000]
    assert stripe_invoice["total"] == 1250


def test_deleting_a_draft_deletes_the_stripe_draft(api, stripe_app, stripe_api):
    invoice = draft_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])
    backend = StripeInvoicingBackend(stripe_app)
    stripe_invoice_id = backend.sync_draft(invoice).external_id

    backend.delete(invoice)
    backend.delete(invoice)

    gone = requests.get(f"{stripe_api}/v1/invoices/{stripe_invoice_id}", headers={"Authorization": f"Bearer {TEST_KEY}"},
                        timeout=5)
    assert gone.status_code == 404
    assert StripeInvoiceSync.objects.get(invoice_id=invoice.pk).deleted_in_stripe is True


T_FAIL = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def test_retry_delay_doubles_up_to_six_hours():
    assert [retry_delay(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_delay(20) == dt.timedelta(hours=6)


def test_a_sync_that_failed_while_stripe_was_down_is_retried_with_backoff(api, stripe_app, settings):
    reachable = settings.OPENMETER_STRIPE_API_BASE
    settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # Stripe down
    with time_machine.travel(T_FAIL, tick=False):
        invoice_id = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])["id"]
        failed = Invoice.objects.get(pk=invoice_id)
        assert failed.status == "draft.sync_failed"
        assert [(i["component"], i["severity"]) for i in failed.validation_issues] == [("stripe", "critical")]

        # still down one minute later: the retry fails too, and the next one waits 2 minutes
        with time_machine.travel(T_FAIL + dt.timedelta(seconds=61), tick=False):
            assert stripe_sync_retry_due() == 1
            run_remote_syncs()
        assert Invoice.objects.get(pk=invoice_id).status == "draft.sync_failed"

    settings.OPENMETER_STRIPE_API_BASE = reachable
    with time_machine.travel(T_FAIL + dt.timedelta(seconds=61 + 90), tick=False):
        assert stripe_sync_retry_due() == 0  # 90 s < 2 minutes
    with time_machine.travel(T_FAIL + dt.timedelta(seconds=61 + 121), tick=False):
        assert stripe_sync_retry_due() == 1
        run_remote_syncs()
        assert stripe_sync_retry_due() == 0  # nothing left to retry

    synced = Invoice.objects.get(pk=invoice_id)
    assert synced.status == "payment_processing.pending"
    assert synced.validation_issues == []  # the failure was resolved by the sync that went through
    assert StripeInvoiceSync.objects.get(invoice_id=invoice_id).finalize_state == "done"


def test_admin_retry_action_resyncs_a_failed_invoice(api, stripe_app, settings, client, django_user_model):
    reachable = settings.OPENMETER_STRIPE_API_BASE
    settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # Stripe down
    invoice_id = issue_invoice(api, CustomerFactory(), [flat_line("Platform fee", "10")])["id"]
    # the marker committed before the failed call is kept (the call ran outside any transaction)
    sync = StripeInvoiceSync.objects.get(invoice_id=invoice_id)
    assert sync.draft_state == "started"
    settings.OPENMETER_STRIPE_API_BASE = reachable
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw"))

    response = client.post(
        reverse("admin:integrations_stripeinvoicesync_changelist"),
        {"action": "retry_sync", "_selected_action": [sync.id]},
        follow=True,
    )

    assert "Retried 1 invoice(s)." in response.content.decode()
    run_remote_syncs()
    assert Invoice.objects.get(pk=invoice_id).status == "payment_processing.pending"
