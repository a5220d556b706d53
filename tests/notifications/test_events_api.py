import datetime as dt

import pytest
import time_machine
from openmeter import Client, models

from notifications.models import DeliveryState, NotificationDelivery
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create

PROBLEM = "application/problem+json"
INVOICE = {"id": "01JAAAAAAAAAAAAAAAAAAAAAAA", "type": "standard", "status": "issued", "currency": "USD",
           "customer": {"id": "01JBBBBBBBBBBBBBBBBBBBBBBB", "name": "Acme",
                        "usageAttribution": {"subjectKeys": ["acme"]}}}


@pytest.mark.unchecked_responses("the events carry a hand-made invoice payload (INVOICE), not one the server rendered")
@pytest.mark.django_db
def test_event_get_shows_delivery_status_and_attempts(api, receiver, django_capture_on_commit_callbacks):
    # given
    receiver.script = [502]
    channel = channel_create(name="hook", url=receiver.url)
    rule = rule_create(type="invoice.created", name="r", channel_ids=[channel.id])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    # when
    response = api.get(f"/api/v1/notification/events/{event.id}")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == event.id
    assert body["type"] == "invoice.created"
    assert body["rule"]["id"] == rule.id
    assert body["payload"] == {**receiver.requests[-1].json()}
    [status] = body["deliveryStatus"]
    assert status["state"] == "SUCCESS"
    assert status["channel"] == {"id": channel.id, "type": "WEBHOOK"}
    assert [(a["state"], a["response"]["statusCode"]) for a in status["attempts"]] == [("FAILED", 502), ("SUCCESS", 200)]
    assert status["attempts"][0]["response"]["body"] == "try again later"
    assert status["attempts"][1]["response"]["url"] == receiver.url
    assert isinstance(status["attempts"][1]["response"]["durationMs"], int)


@pytest.mark.unchecked_responses("the events carry a hand-made invoice payload (INVOICE), not one the server rendered")
@pytest.mark.django_db
def test_event_list_filters(api, receiver, django_capture_on_commit_callbacks):
    c1 = channel_create(name="a", url=receiver.url)
    c2 = channel_create(name="b", url=receiver.url)
    r1 = rule_create(type="invoice.created", name="created", channel_ids=[c1.id])
    r2 = rule_create(type="invoice.updated", name="updated", channel_ids=[c2.id])
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    with django_capture_on_commit_callbacks(execute=True):
        [e1] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created", at=t0)
        [e2] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.updated", at=t0 + dt.timedelta(hours=1))

    def ids(**params):
        response = api.get("/api/v1/notification/events", params)
        assert response.status_code == 200, response.content
        return [e["id"] for e in response.json()["items"]]

    assert ids() == [e1.id, e2.id]
    assert ids(order="DESC") == [e2.id, e1.id]
    assert ids(rule=r2.id) == [e2.id]
    assert ids(channel=c1.id) == [e1.id]
    assert ids(subject="acme") == [e1.id, e2.id]
    assert ids(subject="someone-else") == []
    assert ids(**{"from": "2026-03-01T00:30:00Z"}) == [e2.id]
    assert ids(to="2026-03-01T00:00:00Z") == [e1.id]  # inclusive
    assert r1.id != r2.id
    response = api.get("/api/v1/notification/events", {"from": "yesterday"})
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM


@pytest.mark.django_db
def test_resend_sends_again_to_all_or_chosen_channels(api, receiver, django_capture_on_commit_callbacks):
    c1 = channel_create(name="a", url=receiver.url + "/a")
    c2 = channel_create(name="b", url=receiver.url + "/b")
    rule_create(type="invoice.created", name="r", channel_ids=[c1.id, c2.id])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    assert sorted(r.path for r in receiver.requests) == ["/hook/a", "/hook/b"]
    # when resending to one channel
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/notification/events/{event.id}/resend", {"channels": [c2.id]}, format="json")
    # then
    assert response.status_code == 202
    assert response.content == b""
    assert [r.path for r in receiver.requests[2:]] == ["/hook/b"]
    d2 = NotificationDelivery.objects.get(event=event, channel=c2)
    assert d2.state == DeliveryState.SUCCESS
    assert d2.attempts.count() == 2
    # and with an empty body to all of them
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/notification/events/{event.id}/resend", {}, format="json").status_code == 202
    assert len(receiver.requests) == 5
    # a channel the event never went to is a 400
    other = channel_create(name="c", url=receiver.url)
    response = api.post(f"/api/v1/notification/events/{event.id}/resend", {"channels": [other.id]}, format="json")
    assert response.status_code == 400
    assert api.post("/api/v1/notification/events/01HZZZZZZZZZZZZZZZZZZZZZZZ/resend", {}, format="json").status_code == 404


