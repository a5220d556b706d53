"""The apps in the back office (Stripe on localstripe, custom invoicing, sandbox): installed from the marketplace, edited
on typed forms, keys and secrets replaced and apps uninstalled through the services, customers linked to Stripe
customers; secrets never shown, a refusal is a form error and changes nothing."""

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from billing.models import App
from customers.models import Customer
from integrations.models import AppType, CustomerAppData, StripeWebhookEvent
from tests.billing.helpers import profile
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_customer_app_data import new_card, new_stripe_customer

pytestmark = pytest.mark.django_db

NEW_KEY = "sk_test_" + "AdminRotated000000000xyz"


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", "pw"))
    return client


@pytest.fixture
def stripe_app(api, stripe_api) -> App:
    response = api.post(
        "/api/v1/marketplace/listings/stripe/install/apikey",
        {"apiKey": TEST_KEY, "createBillingProfile": False},
        format="json",
    )
    return App.objects.get(pk=response.json()["app"]["id"])


def change_url(app: App) -> str:
    return reverse("admin:billing_app_change", args=[app.id])


def action_url(app: App, action: str) -> str:
    return reverse("admin:billing_app_do", args=[app.id, action])


def errors_of(response, field: str) -> list[str]:
    return [strip_tags(str(e)) for e in response.context["form"].errors.get(field, [])]


def test_app_pages_show_the_mask_never_the_secret(staff_client, stripe_app):
    changelist = staff_client.get(reverse("admin:billing_app_changelist")).content.decode()
    change = staff_client.get(change_url(stripe_app)).content.decode()
    key_page = staff_client.get(action_url(stripe_app, "stripe_key")).content.decode()

    for page in (changelist, change, key_page):
        assert TEST_KEY not in page
        assert stripe_app.secret_api_key_encrypted not in page
        assert stripe_app.webhook_secret not in page
    assert "sk_test_***7dc" in changelist and "sk_test_***7dc" in change
    # the account links to Stripe's dashboard, in test mode
    assert f'href="https://dashboard.stripe.com/test/" target="_blank" rel="noopener">{stripe_app.stripe_account_id}' \
        in change


def test_the_change_page_saves_name_description_and_metadata_through_the_service(staff_client, stripe_app):
    response = staff_client.post(change_url(stripe_app), {
        "name": "Stripe EU", "description": "Payments of the EU entity",
        "metadata__key": ["team", ""], "metadata__value": ["finance", ""],
    })

    assert response.status_code == 302
    stripe_app.refresh_from_db()
    assert (stripe_app.name, stripe_app.description, stripe_app.metadata) == (
        "Stripe EU", "Payments of the EU entity", {"team": "finance"})
    assert stripe_app.secret_api_key == TEST_KEY  # untouched


def test_a_description_longer_than_the_api_takes_is_a_form_error(staff_client, stripe_app):
    response = staff_client.post(change_url(stripe_app), {"name": "Stripe", "description": "x" * 1025})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["description"] == [
        "Ensure this value has at most 1024 characters (it has 1025)."]
    stripe_app.refresh_from_db()
    assert stripe_app.description is None


def test_custom_invoicing_hooks_are_set_on_its_page_only(staff_client):
    erp = App.objects.create(type=AppType.CUSTOM_INVOICING, name="ERP", enable_draft_sync_hook=True)
    sandbox = App.objects.create(type=AppType.SANDBOX, name="Sandbox")
    assert "enable_issuing_sync_hook" not in staff_client.get(change_url(sandbox)).content.decode()

    staff_client.post(change_url(erp), {"name": "ERP", "enable_issuing_sync_hook": "on"})

    erp.refresh_from_db()
    assert (erp.enable_draft_sync_hook, erp.enable_issuing_sync_hook) == (False, True)


def test_the_key_is_replaced_through_the_service(staff_client, stripe_app):
    response = staff_client.post(action_url(stripe_app, "stripe_key"), {"api_key": NEW_KEY}, follow=True)

    assert "The Stripe key of Stripe is replaced (sk_test_***xyz)." in response.content.decode()
    stripe_app.refresh_from_db()
    assert stripe_app.secret_api_key == NEW_KEY
    assert stripe_app.masked_api_key == "sk_test_***xyz"
    assert NEW_KEY not in response.content.decode()


def test_a_bad_key_is_a_form_error_and_the_old_key_stays(staff_client, stripe_app):
    response = staff_client.post(action_url(stripe_app, "stripe_key"), {"api_key": "not-a-key"})

    assert response.status_code == 200
    assert errors_of(response, "api_key") == [
        "secretAPIKey: a Stripe secret key starts with sk_test_, sk_live_, rk_test_ or rk_live_"]
    assert 'value="not-a-key"' not in response.content.decode()  # a secret field is never filled in again
    stripe_app.refresh_from_db()
    assert stripe_app.secret_api_key == TEST_KEY


