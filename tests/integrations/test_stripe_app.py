"""Stripe app install, key rotation and uninstall, against localstripe on loopback."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from billing.models import App
from tests.conftest import free_port
from tests.integrations.conftest import TEST_KEY

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
OTHER_KEY = "sk_test_" + "Zz9876543210abcdefghijkl"


def install_stripe(api, **body):
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_install_with_api_key_validates_against_stripe_and_masks_the_key(api, stripe_api):
    body = install_stripe(api, name="Billing", createBillingProfile=False)

    app = body["app"]
    assert app["type"] == "stripe"
    assert app["name"] == "Billing"
    assert app["status"] == "ready"
    assert app["stripeAccountId"] == "acct_localstripe"
    assert app["livemode"] is False
    # first 8 and last 3 characters of the key
    assert app["maskedAPIKey"] == "sk_test_***7dc"
    assert TEST_KEY not in json.dumps(body)
    assert body["defaultForCapabilityTypes"] == []


def test_the_key_is_stored_encrypted(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    stored = App.objects.get(pk=app_id)
    assert TEST_KEY not in stored.secret_api_key_encrypted
    assert stored.secret_api_key == TEST_KEY
    assert stored.webhook_secret.startswith("whsec_")


def test_install_registers_the_webhook_endpoint_when_the_public_url_is_known(api, stripe_api, settings):
    settings.OPENMETER_STRIPE_WEBHOOK_BASE_URL = "http://127.0.0.1:1"  # nobody listens: deliveries fail fast

    app_id = install_stripe(api)["app"]["id"]

    stored = App.objects.get(pk=app_id)
    assert stored.stripe_webhook_endpoint_id.startswith("we_")
    assert stored.webhook_secret.startswith("whsec_")


def test_app_json_never_contains_the_secret(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    for response in (api.get(f"/api/v1/apps/{app_id}"), api.get("/api/v1/apps")):
        assert TEST_KEY not in response.content.decode()
        assert "secretAPIKey" not in response.content.decode()


def test_install_rejects_a_key_that_is_not_a_stripe_secret_key(api, stripe_api):
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": "pk_test_123"}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert "apiKey" in response.json()["detail"]
    assert not App.objects.exists()


def test_install_requires_the_api_key(api, stripe_api):
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {}, format="json")

    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "apiKey"


def test_stripe_unreachable_is_a_424_problem_and_nothing_is_installed(api, settings):
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nobody listens there

    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")

    assert response.status_code == 424
    assert response["Content-Type"] == PROBLEM
    assert "Stripe is unavailable" in response.json()["detail"]
    assert not App.objects.exists()


@pytest.fixture
def stripe_without_webhook_secrets(settings) -> Iterator[None]:
    """A Stripe-protocol server that knows the key's account but answers a new webhook endpoint without its secret."""
    answers = {
        "/v1/account": {"id": "acct_fake", "object": "account", "livemode": False},
        "/v1/webhook_endpoints": {"id": "we_fake", "object": "webhook_endpoint", "secret": None},
    }

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(answers[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.OPENMETER_STRIPE_API_BASE = f"http://127.0.0.1:{server.server_address[1]}"
    settings.OPENMETER_STRIPE_WEBHOOK_BASE_URL = "http://127.0.0.1:1"
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_a_webhook_endpoint_without_a_signing_secret_is_a_424_and_nothing_is_installed(
    api, stripe_without_webhook_secrets
):
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")

    assert response.status_code == 424
    assert response["Content-Type"] == PROBLEM
    assert "no signing secret for the new webhook endpoint we_fake" in response.json()["detail"]
    assert not App.objects.exists()


def test_update_api_key_endpoint_rotates_the_key(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    response = api.put(f"/api/v1/apps/{app_id}/stripe/api-key", {"secretAPIKey": OTHER_KEY}, format="json")

    assert response.status_code == 204
    assert response.content == b""
    assert App.objects.get(pk=app_id).secret_api_key == OTHER_KEY
    assert api.get(f"/api/v1/apps/{app_id}").json()["maskedAPIKey"] == "sk_test_***jkl"


def test_update_api_key_needs_a_stripe_app(api, stripe_api):
    sandbox = api.post("/api/v1/marketplace/listings/sandbox/install", {}, format="json").json()["app"]

    response = api.put(f"/api/v1/apps/{sandbox['id']}/stripe/api-key", {"secretAPIKey": OTHER_KEY}, format="json")

    assert response.status_code == 400
    assert "not a stripe app" in response.json()["detail"]


def test_update_api_key_rejects_a_bad_key_and_keeps_the_old_one(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    response = api.put(f"/api/v1/apps/{app_id}/stripe/api-key", {"secretAPIKey": "nope"}, format="json")

    assert response.status_code == 400
    assert App.objects.get(pk=app_id).secret_api_key == TEST_KEY


def test_put_app_renames_and_rotates_the_key(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    response = api.put(
        f"/api/v1/apps/{app_id}", {"type": "stripe", "name": "Renamed", "secretAPIKey": OTHER_KEY}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    assert response.json()["maskedAPIKey"] == "sk_test_***jkl"
    assert OTHER_KEY not in response.content.decode()


def test_put_app_without_a_key_keeps_the_key(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    response = api.put(f"/api/v1/apps/{app_id}", {"type": "stripe", "name": "Renamed"}, format="json")

    assert response.status_code == 200
    assert App.objects.get(pk=app_id).secret_api_key == TEST_KEY


def test_uninstall_removes_the_webhook_endpoint_from_stripe(api, stripe_api, settings):
    settings.OPENMETER_STRIPE_WEBHOOK_BASE_URL = "http://127.0.0.1:1"  # nobody listens: deliveries fail fast
    app_id = install_stripe(api, createBillingProfile=False)["app"]["id"]
    endpoint_id = App.objects.get(pk=app_id).stripe_webhook_endpoint_id

    assert api.delete(f"/api/v1/apps/{app_id}").status_code == 204

    again = requests.delete(
        f"{stripe_api}/v1/webhook_endpoints/{endpoint_id}", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5
    )
    assert again.status_code == 404


def test_install_makes_the_stripe_app_the_default_billing_profile_over_sandbox(api, stripe_api):
    from billing.models import BillingProfile

    body = install_stripe(api)

    default = BillingProfile.objects.get(is_default=True, deleted_at__isnull=True)
    assert default.invoicing_app_id == body["app"]["id"]
    assert (default.tax_app_id, default.payment_app_id) == (body["app"]["id"], body["app"]["id"])
    assert sorted(body["defaultForCapabilityTypes"]) == ["calculateTax", "collectPayments", "invoiceCustomers"]


def test_a_second_stripe_app_gets_a_profile_but_not_the_default(api, stripe_api):
    from billing.models import BillingProfile

    first = install_stripe(api)["app"]
    second = install_stripe(api, name="Second")

    assert second["defaultForCapabilityTypes"] == []
    assert BillingProfile.objects.get(is_default=True, deleted_at__isnull=True).invoicing_app_id == first["id"]
    assert BillingProfile.objects.filter(invoicing_app_id=second["app"]["id"]).count() == 1


def test_an_app_used_by_a_billing_profile_cannot_be_uninstalled(api, stripe_api):
    app_id = install_stripe(api)["app"]["id"]

    response = api.delete(f"/api/v1/apps/{app_id}")

    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert "billing profile" in response.json()["detail"]
    assert App.objects.get(pk=app_id).deleted_at is None