@pytest.mark.unchecked_responses("the events carry a hand-made invoice payload (INVOICE), not one the server rendered")
@pytest.mark.django_db
def test_resend_marks_resending_until_the_task_runs(api, receiver):
    channel = channel_create(name="a", url=receiver.url)
    rule_create(type="invoice.created", name="r", channel_ids=[channel.id])
    [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    api.post(f"/api/v1/notification/events/{event.id}/resend", {}, format="json")
    assert api.get(f"/api/v1/notification/events/{event.id}").json()["deliveryStatus"][0]["state"] == "RESENDING"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule_body", "data_keys"),
    [
        ({"type": "entitlements.balance.threshold", "thresholds": [{"type": "usage_percentage", "value": 75}]},
         {"entitlement", "feature", "subject", "value", "threshold"}),
        ({"type": "entitlements.reset"}, {"entitlement", "feature", "subject", "value"}),
        ({"type": "invoice.created"}, None),
        ({"type": "invoice.updated"}, None),
    ],
)
def test_rule_test_sends_a_signed_event_of_the_rule_type(
    api, receiver, django_capture_on_commit_callbacks, rule_body, data_keys
):
    channel = channel_create(name="a", url=receiver.url)
    rule = api.post("/api/v1/notification/rules", {"name": "r", "channels": [channel.id], **rule_body}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/notification/rules/{rule.json()['id']}/test")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == rule_body["type"]
    assert body["annotations"] == {"notification.event.test": True}
    [request] = receiver.requests
    assert receiver.verify(request, channel.signing_secret)
    sent = request.json()
    assert sent["type"] == rule_body["type"]
    if data_keys:
        assert set(sent["data"]) == data_keys
    else:
        assert {"id", "number", "currency", "totals", "status", "customer"} <= set(sent["data"])
    if "threshold" in sent["data"]:
        assert sent["data"]["threshold"] == {"type": "usage_percentage", "value": 75}


@pytest.mark.django_db(transaction=True)
def test_python_client_notification_flow(live_server_url, api_key, receiver):
    client = Client(endpoint=live_server_url, token=api_key)
    # channels (the client returns the union types NotificationChannel/NotificationRule as dicts)
    channel = client.notification_channels.create(
        models.NotificationChannelWebhookCreateRequest(type="WEBHOOK", name="hook", url=receiver.url)
    )
    assert channel["signingSecret"].startswith("whsec_")
    assert client.notification_channels.get(channel["id"])["name"] == "hook"
    updated = client.notification_channels.update(
        channel["id"],
        models.NotificationChannelWebhookCreateRequest(type="WEBHOOK", name="hook2", url=receiver.url,
                                                       custom_headers={"X-A": "1"}),
    )
    assert updated["customHeaders"] == {"X-A": "1"}
    assert [c["id"] for c in client.notification_channels.list()["items"]] == [channel["id"]]
    # rules
    rule = client.notification_rules.create(
        models.NotificationRuleBalanceThresholdCreateRequest(
            type="entitlements.balance.threshold", name="usage", channels=[channel["id"]],
            thresholds=[models.NotificationRuleBalanceThresholdValue(type="usage_value", value=100)],
        )
    )
    assert client.notification_rules.get(rule["id"])["thresholds"] == [{"type": "usage_value", "value": 100}]
    assert client.notification_rules.list(channel=[channel["id"]]).total_count == 1
    # test-send, events, resend
    event = client.notification_rules.test(rule["id"])
    assert event.delivery_status[0].state == "SUCCESS"
    assert client.notification_events.get(event.id).payload["type"] == "entitlements.balance.threshold"
    assert [e.id for e in client.notification_events.list(rule=[rule["id"]])["items"]] == [event.id]
    client.notification_events.resend(event.id, models.NotificationEventResendRequest())
    assert len(receiver.requests) == 2
    assert all(receiver.verify(r, channel["signingSecret"]) for r in receiver.requests)
    # delete
    client.notification_rules.delete(rule["id"])
    client.notification_channels.delete(channel["id"])
    assert client.notification_channels.list()["items"] == []


@pytest.mark.unchecked_responses("the events carry a hand-made invoice payload (INVOICE), not one the server rendered")
@pytest.mark.django_db
def test_event_list_query_count_does_not_grow_with_events(api, receiver, django_assert_max_num_queries):
    channel = channel_create(name="a", url=receiver.url)
    rule_create(type="invoice.updated", name="r", channel_ids=[channel.id])
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
        for status in ("issued", "paid", "void"):
            emit_invoice_event(invoice_payload={**INVOICE, "status": status}, event_type="invoice.updated")
    with django_assert_max_num_queries(9):
        assert api.get("/api/v1/notification/events").json()["totalCount"] == 3
