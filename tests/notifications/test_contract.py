"""Our notification and portal responses against the spec's schemas."""

import pytest

from notifications.services.channels import channel_create
from tests.contract.spec import assert_matches

pytestmark = pytest.mark.django_db


def test_channel_rule_event_and_portal_token_match_the_spec(api, receiver, django_capture_on_commit_callbacks):
    channel = api.post("/api/v1/notification/channels",
                       {"type": "WEBHOOK", "name": "c", "url": receiver.url, "metadata": {"a": "b"}}, format="json")
    assert_matches(channel.json(), "NotificationChannel")
    assert_matches(api.get("/api/v1/notification/channels").json(), "NotificationChannelPaginatedResponse")
    cid = channel.json()["id"]
    rules = [
        {"type": "entitlements.balance.threshold", "thresholds": [{"type": "usage_percentage", "value": 50.5}]},
        {"type": "entitlements.reset"},
        {"type": "invoice.created"},
        {"type": "invoice.updated"},
    ]
    for body in rules:
        rule = api.post("/api/v1/notification/rules", {"name": "r", "channels": [cid], **body}, format="json")
        assert rule.status_code == 201
        assert_matches(rule.json(), "NotificationRule")
        with django_capture_on_commit_callbacks(execute=True):
            event = api.post(f"/api/v1/notification/rules/{rule.json()['id']}/test")
        assert_matches(event.json(), "NotificationEvent")
    assert_matches(api.get("/api/v1/notification/rules").json(), "NotificationRulePaginatedResponse")
    assert_matches(api.get("/api/v1/notification/events").json(), "NotificationEventPaginatedResponse")
    token = api.post("/api/v1/portal/tokens", {"subject": "s", "allowedMeterSlugs": ["m"]}, format="json").json()
    assert_matches(token, "PortalToken")
    for listed in api.get("/api/v1/portal/tokens").json():
        assert_matches(listed, "PortalToken")


def test_failed_attempt_without_status_code_matches_the_spec(api, settings, django_capture_on_commit_callbacks):
    from tests.conftest import free_port

    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 1
    channel = channel_create(name="c", url=f"http://127.0.0.1:{free_port()}/x")
    rule = api.post("/api/v1/notification/rules", {"type": "invoice.created", "name": "r", "channels": [channel.id]},
                    format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        event = api.post(f"/api/v1/notification/rules/{rule['id']}/test").json()
    event = api.get(f"/api/v1/notification/events/{event['id']}").json()
    assert event["deliveryStatus"][0]["state"] == "FAILED"
    assert_matches(event, "NotificationEvent")
