"""List endpoints answer in a fixed number of queries however many rows they return."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import FeatureFactory, addon_body, flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db


def count_queries(api, path: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(path).status_code == 200
    return len(ctx.captured_queries)


def test_plan_and_addon_lists_do_not_grow_with_rows(api):
    FeatureFactory(key="tokens")
    phases = [{"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(), usage_card("tokens")]}]
    api.post("/api/v1/plans", plan_body("p0", phases=phases), format="json")
    api.post("/api/v1/addons", addon_body("a0"), format="json")
    count_queries(api, "/api/v1/plans")  # warm-up: the first request of a key also records its last use
    one_plan, one_addon = count_queries(api, "/api/v1/plans"), count_queries(api, "/api/v1/addons")

    for i in range(1, 5):
        api.post("/api/v1/plans", plan_body(f"p{i}", phases=phases), format="json")
        api.post("/api/v1/addons", addon_body(f"a{i}"), format="json")

    assert count_queries(api, "/api/v1/plans") == one_plan
    assert count_queries(api, "/api/v1/addons") == one_addon
