"""Plans in the back office show how many subscriptions run on each version (the subscriptions app extends the
catalog's plan admin)."""

import pytest
from django.urls import reverse

from tests.factories import CustomerFactory, plan_body

pytestmark = pytest.mark.django_db


def test_plan_list_and_versions_count_running_subscriptions(admin_client, api):
    # given a published plan with two subscriptions, one of them canceled now, and a draft v2
    plan = api.post("/api/v1/plans", plan_body(), format="json").json()
    api.post(f"/api/v1/plans/{plan['id']}/publish")
    subs = [api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerId": CustomerFactory().pk},
                     format="json").json() for _ in range(2)]
    assert api.post(f"/api/v1/subscriptions/{subs[1]['id']}/cancel", {"timing": "immediate"},
                    format="json").status_code == 200
    draft = api.post(f"/api/v1/plans/{plan['id']}/next").json()

    # then the list counts the one still running on v1, none on v2
    changelist = admin_client.get(reverse("admin:catalog_plan_changelist"))
    counts = {p.version: p.running_subscriptions for p in changelist.context["cl"].result_list}
    assert counts == {1: 1, 2: 0}
    # and a plan's page lists its versions with their subscriptions
    versions = admin_client.get(reverse("admin:catalog_plan_change", args=[draft["id"]])).context["versions"]
    assert [(v["obj"].version, v["in_use"]) for v in versions] == [(2, 0), (1, 1)]
