"""Apps in the back office, in headless Chromium: an invoice whose issuing failed while Stripe was unreachable is
retried from its page once Stripe is back (a server wired to localstripe); an app is installed from the marketplace
and set up on its page."""

from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from billing.models import App, Invoice
from billing.models import InvoiceStatus as S
from billing.services import actions
from tests.billing.helpers import flat_line, profile
from tests.conftest import free_port, gunicorn_server, operator_logged_in, wait_for_no_connections
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_stripe_invoicing import issue_invoice, run_remote_syncs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def back_office_on_localstripe(django_db_setup, django_db_blocker, localstripe_url) -> Iterator[str]:
    """The back office (test settings: the operator's password hasher) on a server that calls localstripe."""
    with gunicorn_server(OPENMETER_STRIPE_API_BASE=localstripe_url) as url:
        yield url
    wait_for_no_connections(django_settings.DATABASES["default"]["NAME"], django_db_blocker)


@pytest.fixture
def stripe_operator_page(browser, back_office_on_localstripe, django_user_model) -> Iterator[Page]:
    yield from operator_logged_in(browser, back_office_on_localstripe, django_user_model)


@pytest.fixture
def stripe_app(api, stripe_api) -> App:
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey",
                        {"apiKey": TEST_KEY, "createBillingProfile": False}, format="json")
    assert response.status_code == 200, response.content
    return App.objects.get(pk=response.json()["app"]["id"])


def test_operator_retries_an_invoice_whose_issuing_failed_while_stripe_was_down(stripe_operator_page, api, stripe_app,
                                                                                  settings):
    page = stripe_operator_page
    profile(app=stripe_app, autoAdvance=False)
    draft = issue_invoice(api, CustomerFactory(name="Soylent Corp"), [flat_line("Platform fee", "49.5")])
    assert draft["statusDetails"]["extendedStatus"] == "draft.manual_approval_needed"  # synced to Stripe as a draft
    # approved while Stripe cannot be reached: finalizing the Stripe invoice fails
    reachable = settings.OPENMETER_STRIPE_API_BASE
    settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    actions.invoice_approve(invoice_id=draft["id"])
    run_remote_syncs()
    settings.OPENMETER_STRIPE_API_BASE = reachable
    invoice = Invoice.objects.get(pk=draft["id"])
    assert invoice.status == S.ISSUING_FAILED

    page.goto(f"/admin/billing/invoice/{invoice.pk}/change/")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("issuing: failed")
    expect(page.locator(".om-problems")).to_contain_text("stripe: finalize failed")
    page.get_by_role("link", name="Retry").click()
    expect(page.locator("#content")).to_contain_text("Run the failed step again")
    page.locator("input[type=submit][value='Retry']").click()
    # the retry commits the invoice waiting for Stripe; the sync it kicks finalizes the Stripe invoice
    expect(page.locator(".messagelist")).to_contain_text(f"{invoice.number}: retried;")
    page.reload()
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("payment processing: pending")
    expect(page.locator(".om-total-value")).to_have_text("$49.50")
    expect(page.locator(".om-invoice-total")).to_contain_text("invoicing: in_")
    expect(page.locator(".object-tools")).not_to_contain_text("Retry")
    expect(page.locator(".om-problems")).to_have_count(0)  # the failure is gone with its cause
    assert Invoice.objects.get(pk=invoice.pk).status == S.PAYMENT_PENDING


def test_operator_installs_an_app_from_the_marketplace_and_sets_its_hooks(operator_page):
    page = operator_page
    page.goto("/admin/billing/app/")
    page.get_by_role("link", name="Add app").click()
    expect(page.locator(".field-api_key")).to_be_hidden()  # only Stripe is installed with a key
    page.get_by_label("Stripe: Send invoices, calculate tax and collect payments.").check()
    expect(page.locator(".field-api_key")).to_be_visible()
    page.get_by_label("Custom Invoicing: Custom Invoicing can be used to interface").check()
    page.fill("input[name=name]", "Acme ERP")
    page.locator("input[type=submit][value='Install']").click()
    expect(page.locator(".messagelist")).to_contain_text("Acme ERP is installed.")
    page.check("input[name=enable_issuing_sync_hook]")
    page.fill("textarea[name=description]", "Invoices are numbered and sent by the ERP")
    page.locator("input[name=metadata__key]").first.fill("owner")
    page.locator("input[name=metadata__value]").first.fill("finance")
    page.locator("input[type=submit][name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    app = App.objects.get(name="Acme ERP")
    assert (app.type, app.enable_draft_sync_hook, app.enable_issuing_sync_hook) == ("custom_invoicing", False, True)
    assert (app.description, app.metadata) == ("Invoices are numbered and sent by the ERP", {"owner": "finance"})
