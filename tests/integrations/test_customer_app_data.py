"""customers.apps.* and customers.stripe.*, portal and checkout sessions, against localstripe."""

import pytest
import requests

from billing.models import App
from customers.models import Customer
from integrations.models import CustomerAppData
from tests.factories import CustomerFactory
from tests.integrations.conftest import TEST_KEY

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def stripe_post(base: str, path: str, data: dict) -> dict:
    response = requests.post(f"{base}{path}", data=data, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def stripe_get(base: str, path: str) -> dict:
    return requests.get(f"{base}{path}", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=5).json()


def new_stripe_customer(base: str) -> str:
    return stripe_post(base, "/v1/customers", {"name": "Acme"})["id"]


def new_card(base: str, stripe_customer_id: str) -> str:
    method = stripe_post(
        base, "/v1/payment_methods",
        {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2040",
         "card[cvc]": "123"},
    )
    stripe_post(base, f"/v1/payment_methods/{method['id']}/attach", {"customer": stripe_customer_id})
    return method["id"]


@pytest.fixture
def stripe_app(api, stripe_api) -> dict:
    response = api.post("/api/v1/marketplace/listings/stripe/install/apikey", {"apiKey": TEST_KEY}, format="json")
    return response.json()["app"]


@pytest.fixture
def sandbox_app(api) -> dict:
    return api.post("/api/v1/marketplace/listings/sandbox/install", {}, format="json").json()["app"]


# --- customers.apps.* -------------------------------------------------------------------------------------------


def test_upsert_stripe_app_data_then_list_it(api, stripe_app, stripe_api):
    customer = CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(stripe_api)

    response = api.put(
        "/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": stripe_customer_id}], format="json"
    )

    assert response.status_code == 200, response.content
    [item] = response.json()
    assert item["type"] == "stripe"
    assert item["id"] == stripe_app["id"]
    assert item["stripeCustomerId"] == stripe_customer_id
    assert item["app"]["maskedAPIKey"] == stripe_app["maskedAPIKey"]
    listed = api.get(f"/api/v1/customers/{customer.id}/apps?type=stripe").json()
    assert listed["totalCount"] == 1
    assert listed["items"][0]["stripeCustomerId"] == stripe_customer_id


def test_upsert_twice_updates_in_place(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    first, second = new_stripe_customer(stripe_api), new_stripe_customer(stripe_api)

    api.put("/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": first}], format="json")
    api.put("/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": second}], format="json")

    assert list(CustomerAppData.objects.values_list("stripe_customer_id", flat=True)) == [second]


def test_upsert_unknown_stripe_customer_is_400_and_writes_nothing(api, stripe_app):
    CustomerFactory(key="acme")

    response = api.put("/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": "cus_nope"}], format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert "cus_nope" in response.json()["detail"]
    assert not CustomerAppData.objects.exists()


def test_upsert_is_all_or_nothing(api, stripe_app, sandbox_app, stripe_api):
    CustomerFactory(key="acme")
    good = new_stripe_customer(stripe_api)

    response = api.put(
        "/api/v1/customers/acme/apps",
        [{"type": "sandbox"}, {"type": "stripe", "stripeCustomerId": good},
         {"type": "stripe", "id": sandbox_app["id"], "stripeCustomerId": good}],
        format="json",
    )

    assert response.status_code == 400
    assert not CustomerAppData.objects.exists()


def test_upsert_stripe_requires_the_stripe_customer_id(api, stripe_app):
    CustomerFactory(key="acme")

    response = api.put("/api/v1/customers/acme/apps", [{"type": "stripe"}], format="json")

    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"].endswith("stripeCustomerId")


def test_upsert_body_must_be_an_array(api, stripe_app):
    CustomerFactory(key="acme")

    response = api.put("/api/v1/customers/acme/apps", {"type": "sandbox"}, format="json")

    assert response.status_code == 400


def test_list_includes_sandbox_and_filters_by_type(api, stripe_app, sandbox_app, stripe_api):
    CustomerFactory(key="acme")
    api.put("/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": new_stripe_customer(stripe_api)}],
            format="json")

    everything = api.get("/api/v1/customers/acme/apps").json()
    only_sandbox = api.get("/api/v1/customers/acme/apps?type=sandbox").json()

    # the Stripe install provisioned the default (sandbox) billing profile's app, then one more sandbox was installed
    assert sorted(i["type"] for i in everything["items"]) == ["sandbox", "sandbox", "stripe"]
    assert {i["type"] for i in only_sandbox["items"]} == {"sandbox"}
    assert sandbox_app["id"] in {i["id"] for i in only_sandbox["items"]}
    assert api.get("/api/v1/customers/acme/apps?type=paypal").status_code == 400


