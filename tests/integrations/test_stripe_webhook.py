"""`POST /api/v1/apps/{id}/stripe/webhook`: no API key, the Stripe signature authenticates the event."""

import hashlib
import hmac
import json
import time

import pytest

from billing.models import App
from integrations.models import CustomerAppData, StripeWebhookEvent
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY
from tests.integrations.test_customer_app_data import new_card, new_stripe_customer, stripe_get

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256(secret, "{t}.{payload}")."""
    t = timestamp or int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(event_type: str, obj: dict, event_id: str = "evt_1") -> bytes:
    body = {"id": event_id, "object": "event", "type": event_type, "livemode": False, "created": int(time.time()),
            "api_version": "2024-06-20", "data": {"object": obj}}
    return json.dumps(body).encode()


def post(client, app_id: str, payload: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(f"/api/v1/apps/{app_id}/stripe/webhook", payload, content_type="application/json", **headers)


@pytest.fixture
def app(api, stripe_api) -> App:
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    return App.objects.get(pk=response.json()["app"]["id"])


def test_signed_event_is_accepted_without_an_api_key(client, app):
    payload = event("customer.created", {"id": "cus_1", "object": "customer"})

    response = post(client, app.id, payload, sign(payload, app.webhook_secret))

    assert response.status_code == 200, response.content
    assert response.json() == {"namespaceId": "default", "appId": app.id, "message": "ignored event type customer.created"}
    assert StripeWebhookEvent.objects.get().event_id == "evt_1"


def test_bad_signature_is_a_400_problem_and_nothing_is_recorded(client, app):
    payload = event("customer.created", {"id": "cus_1"})

    response = post(client, app.id, payload, sign(payload, "whsec_not_the_secret"))

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert "Stripe-Signature" in response.json()["detail"]
    assert not StripeWebhookEvent.objects.exists()


def test_tampered_payload_is_rejected(client, app):
    payload = event("customer.created", {"id": "cus_1"})
    signature = sign(payload, app.webhook_secret)

    response = post(client, app.id, payload.replace(b"cus_1", b"cus_2"), signature)

    assert response.status_code == 400


def test_stale_signature_is_rejected(client, app):
    payload = event("customer.created", {"id": "cus_1"})

    response = post(client, app.id, payload, sign(payload, app.webhook_secret, timestamp=int(time.time()) - 3600))

    assert response.status_code == 400


def test_missing_signature_is_400(client, app):
    response = post(client, app.id, event("customer.created", {"id": "cus_1"}), None)

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


def test_unknown_app_is_404(client, app):
    payload = event("customer.created", {"id": "cus_1"})

    response = post(client, "01G65Z755AFWAKHE12NY0CQ9FH", payload, sign(payload, app.webhook_secret))

    assert response.status_code == 404


def test_a_redelivered_event_is_handled_once(client, app):
    payload = event("customer.created", {"id": "cus_1"})

    post(client, app.id, payload, sign(payload, app.webhook_secret))
    again = post(client, app.id, payload, sign(payload, app.webhook_secret))

    assert again.status_code == 200
    assert again.json()["message"] == "event already processed"
    assert StripeWebhookEvent.objects.count() == 1


def test_setup_intent_succeeded_sets_the_default_payment_method(client, app, stripe_api):
    customer = CustomerFactory()
    stripe_customer_id = new_stripe_customer(stripe_api)
    card = new_card(stripe_api, stripe_customer_id)
    CustomerAppData.objects.create(customer=customer, app=app, stripe_customer_id=stripe_customer_id)
    intent = {"id": "seti_1", "object": "setup_intent", "customer": stripe_customer_id, "payment_method": card,
              "status": "succeeded", "metadata": {"om_app_id": app.id, "om_namespace": "default"}}
    payload = event("setup_intent.succeeded", intent)

    response = post(client, app.id, payload, sign(payload, app.webhook_secret))

    assert response.status_code == 200
    assert response.json()["customerId"] == customer.id
    assert response.json()["message"] == "customer default payment method set"
    assert CustomerAppData.objects.get().stripe_default_payment_method_id == card
    in_stripe = stripe_get(stripe_api, f"/v1/customers/{stripe_customer_id}")
    assert in_stripe["invoice_settings"]["default_payment_method"] == card


def test_setup_intent_of_another_app_is_ignored(client, app):
    intent = {"id": "seti_1", "customer": "cus_x", "payment_method": "pm_x", "metadata": {"om_app_id": "01OTHER"}}
    payload = event("setup_intent.succeeded", intent)

    response = post(client, app.id, payload, sign(payload, app.webhook_secret))

    assert response.status_code == 200
    assert response.json()["message"] == "ignoring event as it was initiated by a different openmeter app"


def test_invoice_event_for_an_unknown_invoice_is_ignored(client, app):
    payload = event("invoice.paid", {"id": "in_unknown", "object": "invoice", "status": "paid", "metadata": {}})

    response = post(client, app.id, payload, sign(payload, app.webhook_secret))

    assert response.status_code == 200
    assert response.json()["message"] == "ignoring event for an invoice not issued by this app"
