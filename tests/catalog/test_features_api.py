import pytest

from catalog.models import Feature
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def test_create_metered_feature_with_group_filters(api):
    MeterFactory(slug="tokens", group_by={"model": "$.model"})
    response = api.post(
        "/api/v1/features",
        {"key": "gpt_4_tokens", "name": "GPT-4 tokens", "meterSlug": "tokens",
         "meterGroupByFilters": {"model": "gpt-4"}, "metadata": {"team": "ai"}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["key"] == "gpt_4_tokens"
    assert body["name"] == "GPT-4 tokens"
    assert body["meterSlug"] == "tokens"
    assert body["meterGroupByFilters"] == {"model": "gpt-4"}
    assert body["metadata"] == {"team": "ai"}
    assert "archivedAt" not in body
    assert Feature.objects.get(pk=body["id"]).meter.slug == "tokens"
    assert api.get(f"/api/v1/features/{body['id']}").json()["name"] == "GPT-4 tokens"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"key": "Bad Key", "name": "x"}, 400),
        ({"key": "ok", "name": ""}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "missing"}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "meterGroupByFilters": {"nope": "v"}}, 400),
        ({"key": "ok", "name": "x", "meterGroupByFilters": {"model": "v"}}, 400),
        ({"key": "ok", "name": "x", "advancedMeterGroupByFilters": {"model": {"$eq": "v"}}}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "advancedMeterGroupByFilters": {"nope": {"$eq": "v"}}}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "advancedMeterGroupByFilters": {"model": {"$regex": "v"}}}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "advancedMeterGroupByFilters": {"model": "gpt-4"}}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "advancedMeterGroupByFilters": {"model": {"$in": "gpt-4"}}}, 400),
        ({"key": "ok", "name": "x", "meterSlug": "m", "advancedMeterGroupByFilters": {"model": {"$or": []}}}, 400),
    ],
)
def test_bad_feature_input_is_4xx_and_writes_nothing(api, body, status):
    MeterFactory(slug="m")
    response = api.post("/api/v1/features", body, format="json")
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    assert Feature.objects.count() == 0


def test_advanced_group_filters_and_unit_cost_are_stored_and_returned(api):
    MeterFactory(slug="tokens", group_by={"model": "$.model", "type": "$.type"})
    filters = {"model": {"$in": ["gpt-4", "gpt-4o"]}, "type": {"$eq": "input"}}
    unit_cost = {"type": "manual", "amount": "0.0001"}
    response = api.post("/api/v1/features", {"key": "gpt_input", "name": "GPT input", "meterSlug": "tokens",
                                             "advancedMeterGroupByFilters": filters, "unitCost": unit_cost},
                        format="json")
    assert response.status_code == 201, response.json()
    body = api.get(f"/api/v1/features/{response.json()['id']}").json()
    assert body["advancedMeterGroupByFilters"] == filters
    assert body["unitCost"] == unit_cost


def test_duplicate_live_key_is_409(api):
    FeatureFactory(key="dup", meter=None)
    response = api.post("/api/v1/features", {"key": "dup", "name": "again"}, format="json")
    assert response.status_code == 409


def test_get_by_id_and_key(api):
    feature = FeatureFactory(key="f_one")
    assert api.get(f"/api/v1/features/{feature.pk}").json()["key"] == "f_one"
    assert api.get("/api/v1/features/f_one").json()["id"] == feature.pk
    assert api.get("/api/v1/features/nope").status_code == 404


def test_list_is_array_unless_paged_and_filters(api):
    tokens = MeterFactory(slug="tokens")
    FeatureFactory(key="a_feature", meter=tokens)
    FeatureFactory(key="b_feature", meter=None)
    archived = FeatureFactory(key="c_feature", meter=None)
    api.delete(f"/api/v1/features/{archived.pk}")

    plain = api.get("/api/v1/features").json()
    assert [f["key"] for f in plain] == ["a_feature", "b_feature"]
    assert [f["key"] for f in api.get("/api/v1/features", {"includeArchived": "true"}).json()] == [
        "a_feature", "b_feature", "c_feature"]
    assert [f["key"] for f in api.get("/api/v1/features", {"meterSlug": "tokens"}).json()] == ["a_feature"]
    assert [f["key"] for f in api.get("/api/v1/features", {"limit": 1, "offset": 1}).json()] == ["b_feature"]
    page = api.get("/api/v1/features", {"page": 1, "pageSize": 1, "orderBy": "key", "order": "DESC"}).json()
    assert page["totalCount"] == 2
    assert [f["key"] for f in page["items"]] == ["b_feature"]
    assert api.get("/api/v1/features", {"pageSize": 1001}).status_code == 400


def test_delete_archives_and_blocks_new_entitlements(api):
    feature = FeatureFactory(key="old_feature", meter=None)
    customer = CustomerFactory()
    assert api.delete(f"/api/v1/features/{feature.pk}").status_code == 204
    feature.refresh_from_db()
    assert feature.archived_at is not None
    assert api.get(f"/api/v1/features/{feature.pk}").json()["archivedAt"]
    # an archived feature cannot get a new entitlement
    response = api.post(
        f"/api/v2/customers/{customer.pk}/entitlements", {"type": "boolean", "featureId": feature.pk}, format="json"
    )
    assert response.status_code == 400
    assert "archived" in response.json()["detail"]
    assert api.delete(f"/api/v1/features/{feature.pk}").status_code == 404
    # the key is free again
    assert api.post("/api/v1/features", {"key": "old_feature", "name": "new"}, format="json").status_code == 201
