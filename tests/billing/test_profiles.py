import pytest

from billing.models import App, BillingProfile, CustomerOverride
from integrations.models import AppType
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _default(api) -> dict:
    items = api.get("/api/v1/billing/profiles").json()["items"]
    return next(p for p in items if p["default"])


def _create_body(app_id: str, **over) -> dict:
    body = {
        "name": "EU entity",
        "supplier": {"name": "Acme GmbH", "taxId": {"code": "DE123"}, "addresses": [{"country": "DE", "city": "Berlin"}]},
        "default": False,
        "workflow": {"invoicing": {"autoAdvance": False, "dueAfter": "P14D"}, "collection": {"interval": "PT2H"}},
        "apps": {"tax": app_id, "invoicing": app_id, "payment": app_id},
    }
    body.update(over)
    return body


def test_default_profile_and_sandbox_app_are_provisioned_once(api):
    # when: two reads on a fresh database
    first = _default(api)
    second = _default(api)
    # then: one default profile on the sandbox app, workflow defaults filled in
    assert first["id"] == second["id"]
    assert BillingProfile.objects.count() == 1
    assert App.objects.filter(type=AppType.SANDBOX).count() == 1
    assert first["workflow"]["invoicing"] == {
        "autoAdvance": True, "draftPeriod": "P0D", "dueAfter": "P30D", "progressiveBilling": True,
        "subscriptionEndProrationMode": "bill_actual_period",
    }
    assert first["workflow"]["collection"] == {"alignment": {"type": "subscription"}, "interval": "PT1H"}
    assert set(first["apps"]) == {"tax", "invoicing", "payment"}


