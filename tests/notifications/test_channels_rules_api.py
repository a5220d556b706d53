import base64

import pytest

from notifications.models import NotificationChannel, NotificationRule
from tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def channel_body(**overrides):
    return {"type": "WEBHOOK", "name": "ops", "url": "https://hooks.example.com/om", **overrides}


def create_channel(api, **overrides) -> dict:
    response = api.post("/api/v1/notification/channels", channel_body(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_channel_create_generates_a_whsec_secret_and_stores_it_encrypted(api):
    # when
    body = create_channel(api, customHeaders={"X-Team": "billing"}, metadata={"env": "test"})
    # then
    assert body["type"] == "WEBHOOK"
    assert body["createdAt"].endswith("Z")
    assert body["disabled"] is False
    assert body["customHeaders"] == {"X-Team": "billing"}
    assert body["metadata"] == {"env": "test"}
    secret = body["signingSecret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    row = NotificationChannel.objects.get(pk=body["id"])
    assert secret not in row.signing_secret_encrypted
    assert row.signing_secret == secret


def test_channel_keeps_a_given_secret(api):
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    assert create_channel(api, signingSecret=secret)["signingSecret"] == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "webhook"}, "type"),
        ({"url": "not a url"}, "url"),
        ({"name": ""}, "name"),
        ({"signingSecret": "short"}, "signingSecret"),
        ({"signingSecret": "whsec_" + "a" * 33}, "signingSecret"),  # 33 base64 chars: not decodable
        ({"url": "ftp://example.com/x"}, "url"),
        ({"customHeaders": {"Bad Header": "x"}}, "customHeaders"),
        ({"customHeaders": {"X-A": "x\r\nInjected: 1"}}, "customHeaders"),
        ({"customHeaders": {"svix-signature": "v1,forged"}}, "customHeaders"),
    ],
)
def test_channel_create_rejects_bad_input_naming_the_field(api, body, field):
    response = api.post("/api/v1/notification/channels", channel_body(**body), format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert field in response.json()["detail"]
    assert NotificationChannel.objects.count() == 0


def test_channel_update_replaces_fields_and_keeps_the_secret(api):
    created = create_channel(api)
    response = api.put(
        f"/api/v1/notification/channels/{created['id']}",
        channel_body(name="renamed", disabled=True, url="https://other.example.com/x"),
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["disabled"], body["url"]) == ("renamed", True, "https://other.example.com/x")
    assert body["signingSecret"] == created["signingSecret"]


def test_channel_list_hides_disabled_and_deleted_unless_asked(api):
    live = create_channel(api, name="live")
    disabled = create_channel(api, name="off", disabled=True)
    deleted = create_channel(api, name="gone")
    assert api.delete(f"/api/v1/notification/channels/{deleted['id']}").status_code == 204

    def ids(**params):
        response = api.get("/api/v1/notification/channels", params)
        assert response.status_code == 200
        return {c["id"] for c in response.json()["items"]}

    assert ids() == {live["id"]}
    assert ids(includeDisabled="true") == {live["id"], disabled["id"]}
    assert ids(includeDisabled="true", includeDeleted="true") == {live["id"], disabled["id"], deleted["id"]}
    page = api.get("/api/v1/notification/channels", {"page": 1, "pageSize": 1, "includeDisabled": "true"}).json()
    assert (page["totalCount"], page["page"], page["pageSize"], len(page["items"])) == (2, 1, 1, 1)
    assert api.get(f"/api/v1/notification/channels/{deleted['id']}").json()["deletedAt"]


def test_channel_get_unknown_is_404_problem(api):
    response = api.get("/api/v1/notification/channels/01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_channel_used_by_a_rule_cannot_be_deleted(api):
    channel = create_channel(api)
    rule = api.post(
        "/api/v1/notification/rules",
        {"type": "invoice.created", "name": "r", "channels": [channel["id"]]},
        format="json",
    ).json()
    response = api.delete(f"/api/v1/notification/channels/{channel['id']}")
    assert response.status_code == 400
    assert rule["id"] in response.json()["detail"]
    assert api.delete(f"/api/v1/notification/rules/{rule['id']}").status_code == 204
    assert api.delete(f"/api/v1/notification/channels/{channel['id']}").status_code == 204


def test_threshold_rule_round_trip_with_features_by_key_and_id(api):
    # given
    channel = create_channel(api)
    f1, f2 = FeatureFactory(key="tokens"), FeatureFactory(key="requests")
    # when
    response = api.post(
        "/api/v1/notification/rules",
        {
            "type": "entitlements.balance.threshold",
            "name": "usage alerts",
            "channels": [channel["id"]],
            "thresholds": [
                {"type": "usage_percentage", "value": 80},
                {"type": "PERCENT", "value": 95.5},
                {"type": "balance_value", "value": 0},
                {"type": "usage_value", "value": 1000},
            ],
            "features": ["tokens", f2.id],
        },
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["channels"] == [{"id": channel["id"], "type": "WEBHOOK"}]
    assert body["thresholds"] == [
        {"type": "usage_percentage", "value": 80},
        {"type": "PERCENT", "value": 95.5},
        {"type": "balance_value", "value": 0},
        {"type": "usage_value", "value": 1000},
    ]
    assert sorted(f["key"] for f in body["features"]) == ["requests", "tokens"]
    assert {f["id"] for f in body["features"]} == {f1.id, f2.id}
    assert api.get(f"/api/v1/notification/rules/{body['id']}").json() == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "entitlements.balance.threshold"}, "thresholds"),
        ({"type": "entitlements.balance.threshold", "thresholds": [{"type": "usage_value", "value": 0}]}, "thresholds"),
        ({"type": "entitlements.balance.threshold", "thresholds": [{"type": "bogus", "value": 1}]}, "thresholds"),
        ({"type": "entitlements.balance.threshold", "thresholds": [{"type": "usage_value", "value": 1}] * 2}, "thresholds"),
        ({"type": "entitlements.balance.threshold", "thresholds": [{"type": "NUMBER", "value": i} for i in range(1, 12)]},
         "thresholds"),
        ({"type": "invoice.created", "channels": []}, "channels"),
        ({"type": "invoice.created", "channels": ["01HZZZZZZZZZZZZZZZZZZZZZZZ"]}, "channels"),
        ({"type": "entitlements.reset", "features": ["no_such_feature"]}, "features"),
        ({"type": "invoice.updated", "features": ["x"]}, "features"),
        ({"type": "nope"}, "type"),
    ],
)
def test_rule_create_rejects_bad_input(api, body, field):
    channel = create_channel(api)
    payload = {"name": "r", "channels": [channel["id"]], **body}
    response = api.post("/api/v1/notification/rules", payload, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert field in response.json()["detail"]
    assert NotificationRule.objects.count() == 0


def test_rule_update_replaces_and_type_is_immutable(api):
    c1, c2 = create_channel(api, name="a"), create_channel(api, name="b")
    rule = api.post(
        "/api/v1/notification/rules", {"type": "entitlements.reset", "name": "r", "channels": [c1["id"]]}, format="json"
    ).json()
    response = api.put(
        f"/api/v1/notification/rules/{rule['id']}",
        {"type": "entitlements.reset", "name": "r2", "channels": [c2["id"]], "disabled": True},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["channels"], response.json()["disabled"]) == (
        "r2", [{"id": c2["id"], "type": "WEBHOOK"}], True,
    )
    response = api.put(
        f"/api/v1/notification/rules/{rule['id']}",
        {"type": "invoice.created", "name": "r2", "channels": [c2["id"]]},
        format="json",
    )
    assert response.status_code == 400
    assert NotificationRule.objects.get().type == "entitlements.reset"


def test_rule_list_filters(api, django_assert_max_num_queries):
    c1, c2 = create_channel(api, name="a"), create_channel(api, name="b")
    feature = FeatureFactory(key="tokens")
    r1 = api.post("/api/v1/notification/rules", {"type": "entitlements.reset", "name": "r1", "channels": [c1["id"]],
                                                 "features": ["tokens"]}, format="json").json()
    r2 = api.post("/api/v1/notification/rules", {"type": "invoice.created", "name": "r2", "channels": [c2["id"]]},
                  format="json").json()
    r3 = api.post("/api/v1/notification/rules", {"type": "invoice.updated", "name": "r3", "channels": [c1["id"]],
                                                 "disabled": True}, format="json").json()

    def ids(**params):
        return [r["id"] for r in api.get("/api/v1/notification/rules", params).json()["items"]]

    assert ids() == [r1["id"], r2["id"]]
    assert ids(includeDisabled="true") == [r1["id"], r2["id"], r3["id"]]
    assert ids(channel=c1["id"], includeDisabled="true") == [r1["id"], r3["id"]]
    assert ids(feature=feature.id) == [r1["id"]]
    assert ids(feature="tokens") == [r1["id"]]
    assert ids(order="DESC", orderBy="createdAt") == [r2["id"], r1["id"]]
    with django_assert_max_num_queries(6):  # auth, count, page, channels, features (+ last-used update)
        api.get("/api/v1/notification/rules", {"includeDisabled": "true"})


def test_list_filters_read_the_query_as_the_sdks_send_it(api):
    # given a live channel, a disabled one and a deleted one, and a rule on the live one
    live = create_channel(api, name="live")
    disabled = create_channel(api, name="off", disabled=True)
    gone = create_channel(api, name="gone")
    assert api.delete(f"/api/v1/notification/channels/{gone['id']}").status_code == 204
    rule = api.post("/api/v1/notification/rules", {"type": "invoice.created", "name": "r", "channels": [live["id"]]},
                    format="json").json()

    def names(query: str) -> list[str]:
        response = api.get(f"/api/v1/notification/channels{query}")
        assert response.status_code == 200, response.content
        return sorted(c["name"] for c in response.json()["items"])

    # then flags are off unless sent as true/1
    assert names("") == ["live"]
    assert names("?includeDisabled=1") == ["live", "off"]
    assert names("?includeDisabled=true&includeDeleted=TRUE") == ["gone", "live", "off"]
    assert names("?includeDisabled=false") == ["live"]
    # lists are repeated keys
    both = f"?channel={disabled['id']}&channel={live['id']}"
    assert [r["id"] for r in api.get(f"/api/v1/notification/rules{both}").json()["items"]] == [rule["id"]]
    assert api.get(f"/api/v1/notification/rules?channel={disabled['id']}").json()["items"] == []
    # a bad value is the usual 400 problem naming the parameter
    bad = api.get("/api/v1/notification/channels?includeDeleted=maybe")
    assert (bad.status_code, bad["Content-Type"]) == (400, PROBLEM)
    assert bad.json()["detail"] == "includeDeleted: expected true or false, got 'maybe'"
    bad_time = api.get("/api/v1/notification/events?from=yesterday")
    assert (bad_time.status_code, bad_time["Content-Type"]) == (400, PROBLEM)
    assert bad_time.json()["detail"].startswith("from: invalid RFC 3339 date-time 'yesterday'")
