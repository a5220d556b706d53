"""Add-ons and plan add-ons through the HTTP API."""

import pytest

from catalog.models import Addon, PlanAddon
from tests.factories import FeatureFactory, addon_body, plan_body, usage_card

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def post(api, path, body=None, status=201) -> dict:
    response = api.post(path, body or {}, format="json")
    assert response.status_code == status, response.content
    return response.json()


def assert_problem(response, status: int, text: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    assert text in response.json()["detail"], response.json()["detail"]
    return response.json()


def published_addon(api, **kwargs) -> dict:
    addon = post(api, "/api/v1/addons", addon_body(**kwargs))
    return post(api, f"/api/v1/addons/{addon['id']}/publish", status=200)


def test_addon_lifecycle(api):
    FeatureFactory(key="tokens")
    addon = post(api, "/api/v1/addons", addon_body(cards=[usage_card("tokens", amount="0.02")]))
    assert (addon["status"], addon["version"], addon["instanceType"]) == ("draft", 1, "multiple")
    assert addon["rateCards"][0]["price"] == {"type": "unit", "amount": "0.02"}
    # bought several times, only flat prices can be multiplied: a multiple-instance usage price cannot be published
    assert [e["code"] for e in addon["validationErrors"]] == ["addon_multiple_instance_only_flat_price"]
    assert_problem(api.post(f"/api/v1/addons/{addon['id']}/publish"), 400, "only flat prices")

    body = addon_body(instance_type="single", cards=[usage_card("tokens", amount="0.03")])
    del body["key"], body["currency"]
    updated = api.put(f"/api/v1/addons/{addon['id']}", body, format="json").json()
    assert updated["instanceType"] == "single"
    assert updated["rateCards"][0]["price"]["amount"] == "0.03"

    active = post(api, f"/api/v1/addons/{addon['id']}/publish", status=200)
    assert active["status"] == "active"
    assert_problem(api.put(f"/api/v1/addons/{addon['id']}", body, format="json"), 400, "can be updated")
    assert api.get("/api/v1/addons/extra_seats").json()["id"] == addon["id"]

    archived = post(api, f"/api/v1/addons/{addon['id']}/archive", status=200)
    assert archived["status"] == "archived"
    assert api.delete(f"/api/v1/addons/{addon['id']}").status_code == 204
    assert api.get("/api/v1/addons").json()["totalCount"] == 0


def test_addon_versions_and_list_filters(api):
    v1 = published_addon(api)
    v2 = post(api, "/api/v1/addons", addon_body())
    assert v2["version"] == 2
    listed = api.get("/api/v1/addons?status=draft").json()
    assert [a["id"] for a in listed["items"]] == [v2["id"]]
    listed = api.get("/api/v1/addons?keyVersion[extra_seats]=1").json()
    assert [a["id"] for a in listed["items"]] == [v1["id"]]


def test_addon_bad_input_is_400(api):
    assert_problem(api.post("/api/v1/addons", addon_body(instance_type="many"), format="json"), 400, "instanceType")
    assert_problem(api.post("/api/v1/addons", addon_body(cards=[usage_card("ghost")]), format="json"), 400, "ghost")
    assert not Addon.objects.exists()


def test_plan_addon_create_get_update_delete(api):
    plan = post(api, "/api/v1/plans", plan_body())
    addon = published_addon(api)

    link = post(api, f"/api/v1/plans/{plan['id']}/addons",
                {"addonId": addon["id"], "fromPlanPhase": "default", "maxQuantity": 5})
    assert link["addon"]["id"] == addon["id"]
    assert (link["fromPlanPhase"], link["maxQuantity"]) == ("default", 5)

    got = api.get(f"/api/v1/plans/{plan['id']}/addons/{addon['id']}").json()
    assert got["maxQuantity"] == 5
    listed = api.get(f"/api/v1/plans/{plan['id']}/addons").json()
    assert listed["totalCount"] == 1

    updated = api.put(f"/api/v1/plans/{plan['id']}/addons/{addon['id']}",
                      {"fromPlanPhase": "default", "maxQuantity": 10}, format="json")
    assert updated.status_code == 200
    assert updated.json()["maxQuantity"] == 10

    link_again = {"addonId": addon["id"], "fromPlanPhase": "default"}
    again = api.post(f"/api/v1/plans/{plan['id']}/addons", link_again, format="json")
    assert_problem(again, 409, "already assigned")

    assert api.delete(f"/api/v1/plans/{plan['id']}/addons/{addon['id']}").status_code == 204
    assert api.get(f"/api/v1/plans/{plan['id']}/addons").json()["totalCount"] == 0


@pytest.mark.parametrize(
    ("addon_kwargs", "link", "publish", "message"),
    [
        ({"currency": "EUR"}, {}, True, "does not match the plan's USD"),
        ({}, {}, False, "only published (active) add-ons"),
        ({}, {"fromPlanPhase": "nope"}, True, "the plan has no phase 'nope'"),
        ({"instance_type": "single"}, {"maxQuantity": 2}, True, "not applicable"),
    ],
)
def test_plan_addon_incompatible_is_400(api, addon_kwargs, link, publish, message):
    plan = post(api, "/api/v1/plans", plan_body())
    addon = post(api, "/api/v1/addons", addon_body(**addon_kwargs))
    if publish:
        post(api, f"/api/v1/addons/{addon['id']}/publish", status=200)
    body = {"addonId": addon["id"], "fromPlanPhase": "default", **link}

    assert_problem(api.post(f"/api/v1/plans/{plan['id']}/addons", body, format="json"), 400, message)
    assert not PlanAddon.objects.exists()


def test_plan_addons_only_on_draft_plans(api):
    plan = post(api, "/api/v1/plans", plan_body())
    post(api, f"/api/v1/plans/{plan['id']}/publish", status=200)
    addon = published_addon(api)
    body = {"addonId": addon["id"], "fromPlanPhase": "default"}
    assert_problem(api.post(f"/api/v1/plans/{plan['id']}/addons", body, format="json"), 400, "can be given add-ons")