def test_a_webhook_secret_registered_by_hand_replaces_the_apps(staff_client, stripe_app):
    secret = "whsec_" + "HandRegistered0123456789"

    refused = staff_client.post(action_url(stripe_app, "webhook_secret"), {"webhook_secret": "nope"})
    staff_client.post(action_url(stripe_app, "webhook_secret"), {"webhook_secret": secret})

    assert errors_of(refused, "webhook_secret") == [
        "webhookSecret: a Stripe webhook signing secret is whsec_ followed by its characters"]
    stripe_app.refresh_from_db()
    assert stripe_app.webhook_secret == secret
    assert secret not in stripe_app.webhook_secret_encrypted
    assert secret not in staff_client.get(change_url(stripe_app)).content.decode()


def test_uninstall_asks_first_and_refuses_an_app_a_billing_profile_uses(staff_client, stripe_app):
    asked = staff_client.post(reverse("admin:billing_app_changelist"),
                              {"action": "uninstall", "_selected_action": [stripe_app.id]})
    assert "Uninstall apps" in asked.content.decode()
    billed = profile(app=stripe_app)

    refused = staff_client.post(action_url(stripe_app, "uninstall"), {}, follow=True)

    assert f"is used by billing profile {billed.pk}" in refused.content.decode()
    stripe_app.refresh_from_db()
    assert stripe_app.deleted_at is None


def test_uninstall_through_the_action(staff_client, stripe_app):
    response = staff_client.post(action_url(stripe_app, "uninstall"), {}, follow=True)

    assert "Stripe is uninstalled." in response.content.decode()
    stripe_app.refresh_from_db()
    assert stripe_app.deleted_at is not None
    page = staff_client.get(change_url(stripe_app)).content.decode()
    assert 'name="_save"' not in page and "Replace Stripe key" not in page  # history now


def test_install_from_the_marketplace(staff_client, stripe_api):
    add = reverse("admin:billing_app_add")
    assert "Custom Invoicing: Custom Invoicing can be used to interface" in staff_client.get(add).content.decode()

    without_key = staff_client.post(add, {"type": "stripe", "name": "Stripe"})
    bad_key = staff_client.post(add, {"type": "stripe", "api_key": "pk_test_123"})
    erp = staff_client.post(add, {"type": "custom_invoicing", "name": "ERP"})
    stripe = staff_client.post(add, {"type": "stripe", "api_key": TEST_KEY, "name": "Stripe US"})

    assert errors_of(without_key, "api_key") == ["Stripe is installed with a secret key."]
    assert errors_of(bad_key, "api_key") == [
        "apiKey: a Stripe secret key starts with sk_test_, sk_live_, rk_test_ or rk_live_"]
    installed = App.objects.filter(deleted_at__isnull=True).order_by("created_at")
    assert [(a.type, a.name, a.masked_api_key) for a in installed] == [
        ("custom_invoicing", "ERP", None), ("stripe", "Stripe US", "sk_test_***7dc")]
    assert erp["Location"] == change_url(installed[0])
    assert stripe["Location"] == change_url(installed[1])


def test_a_customer_is_linked_to_a_stripe_customer_checked_with_stripe(staff_client, stripe_app, stripe_api):
    customer: Customer = CustomerFactory(name="Acme", key="acme")
    stripe_customer = new_stripe_customer(stripe_api)
    card = new_card(stripe_api, stripe_customer)
    add = reverse("admin:integrations_customerappdata_add")

    nobody = staff_client.post(add, {"customer": "nobody", "app": stripe_app.pk, "stripe_customer_id": stripe_customer})
    unknown = staff_client.post(add, {"customer": customer.pk, "app": stripe_app.pk, "stripe_customer_id": "cus_nope"})
    linked = staff_client.post(add, {"customer": customer.key, "app": stripe_app.pk,
                                     "stripe_customer_id": stripe_customer, "payment_method_id": card}, follow=True)

    assert errors_of(nobody, "customer") == ["customer 'nobody' not found"]
    assert "cus_nope" in " ".join(errors_of(unknown, "stripe_customer_id"))
    row = CustomerAppData.objects.get(customer=customer)
    assert (row.stripe_customer_id, row.stripe_default_payment_method_id) == (stripe_customer, card)
    assert f"Acme is paid for by Stripe customer {stripe_customer}." in linked.content.decode()
    assert f'href="https://dashboard.stripe.com/test/customers/{stripe_customer}"' in linked.content.decode()

    staff_client.post(reverse("admin:integrations_customerappdata_do", args=[row.pk, "unlink"]), {})
    assert not CustomerAppData.objects.filter(customer=customer).exists()


def test_webhook_log_is_read_only_with_times_in_the_operators_zone(staff_client, stripe_app):
    event = StripeWebhookEvent.objects.create(app=stripe_app, event_id="evt_1", type="invoice.paid")
    staff_client.cookies["om_tz"] = "Asia/Tokyo"

    page = staff_client.get(reverse("admin:integrations_stripewebhookevent_change", args=[event.id]))
    listing = staff_client.get(reverse("admin:integrations_stripewebhookevent_changelist")).content.decode()

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert " JST</time>" in listing
