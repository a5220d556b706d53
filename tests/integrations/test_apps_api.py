import pytest

from billing.models import App

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def install(api, app_type: str, **body):
    response = api.post(f"/api/v1/marketplace/listings/{app_type}/install", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["app"]


def test_marketplace_lists_the_three_listings_in_a_page_envelope(api):
    response = api.get("/api/v1/marketplace/listings")

    assert response.status_code == 200
    body = response.json()
    assert body["totalCount"] == 3
    assert (body["page"], body["pageSize"]) == (1, 100)
    by_type = {item["type"]: item for item in body["items"]}
    assert set(by_type) == {"stripe", "sandbox", "custom_invoicing"}
    assert by_type["stripe"]["installMethods"] == ["with_oauth2", "with_api_key"]
    assert by_type["sandbox"]["installMethods"] == ["no_credentials_required"]
    assert {c["type"] for c in by_type["stripe"]["capabilities"]} == {"collectPayments", "calculateTax", "invoiceCustomers"}
    assert by_type["stripe"]["capabilities"][0]["key"] == "stripe_collect_payment"


def test_marketplace_pages(api):
    body = api.get("/api/v1/marketplace/listings?page=2&pageSize=2").json()

    # 3 listings, 2 per page: the second page holds the third one
    assert body["totalCount"] == 3
    assert [i["type"] for i in body["items"]] == ["custom_invoicing"]


def test_marketplace_get_and_unknown_type(api):
    assert api.get("/api/v1/marketplace/listings/sandbox").json()["name"] == "Sandbox"

    response = api.get("/api/v1/marketplace/listings/paypal")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_install_sandbox_and_custom_invoicing(api):
    sandbox = install(api, "sandbox")
    custom = install(api, "custom_invoicing", name="ERP")

    assert sandbox["type"] == "sandbox"
    assert sandbox["name"] == "Sandbox"
    assert sandbox["status"] == "ready"
    assert sandbox["listing"]["type"] == "sandbox"
    assert custom["name"] == "ERP"
    assert custom["enableDraftSyncHook"] is False
    assert custom["enableIssuingSyncHook"] is False
    assert App.objects.count() == 2


def test_install_response_shape(api):
    response = api.post("/api/v1/marketplace/listings/sandbox/install", {}, format="json")

    assert set(response.json()) == {"app", "defaultForCapabilityTypes"}
    assert response.json()["defaultForCapabilityTypes"] == []


def test_stripe_cannot_be_installed_without_credentials(api):
    response = api.post("/api/v1/marketplace/listings/stripe/install", {}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert "install/apikey" in response.json()["detail"]
    assert not App.objects.exists()


def test_api_key_install_is_only_for_stripe(api):
    response = api.post("/api/v1/marketplace/listings/sandbox/install/apikey", {"apiKey": "x"}, format="json")

    assert response.status_code == 400
    assert not App.objects.exists()


@pytest.mark.parametrize("path", ["install/oauth2", "install/oauth2/authorize"])
def test_oauth2_endpoints_answer_501_with_the_reason(api, path):
    response = api.get(f"/api/v1/marketplace/listings/stripe/{path}")

    assert response.status_code == 501
    assert response["Content-Type"] == PROBLEM
    assert "OAuth" in response.json()["detail"]
    assert "install/apikey" in response.json()["detail"]


def test_apps_list_get_in_install_order(api):
    first = install(api, "sandbox")
    second = install(api, "custom_invoicing")

    body = api.get("/api/v1/apps").json()

    assert body["totalCount"] == 2
    assert [a["id"] for a in body["items"]] == [first["id"], second["id"]]
    assert api.get(f"/api/v1/apps/{first['id']}").json()["type"] == "sandbox"


def test_apps_get_unknown_is_404(api):
    response = api.get("/api/v1/apps/01G65Z755AFWAKHE12NY0CQ9FH")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_update_custom_invoicing_hooks_and_name(api):
    app = install(api, "custom_invoicing")

    response = api.put(
        f"/api/v1/apps/{app['id']}",
        {"type": "custom_invoicing", "name": "Renamed", "metadata": {"a": "b"},
         "enableDraftSyncHook": True, "enableIssuingSyncHook": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["metadata"]) == ("Renamed", {"a": "b"})
    assert (body["enableDraftSyncHook"], body["enableIssuingSyncHook"]) == (True, False)
    stored = App.objects.get(pk=app["id"])
    assert stored.enable_draft_sync_hook is True


def test_update_custom_invoicing_requires_both_hooks(api):
    app = install(api, "custom_invoicing")

    response = api.put(f"/api/v1/apps/{app['id']}", {"type": "custom_invoicing", "name": "X"}, format="json")

    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["extensions"]["validationErrors"]}
    assert fields == {"enableDraftSyncHook", "enableIssuingSyncHook"}
    assert App.objects.get(pk=app["id"]).name == "Custom Invoicing"


def test_update_with_another_type_is_400_and_changes_nothing(api):
    app = install(api, "sandbox")

    response = api.put(f"/api/v1/apps/{app['id']}", {"type": "stripe", "name": "X"}, format="json")

    assert response.status_code == 400
    assert "type" in response.json()["detail"]
    assert App.objects.get(pk=app["id"]).name == "Sandbox"


def test_update_name_is_required(api):
    app = install(api, "sandbox")

    response = api.put(f"/api/v1/apps/{app['id']}", {"type": "sandbox"}, format="json")

    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "name"


def test_uninstall_soft_deletes_and_hides_the_app(api):
    app = install(api, "sandbox")

    response = api.delete(f"/api/v1/apps/{app['id']}")

    assert response.status_code == 204
    assert api.get(f"/api/v1/apps/{app['id']}").status_code == 404
    assert api.get("/api/v1/apps").json()["totalCount"] == 0
    assert App.objects.get(pk=app["id"]).deleted_at is not None
    assert api.delete(f"/api/v1/apps/{app['id']}").status_code == 404


def test_apps_need_an_api_key(client):
    response = client.get("/api/v1/apps")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