def test_profile_create_get_list_update_delete(api):
    app_id = _default(api)["apps"]["invoicing"]["id"]
    # create
    r = api.post("/api/v1/billing/profiles", _create_body(app_id), format="json")
    assert r.status_code == 201, r.json()
    created = r.json()
    assert created["workflow"]["invoicing"]["autoAdvance"] is False
    assert created["workflow"]["invoicing"]["dueAfter"] == "P14D"
    assert created["workflow"]["invoicing"]["draftPeriod"] == "P0D"  # default kept
    assert created["workflow"]["collection"]["interval"] == "PT2H"
    assert created["supplier"]["addresses"] == [{"country": "DE", "city": "Berlin"}]
    # get with expanded apps
    got = api.get(f"/api/v1/billing/profiles/{created['id']}?expand=apps").json()
    assert got["apps"]["invoicing"]["type"] == "sandbox"
    # list
    listed = api.get("/api/v1/billing/profiles?orderBy=name&order=ASC").json()
    assert listed["totalCount"] == 2
    assert [p["name"] for p in listed["items"]] == ["Default Billing Profile", "EU entity"]
    # update
    body = {"name": "EU entity 2", "supplier": {"name": "Acme GmbH"}, "default": False,
            "workflow": {"payment": {"collectionMethod": "send_invoice"}}}
    r = api.put(f"/api/v1/billing/profiles/{created['id']}", body, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "EU entity 2"
    assert r.json()["workflow"]["payment"]["collectionMethod"] == "send_invoice"
    # delete
    assert api.delete(f"/api/v1/billing/profiles/{created['id']}").status_code == 204
    assert api.get("/api/v1/billing/profiles").json()["totalCount"] == 1
    assert api.get("/api/v1/billing/profiles?includeArchived=true").json()["totalCount"] == 2


def test_a_new_default_replaces_the_old_one(api):
    old = _default(api)
    r = api.post("/api/v1/billing/profiles", _create_body(old["apps"]["tax"]["id"], default=True), format="json")
    assert r.status_code == 201
    assert _default(api)["id"] == r.json()["id"]
    assert BillingProfile.objects.filter(is_default=True, deleted_at__isnull=True).count() == 1


def test_default_profile_cannot_be_deleted_or_unset(api):
    default = _default(api)
    r = api.delete(f"/api/v1/billing/profiles/{default['id']}")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM
    body = {"name": "x", "supplier": {}, "default": False, "workflow": {}}
    r = api.put(f"/api/v1/billing/profiles/{default['id']}", body, format="json")
    assert r.status_code == 400
    assert BillingProfile.objects.get(pk=default["id"]).name == "Default Billing Profile"


@pytest.mark.parametrize(
    ("case", "patch", "field"),
    [
        ("bad_duration", {"workflow": {"invoicing": {"dueAfter": "thirty days"}}}, "workflow.invoicing.dueAfter"),
        ("missing_supplier", {"supplier": None}, "supplier"),
        ("two_addresses", {"supplier": {"addresses": [{"country": "DE"}, {"country": "FR"}]}}, "supplier.addresses"),
        ("bad_collection_method", {"workflow": {"payment": {"collectionMethod": "cash"}}}, "workflow.payment"),
    ],
)
def test_profile_create_rejects_bad_input_without_writing(api, case, patch, field):
    app_id = _default(api)["apps"]["tax"]["id"]
    r = api.post("/api/v1/billing/profiles", _create_body(app_id, **patch), format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM
    assert field in r.json()["detail"]
    assert BillingProfile.objects.count() == 1


def test_profile_create_with_unknown_app_is_400(api):
    _default(api)
    r = api.post("/api/v1/billing/profiles", _create_body("01G65Z755AFWAKHE12NY0CQ9FH"), format="json")
    assert r.status_code == 400
    assert "apps.tax" in r.json()["detail"]


def test_unknown_profile_is_404(api):
    r = api.get("/api/v1/billing/profiles/01G65Z755AFWAKHE12NY0CQ9FH")
    assert r.status_code == 404
    assert r["Content-Type"] == PROBLEM


def test_override_upsert_get_list_delete(api):
    default = _default(api)
    other = api.post("/api/v1/billing/profiles", _create_body(default["apps"]["tax"]["id"]), format="json").json()
    pinned, unpinned = CustomerFactory(name="Pinned"), CustomerFactory(name="Free")
    # get without override: the default profile's values
    r = api.get(f"/api/v1/billing/customers/{unpinned.pk}")
    assert r.status_code == 200
    assert r.json()["baseBillingProfileId"] == default["id"]
    assert "customerOverride" not in r.json()
    # upsert: pin to the other profile
    r = api.put(f"/api/v1/billing/customers/{pinned.pk}", {"billingProfileId": other["id"]}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["baseBillingProfileId"] == other["id"]
    assert r.json()["customerOverride"]["billingProfileId"] == other["id"]
    assert r.json()["customerProfile"]["workflow"]["invoicing"]["autoAdvance"] is False
    # upsert again: same row
    api.put(f"/api/v1/billing/customers/{pinned.pk}", {"billingProfileId": other["id"]}, format="json")
    assert CustomerOverride.objects.count() == 1
    # list with filters
    everyone = api.get("/api/v1/billing/customers?expand=customer&orderBy=customerName").json()
    assert [i["customer"]["name"] for i in everyone["items"]] == ["Free", "Pinned"]
    only_pinned = api.get("/api/v1/billing/customers?includeAllCustomers=false").json()
    assert [i["customerOverride"]["customerId"] for i in only_pinned["items"]] == [pinned.pk]
    by_profile = api.get(f"/api/v1/billing/customers?billingProfile={default['id']}").json()
    assert [i["baseBillingProfileId"] for i in by_profile["items"]] == [default["id"]]
    ids = f"customerId={pinned.pk.lower()}&customerId={unpinned.pk}"
    by_id = api.get(f"/api/v1/billing/customers?{ids}&expand=customer").json()
    assert sorted(i["customer"]["id"] for i in by_id["items"]) == sorted([pinned.pk, unpinned.pk])  # ids in any case
    without_pin = api.get("/api/v1/billing/customers?customersWithoutPinnedProfile=true").json()
    assert without_pin["totalCount"] == 1
    # the pinned profile can't be deleted
    assert api.delete(f"/api/v1/billing/profiles/{other['id']}").status_code == 400
    # delete the override
    assert api.delete(f"/api/v1/billing/customers/{pinned.pk}").status_code == 204
    assert api.delete(f"/api/v1/billing/customers/{pinned.pk}").status_code == 404
    assert api.get(f"/api/v1/billing/customers/{pinned.pk}").json()["baseBillingProfileId"] == default["id"]


def test_override_for_unknown_profile_or_customer(api):
    customer = CustomerFactory()
    r = api.put(f"/api/v1/billing/customers/{customer.pk}", {"billingProfileId": "01G65Z755AFWAKHE12NY0CQ9FH"},
                format="json")
    assert r.status_code == 400
    assert CustomerOverride.objects.count() == 0
    assert api.get("/api/v1/billing/customers/01G65Z755AFWAKHE12NY0CQ9FH").status_code == 404
