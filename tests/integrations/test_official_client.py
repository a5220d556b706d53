"""The main Apps/Stripe flows through the official Python client, against gunicorn and localstripe."""

import time

import pytest
import requests
from corehttp.exceptions import HttpResponseError
from openmeter import Client

from billing.models import App, Invoice
from integrations.models import StripeInvoiceSync
from tests.billing.helpers import flat_line
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_customer_app_data import new_card, new_stripe_customer, stripe_post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def om(stripe_live_server_url, api_key) -> Client:
    return Client(endpoint=stripe_live_server_url, token=api_key)


def test_install_stripe_list_get_update_uninstall(om, localstripe_url):
    listings = om.marketplace.list()
    assert {item["type"] for item in listings["items"]} == {"stripe", "sandbox", "custom_invoicing"}

    installed = om.marketplace.install_with_api_key(
        "stripe", {"apiKey": TEST_KEY, "name": "Stripe (test)", "createBillingProfile": False}
    )
    app = installed["app"]
    assert app["type"] == "stripe"
    assert app["maskedAPIKey"] == "sk_test_***7dc"
    # the live server knows its public URL, so the webhook endpoint was registered with localstripe
    assert App.objects.get(pk=app["id"]).stripe_webhook_endpoint_id.startswith("we_")

    assert [a["id"] for a in om.apps.list()["items"]] == [app["id"]]
    assert om.apps.get(app["id"])["stripeAccountId"] == "acct_localstripe"

    updated = om.apps.update(app["id"], {"type": "stripe", "name": "Renamed"})
    assert updated["name"] == "Renamed"
    om.app_stripe.update_stripe_api_key(app["id"], {"secretAPIKey": "sk_test_" + "rotated0123456789abc"})
    assert om.apps.get(app["id"])["maskedAPIKey"] == "sk_test_***abc"

    om.apps.uninstall(app["id"])
    with pytest.raises(HttpResponseError) as missing:
        om.apps.get(app["id"])
    assert missing.value.status_code == 404


def test_customer_stripe_data_and_sessions(om, localstripe_url):
    om.marketplace.install_with_api_key("stripe", {"apiKey": TEST_KEY})
    customer = CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(localstripe_url)
    card = new_card(localstripe_url, stripe_customer_id)

    upserted = om.customer_stripe.upsert(
        "acme", {"stripeCustomerId": stripe_customer_id, "stripeDefaultPaymentMethodId": card}
    )
    got = om.customer_stripe.get(customer.id)
    assert (got.stripe_customer_id, got.stripe_default_payment_method_id) == (stripe_customer_id, card)
    assert upserted.id == got.id

    listed = om.customer_apps.list_app_data("acme", type="stripe")
    assert [item["type"] for item in listed["items"]] == ["stripe"]

    portal = om.customer_stripe.create_portal_session("acme", {"returnUrl": "https://example.com"})
    assert portal.url.startswith("https://billing.stripe.com/")

    checkout = om.app_stripe.create_checkout_session(
        {"customer": {"key": "acme"}, "options": {"successURL": "https://example.com/ok"}}
    )
    assert checkout.customer_id == customer.id
    assert checkout.stripe_customer_id == stripe_customer_id
    assert checkout.mode == "setup"


def test_sandbox_install_and_customer_app_data(om):
    sandbox = om.marketplace.install("sandbox", {})
    CustomerFactory(key="acme")

    upserted = om.customer_apps.upsert_app_data("acme", [{"type": "sandbox"}])
    assert [item["id"] for item in upserted] == [sandbox["app"]["id"]]

    om.customer_apps.delete_app_data("acme", sandbox["app"]["id"])


def test_issue_to_stripe_then_stripe_pays_and_its_webhook_marks_our_invoice_paid(om, api_key, localstripe_url,
                                                                                  stripe_live_server_url):
    # given: Stripe installed (it becomes the default billing profile) and a customer with a card in Stripe
    om.marketplace.install_with_api_key("stripe", {"apiKey": TEST_KEY})
    customer = CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(localstripe_url)
    card = new_card(localstripe_url, stripe_customer_id)
    stripe_post(localstripe_url, f"/v1/customers/{stripe_customer_id}",
                {"invoice_settings[default_payment_method]": card})
    om.customer_stripe.upsert("acme", {"stripeCustomerId": stripe_customer_id, "stripeDefaultPaymentMethodId": card})
    headers = {"Authorization": f"Bearer {api_key}"}

    # when: we invoice 10.00 + 2.50 USD
    created = requests.post(
        f"{stripe_live_server_url}/api/v1/billing/customers/{customer.pk}/invoices/pending-lines",
        json={"currency": "USD", "lines": [flat_line("Platform fee", "10"), flat_line("Support", "2.50")]},
        headers=headers, timeout=30,
    )
    assert created.status_code == 201, created.text
    invoiced = requests.post(f"{stripe_live_server_url}/api/v1/billing/invoices/invoice",
                             json={"customerId": customer.pk}, headers=headers, timeout=30)
    assert invoiced.status_code == 201, invoiced.text
    invoice = invoiced.json()[0]
    assert invoice["status"] == "payment_processing"

    # then: Stripe has the finalized invoice for 1250 cents on the customer we gave
    sync = StripeInvoiceSync.objects.get(invoice_id=invoice["id"])
    stripe_invoice = requests.get(f"{localstripe_url}/v1/invoices/{sync.stripe_invoice_id}",
                                  headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5).json()
    assert (stripe_invoice["status"], stripe_invoice["total"]) == ("open", 1250)
    assert stripe_invoice["customer"] == stripe_customer_id

    # when: Stripe collects the payment, it sends invoice.paid (signed) to our webhook endpoint
    stripe_post(localstripe_url, f"/v1/invoices/{sync.stripe_invoice_id}/pay", {})

    # then: our invoice is paid (the delivery is asynchronous: wait for it, up to 20 s)
    deadline = time.monotonic() + 20
    while Invoice.objects.get(pk=invoice["id"]).status != "paid" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Invoice.objects.get(pk=invoice["id"]).status == "paid"
    assert requests.get(f"{stripe_live_server_url}/api/v1/billing/invoices/{invoice['id']}", headers=headers,
                        timeout=10).json()["status"] == "paid"
