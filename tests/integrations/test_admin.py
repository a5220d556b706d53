import pytest
from django.urls import reverse

from billing.models import App
from integrations.models import StripeWebhookEvent
from tests.integrations.conftest import TEST_KEY

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


def test_app_pages_show_the_mask_never_the_secret(staff_client, stripe_app):
    changelist = staff_client.get(reverse("admin:billing_app_changelist")).content.decode()
    change = staff_client.get(change_url(stripe_app)).content.decode()

    for page in (changelist, change):
        assert "sk_test_***7dc" in page
        assert TEST_KEY not in page
        assert stripe_app.secret_api_key_encrypted not in page
        assert stripe_app.webhook_secret not in page


def test_admin_rotates_the_key_through_the_service(staff_client, stripe_app):
    response = staff_client.post(
        change_url(stripe_app),
        {"name": "Stripe", "description": "", "metadata": "{}", "new_secret_api_key": NEW_KEY},
        follow=True,
    )

    assert response.status_code == 200
    stripe_app.refresh_from_db()
    assert stripe_app.secret_api_key == NEW_KEY
    assert stripe_app.masked_api_key == "sk_test_***xyz"
    assert NEW_KEY not in response.content.decode()


def test_admin_rejects_a_bad_key_and_keeps_the_old_one(staff_client, stripe_app):
    response = staff_client.post(
        change_url(stripe_app),
        {"name": "Stripe", "description": "", "metadata": "{}", "new_secret_api_key": "not-a-key"},
        follow=True,
    )

    assert "The Stripe key was not changed" in response.content.decode()
    stripe_app.refresh_from_db()
    assert stripe_app.secret_api_key == TEST_KEY


def test_uninstall_action(staff_client, stripe_app):
    response = staff_client.post(
        reverse("admin:billing_app_changelist"),
        {"action": "uninstall", "_selected_action": [stripe_app.id]},
        follow=True,
    )

    assert response.status_code == 200
    stripe_app.refresh_from_db()
    assert stripe_app.deleted_at is not None


def test_webhook_log_is_read_only(staff_client, stripe_app):
    event = StripeWebhookEvent.objects.create(app=stripe_app, event_id="evt_1", type="invoice.paid")

    page = staff_client.get(reverse("admin:integrations_stripewebhookevent_change", args=[event.id]))

    assert page.status_code == 200
    assert b'name="_save"' not in page.content



def test_admin_sets_a_webhook_secret_registered_by_hand(staff_client, stripe_app):
    secret = "whsec_" + "HandRegistered0123456789"

    staff_client.post(
        change_url(stripe_app),
        {"name": "Stripe", "description": "", "metadata": "{}", "new_webhook_secret": secret},
        follow=True,
    )

    stripe_app.refresh_from_db()
    assert stripe_app.webhook_secret == secret
    assert secret not in stripe_app.webhook_secret_encrypted
    assert secret not in staff_client.get(change_url(stripe_app)).content.decode()