def test_custom_invoicing_metadata_round_trips(api):
    app = api.post("/api/v1/marketplace/listings/custom_invoicing/install", {}, format="json").json()["app"]
    CustomerFactory(key="acme")

    response = api.put(
        "/api/v1/customers/acme/apps", [{"type": "custom_invoicing", "metadata": {"erpId": "42"}}], format="json"
    )

    assert response.status_code == 200
    assert response.json() == [
        {"type": "custom_invoicing", "id": app["id"], "app": response.json()[0]["app"], "metadata": {"erpId": "42"}}
    ]


def test_delete_app_data(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    api.put("/api/v1/customers/acme/apps", [{"type": "stripe", "stripeCustomerId": new_stripe_customer(stripe_api)}],
            format="json")

    response = api.delete(f"/api/v1/customers/acme/apps/{stripe_app['id']}")

    assert response.status_code == 204
    assert not CustomerAppData.objects.exists()
    assert api.get("/api/v1/customers/acme/apps?type=stripe").json()["totalCount"] == 0


def test_unknown_customer_is_404(api):
    response = api.get("/api/v1/customers/nobody/apps")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_customer_key_with_a_slash(api, sandbox_app):
    CustomerFactory(key="team/acme")

    path = "/api/v1/customers/team%2Facme/apps"
    response = api.get(path, REQUEST_URI=path)  # gunicorn passes the raw URI; the test client does not

    assert response.status_code == 200
    assert response.json()["totalCount"] == 1


# --- customers.stripe.* -----------------------------------------------------------------------------------------


def test_customer_stripe_upsert_and_get(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(stripe_api)
    card = new_card(stripe_api, stripe_customer_id)

    response = api.put(
        "/api/v1/customers/acme/stripe",
        {"stripeCustomerId": stripe_customer_id, "stripeDefaultPaymentMethodId": card},
        format="json",
    )

    assert response.status_code == 200, response.content
    got = api.get("/api/v1/customers/acme/stripe").json()
    assert got == response.json()
    assert got["type"] == "stripe"
    assert got["id"] == stripe_app["id"]
    assert (got["stripeCustomerId"], got["stripeDefaultPaymentMethodId"]) == (stripe_customer_id, card)


def test_customer_stripe_rejects_another_customers_payment_method(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    mine, theirs = new_stripe_customer(stripe_api), new_stripe_customer(stripe_api)
    their_card = new_card(stripe_api, theirs)

    response = api.put(
        "/api/v1/customers/acme/stripe",
        {"stripeCustomerId": mine, "stripeDefaultPaymentMethodId": their_card},
        format="json",
    )

    assert response.status_code == 400
    assert "another Stripe customer" in response.json()["detail"]
    assert not CustomerAppData.objects.exists()


def test_customer_stripe_get_without_data_is_404(api, stripe_app):
    CustomerFactory(key="acme")

    response = api.get("/api/v1/customers/acme/stripe")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_customer_stripe_upsert_without_a_stripe_app_is_404(api):
    CustomerFactory(key="acme")

    response = api.put("/api/v1/customers/acme/stripe", {"stripeCustomerId": "cus_x"}, format="json")

    assert response.status_code == 404
    assert "no stripe app" in response.json()["detail"]


# --- portal and checkout sessions -------------------------------------------------------------------------------


def test_portal_session(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(stripe_api)
    api.put("/api/v1/customers/acme/stripe", {"stripeCustomerId": stripe_customer_id}, format="json")

    response = api.post(
        "/api/v1/customers/acme/stripe/portal", {"returnUrl": "https://example.com/back", "locale": "en"}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["stripeCustomerId"] == stripe_customer_id
    assert body["url"].startswith("https://billing.stripe.com/")
    assert (body["returnUrl"], body["locale"], body["livemode"]) == ("https://example.com/back", "en", False)
    assert set(body) == {"id", "stripeCustomerId", "configurationId", "livemode", "createdAt", "returnUrl", "locale", "url"}


def test_portal_session_without_a_stripe_customer_is_400(api, stripe_app):
    CustomerFactory(key="acme")

    response = api.post("/api/v1/customers/acme/stripe/portal", {}, format="json")

    assert response.status_code == 400
    assert "no Stripe customer" in response.json()["detail"]


def test_checkout_session_creates_the_stripe_customer_once(api, stripe_app, stripe_api):
    customer = CustomerFactory(key="acme", primary_email="billing@acme.test")
    body = {"customer": {"key": "acme"}, "options": {"successURL": "https://example.com/ok", "currency": "USD"}}

    first = api.post("/api/v1/stripe/checkout/sessions", body, format="json")
    second = api.post("/api/v1/stripe/checkout/sessions", body, format="json")

    assert first.status_code == 201, first.content
    result = first.json()
    assert result["customerId"] == customer.id
    assert result["mode"] == "setup"
    assert result["setupIntentId"].startswith("seti_")
    assert result["url"].startswith("https://checkout.stripe.com/")
    assert result["successURL"] == "https://example.com/ok"
    assert result["currency"] == "USD"
    assert second.json()["stripeCustomerId"] == result["stripeCustomerId"]
    stripe_customer = stripe_get(stripe_api, f"/v1/customers/{result['stripeCustomerId']}")
    assert stripe_customer["email"] == "billing@acme.test"
    assert stripe_customer["metadata"]["om_customer_id"] == customer.id
    intent = stripe_get(stripe_api, f"/v1/setup_intents/{result['setupIntentId']}")
    assert intent["metadata"]["om_app_id"] == stripe_app["id"]


def test_checkout_session_options_reach_stripe_in_its_own_shape(api, stripe_app, stripe_api):
    CustomerFactory(key="acme")
    options = {
        "billingAddressCollection": "required",
        "locale": "de",
        "customText": {"afterSubmit": {"message": "Thanks!"}},
        "consentCollection": {"termsOfService": "required"},
        "taxIdCollection": {"enabled": True, "required": "if_supported"},
        "customerUpdate": {"address": "auto", "name": "never"},
        "metadata": {"source": "signup"},
    }

    response = api.post("/api/v1/stripe/checkout/sessions", {"customer": {"key": "acme"}, "options": options},
                        format="json")

    assert response.status_code == 201, response.content
    session = stripe_get(stripe_api, f"/v1/checkout/sessions/{response.json()['sessionId']}")
    assert session["custom_text"] == {"after_submit": {"message": "Thanks!"}}
    assert session["consent_collection"] == {"terms_of_service": "required"}
    assert session["tax_id_collection"] == {"enabled": "true", "required": "if_supported"}  # form-encoded
    assert session["customer_update"] == {"address": "auto", "name": "never"}
    assert (session["billing_address_collection"], session["locale"]) == ("required", "de")
    assert session["metadata"]["source"] == "signup"
    assert session["metadata"]["om_app_id"] == stripe_app["id"]


def test_checkout_session_with_a_new_customer(api, stripe_app):
    body = {"customer": {"name": "New Co", "key": "new-co"}, "options": {"uiMode": "embedded"}}

    response = api.post("/api/v1/stripe/checkout/sessions", body, format="json")

    assert response.status_code == 201, response.content
    customer = Customer.objects.get(key="new-co")
    assert response.json()["customerId"] == customer.id
    assert response.json()["clientSecret"]
    assert CustomerAppData.objects.get(customer=customer).stripe_customer_id == response.json()["stripeCustomerId"]


def test_checkout_session_with_a_given_stripe_customer(api, stripe_app, stripe_api):
    customer = CustomerFactory(key="acme")
    stripe_customer_id = new_stripe_customer(stripe_api)

    response = api.post(
        "/api/v1/stripe/checkout/sessions",
        {"customer": {"id": customer.id}, "stripeCustomerId": stripe_customer_id, "options": {}},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["stripeCustomerId"] == stripe_customer_id
    assert CustomerAppData.objects.get(customer=customer).stripe_customer_id == stripe_customer_id


def test_checkout_session_bad_input(api, stripe_app):
    response = api.post("/api/v1/stripe/checkout/sessions", {"customer": {}, "options": {"uiMode": "x"}}, format="json")

    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["extensions"]["validationErrors"]}
    assert fields == {"customer", "options.uiMode"}
    assert not Customer.objects.exists()


def test_checkout_session_without_a_stripe_app_is_404(api):
    CustomerFactory(key="acme")

    response = api.post("/api/v1/stripe/checkout/sessions", {"customer": {"key": "acme"}, "options": {}}, format="json")

    assert response.status_code == 404
    assert App.objects.count() == 0
