import pytest

from customers.models import Customer, CustomerSubject
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _create(api, **body):
    body.setdefault("name", "ACME")
    return api.post("/api/v1/customers", body, format="json")


def test_create_customer_with_every_field(api):
    # when
    response = _create(
        api,
        key="acme",
        name="ACME Inc.",
        description="big one",
        primaryEmail="billing@acme.test",
        currency="EUR",
        billingAddress={"country": "DE", "city": "Berlin", "postalCode": "10115", "line1": "Main 1"},
        metadata={"tier": "gold"},
        usageAttribution={"subjectKeys": ["acme-1", "acme-2"]},
    )
    # then
    assert response.status_code == 201
    body = response.json()
    assert body["key"] == "acme"
    assert body["name"] == "ACME Inc."
    assert body["primaryEmail"] == "billing@acme.test"
    assert body["currency"] == "EUR"
    assert body["billingAddress"] == {"country": "DE", "city": "Berlin", "postalCode": "10115", "line1": "Main 1"}
    assert body["metadata"] == {"tier": "gold"}
    assert body["usageAttribution"] == {"subjectKeys": ["acme-1", "acme-2"]}
    assert body["createdAt"].endswith("Z")
    customer = Customer.objects.get(pk=body["id"])
    assert sorted(customer.subject_keys()) == ["acme", "acme-1", "acme-2"]


def test_get_customer_by_id_and_by_key(api):
    customer = CustomerFactory(key="k1", subjects=["s1"])
    by_id = api.get(f"/api/v1/customers/{customer.pk}")
    by_key = api.get("/api/v1/customers/k1")
    assert by_id.status_code == by_key.status_code == 200
    assert by_id.json() == by_key.json()
    assert by_id.json()["usageAttribution"] == {"subjectKeys": ["s1"]}


def test_customer_key_with_slash_is_addressable(api):
    CustomerFactory(key="org/acme")
    response = api.get("/api/v1/customers/org%2Facme", REQUEST_URI="/api/v1/customers/org%2Facme")
    assert response.status_code == 200
    assert response.json()["key"] == "org/acme"


def test_unknown_customer_is_404_problem(api):
    response = api.get("/api/v1/customers/nope")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_subject_belongs_to_one_customer_only(api):
    # given
    CustomerFactory(key="a", subjects=["shared"])
    # when
    response = _create(api, key="b", usageAttribution={"subjectKeys": ["shared"]})
    # then
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert "shared" in response.json()["detail"]
    assert not Customer.objects.filter(key="b").exists()


def test_subject_may_not_be_another_customers_key(api):
    CustomerFactory(key="taken")
    response = _create(api, key="other", usageAttribution={"subjectKeys": ["taken"]})
    assert response.status_code == 409
    assert Customer.objects.count() == 1


def test_duplicate_key_is_409(api):
    CustomerFactory(key="dup")
    response = _create(api, key="dup")
    assert response.status_code == 409
    assert Customer.objects.filter(key="dup").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "x", "name": ""}, "name"),
        ({"name": "no key"}, "key"),
        ({"key": "x", "currency": "usd"}, "currency"),
        ({"key": "x", "billingAddress": {"country": "Germany"}}, "billingAddress.country"),
        ({"key": "x", "usageAttribution": {"subjectKeys": [""]}}, "usageAttribution.subjectKeys"),
        ({"key": "x", "metadata": {"a": {"nested": 1}}}, "metadata"),
    ],
)
def test_bad_customer_input_is_400_and_writes_nothing(api, body, field):
    body.setdefault("name", "n") if "name" not in body else None
    response = api.post("/api/v1/customers", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    fields = [e["field"] for e in response.json()["extensions"]["validationErrors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert Customer.objects.count() == 0


def test_update_replaces_fields_and_subjects(api):
    customer = CustomerFactory(key="u", subjects=["old"], currency="USD")
    response = api.put(
        "/api/v1/customers/u",
        {"name": "Renamed", "key": "u", "usageAttribution": {"subjectKeys": ["new-1"]}},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["usageAttribution"] == {"subjectKeys": ["new-1"]}
    assert "currency" not in body  # PUT replaces: absent optional fields are cleared
    assert list(CustomerSubject.objects.filter(customer=customer).values_list("subject_key", flat=True)) == ["new-1"]


def test_update_may_keep_its_own_subjects(api):
    CustomerFactory(key="keep", subjects=["s"])
    response = api.put(
        "/api/v1/customers/keep", {"name": "n", "key": "keep", "usageAttribution": {"subjectKeys": ["s"]}}, format="json"
    )
    assert response.status_code == 200


def test_delete_is_soft_and_releases_subjects(api):
    customer = CustomerFactory(key="gone", subjects=["s-gone"])
    assert api.delete("/api/v1/customers/gone").status_code == 204
    customer.refresh_from_db()
    assert customer.deleted_at is not None
    # the deleted customer is still readable by id, with deletedAt
    assert api.get(f"/api/v1/customers/{customer.pk}").json()["deletedAt"]
    # a new customer can claim the key and the subject
    assert _create(api, key="gone", usageAttribution={"subjectKeys": ["s-gone"]}).status_code == 201
    assert api.delete(f"/api/v1/customers/{customer.pk}").status_code == 404


def test_list_filters_order_paging_and_include_deleted(api):
    # given
    CustomerFactory(key="alpha", name="Alpha", primary_email="a@x.test", subjects=["sub-a"])
    CustomerFactory(key="beta", name="Beta", primary_email="b@y.test")
    gamma = CustomerFactory(key="gamma", name="Gamma")
    api.delete(f"/api/v1/customers/{gamma.pk}")

    def names(**query):
        response = api.get("/api/v1/customers", query)
        assert response.status_code == 200
        return [c["name"] for c in response.json()["items"]]

    # then
    assert names() == ["Alpha", "Beta"]
    assert names(includeDeleted="true") == ["Alpha", "Beta", "Gamma"]
    assert names(name="alp") == ["Alpha"]
    assert names(key="BET") == ["Beta"]
    assert names(primaryEmail="y.test") == ["Beta"]
    assert names(subject="sub-") == ["Alpha"]
    assert names(order="DESC", orderBy="name") == ["Beta", "Alpha"]
    page = api.get("/api/v1/customers", {"page": 2, "pageSize": 1}).json()
    assert page == {"totalCount": 2, "page": 2, "pageSize": 1, "items": page["items"]}
    assert page["items"][0]["name"] == "Beta"
    assert api.get("/api/v1/customers", {"orderBy": "bogus"}).status_code == 400
