import pytest
from django.db import connection

from metering.models import Meter, Rollup
from metering.postgres.fold import fold_all
from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"

TOKENS = {
    "slug": "tokens_total",
    "name": "Tokens",
    "description": "AI tokens",
    "aggregation": "SUM",
    "eventType": "prompt",
    "valueProperty": "$.tokens",
    "groupBy": {"model": "$.model", "type": "$.type"},
    "metadata": {"team": "ai"},
}


def create(api, **overrides):
    return api.post("/api/v1/meters", {**TOKENS, **overrides}, format="json")


def test_create_get_list_meter(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "tokens_total"
    assert body["aggregation"] == "SUM"
    assert body["eventType"] == "prompt"
    assert body["groupBy"] == {"model": "$.model", "type": "$.type"}
    assert body["metadata"] == {"team": "ai"}
    assert body["createdAt"].endswith("Z")
    assert api.get(f"/api/v1/meters/{body['id']}").json()["slug"] == "tokens_total"
    assert api.get("/api/v1/meters/tokens_total").json()["id"] == body["id"]
    listed = api.get("/api/v1/meters").json()
    assert [m["slug"] for m in listed] == ["tokens_total"]
    # no events yet: the backfill finished on commit
    assert Meter.objects.get().backfill_cursor is None


def test_name_defaults_to_slug_and_count_ignores_value_property(api):
    body = create(api, name=None, aggregation="COUNT", valueProperty="$.whatever", groupBy={}).json()
    body = api.get(f"/api/v1/meters/{body['id']}").json()
    assert body["name"] == "tokens_total"
    assert "valueProperty" not in body


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"slug": "Bad-Slug"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"aggregation": "MEDIAN"}, "aggregation"),
        ({"eventType": ""}, "eventType"),
        ({"valueProperty": None}, "valueProperty"),
        ({"valueProperty": "tokens"}, "valueProperty"),
        ({"valueProperty": "$.tokens[["}, "valueProperty"),
        ({"groupBy": {"model": "$.("}}, "groupBy.model"),
        ({"groupBy": {"bad key": "$.x"}}, "groupBy"),
        ({"groupBy": {"subject": "$.x"}}, "reserved"),
        ({"eventFrom": "last week"}, "eventFrom"),
        ({"metadata": {"a": {"nested": 1}}}, "metadata"),
    ],
)
def test_create_validation_is_400_and_writes_nothing(api, overrides, fragment):
    response = create(api, **overrides)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert fragment in response.json()["detail"]
    assert Meter.objects.count() == 0


def test_duplicate_slug_is_409(api):
    assert create(api).status_code == 201
    response = create(api)
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM


def test_unknown_meter_is_404(api):
    for path in ("/api/v1/meters/nope", "/api/v1/meters/nope/query", "/api/v1/meters/01G65Z755AFWAKHE12NY0CQ9FH"):
        response = api.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == PROBLEM


def test_update_replaces_name_description_metadata_and_keeps_the_rest(api):
    meter_id = create(api).json()["id"]
    response = api.put(
        f"/api/v1/meters/{meter_id}",
        {"name": "Renamed", "metadata": {"x": "y"}, "slug": "ignored", "aggregation": "MAX"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["metadata"], body.get("description")) == ("Renamed", {"x": "y"}, None)
    assert (body["slug"], body["aggregation"]) == ("tokens_total", "SUM")
    assert body["groupBy"] == {"model": "$.model", "type": "$.type"}


def test_update_with_bad_group_by_is_400_and_changes_nothing(api):
    meter_id = create(api).json()["id"]
    response = api.put(f"/api/v1/meters/{meter_id}", {"name": "x", "groupBy": {"m": "$[["}}, format="json")
    assert response.status_code == 400
    assert Meter.objects.get().name == "Tokens"


def test_group_by_change_rebuilds_rollups(api, django_capture_on_commit_callbacks):
    # given a folded meter grouped by model
    with django_capture_on_commit_callbacks(execute=True):
        meter_id = create(api, groupBy={"model": "$.model"}).json()["id"]
    ingest(
        [{"subject": "s", "time": "2026-01-01T00:00:00+00:00", "data": {"tokens": 5, "model": "a", "type": "in"}}],
        type="prompt",
    )
    fold_all()
    assert {tuple(sorted(g.items())) for g in Rollup.objects.values_list("groups", flat=True)} == {(("model", "a"),)}
    # when groupBy gains a key
    with django_capture_on_commit_callbacks(execute=True):
        response = api.put(
            f"/api/v1/meters/{meter_id}", {"name": "t", "groupBy": {"model": "$.model", "type": "$.type"}}, format="json"
        )
    assert response.status_code == 200
    # then the rollups were rebuilt with both keys and the meter is ready again
    groups = {tuple(sorted(g.items())) for g in Rollup.objects.values_list("groups", flat=True)}
    assert groups == {(("model", "a"), ("type", "in"))}
    assert Meter.objects.get().backfill_cursor is None
    result = api.get(f"/api/v1/meters/{meter_id}/query", {"groupBy": "type"}).json()
    assert [(r["value"], r["groupBy"]) for r in result["data"]] == [(5, {"type": "in"})]


def test_delete_is_soft_and_frees_the_slug(api):
    meter_id = create(api).json()["id"]
    response = api.delete(f"/api/v1/meters/{meter_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/api/v1/meters/{meter_id}").status_code == 404
    assert api.get("/api/v1/meters").json() == []
    assert [m["id"] for m in api.get("/api/v1/meters", {"includeDeleted": "true"}).json()] == [meter_id]
    assert Meter.objects.get(pk=meter_id).deleted_at is not None
    assert create(api).status_code == 201


def test_list_orders_and_is_a_plain_array(api):
    MeterFactory(slug="b_meter", name="A")
    MeterFactory(slug="a_meter", name="B")
    assert [m["slug"] for m in api.get("/api/v1/meters").json()] == ["a_meter", "b_meter"]
    assert [m["slug"] for m in api.get("/api/v1/meters", {"orderBy": "name"}).json()] == ["b_meter", "a_meter"]
    assert [m["slug"] for m in api.get("/api/v1/meters", {"order": "DESC"}).json()] == ["b_meter", "a_meter"]


def test_jsonpath_check_does_not_break_the_transaction(api):
    # a bad path is rejected in a savepoint; the connection stays usable
    assert create(api, valueProperty="$[[").status_code == 400
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
