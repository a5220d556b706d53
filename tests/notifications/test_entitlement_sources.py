"""Balance thresholds and resets from real entitlements, usage and resets, delivered to a real receiver."""

import datetime as dt

import pytest
import time_machine

from entitlements.models import Entitlement
from notifications.models import NotificationEvent
from notifications.services.channels import channel_create
from notifications.services.rules import Threshold, rule_create
from notifications.tasks import emit_recent_resets_task, evaluate_all_thresholds_task, evaluate_new_usage_task
from tests.contract.spec import assert_matches
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ENT = "/api/v2/customers/acme/entitlements/tokens"


def z(when):
    return when.isoformat().replace("+00:00", "Z")


def use(when, *tokens, subject="acme"):
    ingest([{"subject": subject, "time": when, "data": {"tokens": t, "model": "m"}} for t in tokens])


@pytest.fixture
def entitlement(api):
    """A monthly metered entitlement anchored on March 1 with one 100-token grant."""
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    CustomerFactory(key="acme")
    with time_machine.travel(T0, tick=False):
        body = {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "MONTH", "anchor": z(T0)}}
        response = api.post("/api/v2/customers/acme/entitlements", body, format="json")
        assert response.status_code == 201, response.json()
        assert api.post(f"{ENT}/grants", {"amount": 100, "effectiveAt": z(T0)}, format="json").status_code == 201
    return Entitlement.objects.get(pk=response.json()["id"])


@pytest.fixture
def channel(receiver):
    return channel_create(name="hook", url=receiver.url)


def run(task, when, capture):
    with time_machine.travel(when, tick=False), capture(execute=True):
        return task()


def test_one_big_batch_crosses_two_thresholds_each_fires_once(
    entitlement, channel, receiver, django_capture_on_commit_callbacks
):
    # given 50%, 80% and 100% thresholds on the 100-token grant
    rule_create(type="entitlements.balance.threshold", name="usage", channel_ids=[channel.id],
                thresholds=[Threshold("usage_percentage", 50), Threshold("usage_percentage", 80),
                            Threshold("usage_percentage", 100)])
    # when one batch brings usage to 85 (40 + 45)
    use(T0 + dt.timedelta(days=1), 40, 45)
    assert run(evaluate_new_usage_task, T0 + dt.timedelta(days=1, hours=1), django_capture_on_commit_callbacks) == 2
    # then 50% and 80% were sent, once each, with the entitlement's value
    bodies = sorted((r.json() for r in receiver.requests), key=lambda b: b["data"]["threshold"]["value"])
    assert [b["data"]["threshold"] for b in bodies] == [
        {"type": "usage_percentage", "value": 50}, {"type": "usage_percentage", "value": 80},
    ]
    assert_matches(bodies[0], "NotificationEventBalanceThresholdPayload")
    data = bodies[0]["data"]
    assert data["entitlement"]["id"] == entitlement.pk
    assert data["feature"]["key"] == "tokens"
    assert data["subject"]["key"] == "acme"
    assert data["customer"]["key"] == "acme"
    assert (data["value"]["usage"], data["value"]["balance"], data["value"]["totalAvailableGrantAmount"]) == (85, 15, 100)
    assert all(receiver.verify(r, channel.signing_secret) for r in receiver.requests)
    # and more usage below 100 fires nothing; crossing 100 fires 100 only
    use(T0 + dt.timedelta(days=2), 5)
    assert run(evaluate_new_usage_task, T0 + dt.timedelta(days=2, hours=1), django_capture_on_commit_callbacks) == 0
    use(T0 + dt.timedelta(days=3), 10)  # 85 + 5 + 10 = 100
    assert run(evaluate_new_usage_task, T0 + dt.timedelta(days=3, hours=1), django_capture_on_commit_callbacks) == 1
    assert receiver.requests[-1].json()["data"]["threshold"]["value"] == 100
    # the full sweep finds nothing new
    assert run(evaluate_all_thresholds_task, T0 + dt.timedelta(days=3, hours=2), django_capture_on_commit_callbacks) == 0
    assert len(receiver.requests) == 3


def test_usage_of_other_subjects_does_not_evaluate_this_entitlement(entitlement, channel):
    rule_create(type="entitlements.balance.threshold", name="usage", channel_ids=[channel.id],
                thresholds=[Threshold("usage_value", 1)])
    use(T0 + dt.timedelta(days=1), 50, subject="someone-else")
    with time_machine.travel(T0 + dt.timedelta(days=1, hours=1), tick=False):
        assert evaluate_new_usage_task() == 0


def test_thresholds_fire_again_after_the_monthly_reset(entitlement, channel, django_capture_on_commit_callbacks):
    rule_create(type="entitlements.balance.threshold", name="usage", channel_ids=[channel.id],
                thresholds=[Threshold("usage_value", 10)])
    use(T0 + dt.timedelta(days=1), 20)
    assert run(evaluate_new_usage_task, T0 + dt.timedelta(days=2), django_capture_on_commit_callbacks) == 1
    april = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    use(april + dt.timedelta(days=1), 15)
    assert run(evaluate_new_usage_task, april + dt.timedelta(days=2), django_capture_on_commit_callbacks) == 1
    periods = sorted(e.dedup_key.split(":")[2] for e in NotificationEvent.objects.all())
    assert periods[0].startswith("2026-03-01") and periods[1].startswith("2026-04-01")


def test_manual_reset_is_notified_once(api, entitlement, channel, receiver, django_capture_on_commit_callbacks):
    rule_create(type="entitlements.reset", name="resets", channel_ids=[channel.id])
    use(T0 + dt.timedelta(days=1), 30)
    reset_at = T0 + dt.timedelta(days=5)
    with time_machine.travel(reset_at, tick=False):
        assert api.post(f"{ENT}/reset", {"effectiveAt": z(reset_at)}, format="json").status_code == 204
    assert run(emit_recent_resets_task, reset_at + dt.timedelta(minutes=1), django_capture_on_commit_callbacks) == 1
    assert run(emit_recent_resets_task, reset_at + dt.timedelta(minutes=2), django_capture_on_commit_callbacks) == 0
    [request] = receiver.requests
    body = request.json()
    assert body["type"] == "entitlements.reset"
    assert receiver.verify(request, channel.signing_secret)
    assert body["data"]["entitlement"]["id"] == entitlement.pk
    assert body["data"]["value"]["usage"] == 0  # a new period has just started
    assert set(body["data"]) == {"entitlement", "feature", "subject", "customer", "value"}
    assert_matches(body, "NotificationEventResetPayload")


def test_no_rules_means_no_work(entitlement):
    use(T0 + dt.timedelta(days=1), 500)
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False):
        assert evaluate_new_usage_task() == 0
        assert evaluate_all_thresholds_task() == 0
        assert emit_recent_resets_task() == 0
    assert NotificationEvent.objects.count() == 0


def test_ingest_api_triggers_threshold_evaluation(
    api, entitlement, channel, receiver, settings, django_capture_on_commit_callbacks
):
    settings.OPENMETER_NOTIFICATION_EVALUATION_DELAY_SECONDS = 0
    rule_create(type="entitlements.balance.threshold", name="usage", channel_ids=[channel.id],
                thresholds=[Threshold("usage_value", 60)])
    events = [
        {"specversion": "1.0", "id": f"e{i}", "source": "test", "type": "request", "subject": "acme",
         "time": z(T0 + dt.timedelta(days=1)), "data": {"tokens": 35, "model": "m"}}
        for i in range(2)
    ]
    with time_machine.travel(T0 + dt.timedelta(days=1, hours=1), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events", events, format="json", HTTP_CONTENT_TYPE="application/cloudevents-batch+json")
    assert response.status_code == 204, response.content
    [request] = receiver.requests
    assert request.json()["data"]["value"]["usage"] == 70  # 35 + 35 ≥ 60


@pytest.mark.django_db(transaction=True)
def test_python_client_ingest_to_signed_webhook(live_server_url, api_key, receiver):
    from openmeter import Client

    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    CustomerFactory(key="acme")
    client = Client(endpoint=live_server_url, token=api_key)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    import requests

    headers = {"Authorization": f"Bearer {api_key}"}
    ent = requests.post(f"{live_server_url}/api/v2/customers/acme/entitlements", headers=headers, json={
        "type": "metered", "featureKey": "tokens",
        "usagePeriod": {"interval": "MONTH", "anchor": z(now - dt.timedelta(days=1))},
        "measureUsageFrom": z(now - dt.timedelta(days=1)),
    })
    assert ent.status_code == 201, ent.text
    grant = requests.post(f"{live_server_url}{ENT}/grants", headers=headers,
                          json={"amount": 10, "effectiveAt": z(now - dt.timedelta(hours=1))})
    assert grant.status_code == 201, grant.text
    channel = channel_create(name="hook", url=receiver.url)
    rule_create(type="entitlements.balance.threshold", name="empty", channel_ids=[channel.id],
                thresholds=[Threshold("balance_value", 0)])
    # when the SDK ingests usage that exhausts the grant
    client.events.ingest_event({"specversion": "1.0", "id": "big-1", "source": "sdk", "type": "request", "subject": "acme",
                                "time": z(now - dt.timedelta(minutes=5)), "data": {"tokens": 12, "model": "m"}})
    # then (eager tasks in the server) the receiver got the signed threshold event
    [request] = receiver.requests
    assert receiver.verify(request, channel.signing_secret)
    assert request.json()["data"]["threshold"] == {"type": "balance_value", "value": 0}
    assert request.json()["data"]["value"]["balance"] == 0


def test_automatic_period_reset_is_notified(entitlement, channel, receiver, django_capture_on_commit_callbacks):
    from entitlements.tasks import entitlement_reset_due_task

    rule_create(type="entitlements.reset", name="resets", channel_ids=[channel.id])
    april = dt.datetime(2026, 4, 1, 0, 10, tzinfo=dt.UTC)
    with time_machine.travel(april, tick=False):
        assert entitlement_reset_due_task() == 1  # the entitlements beat job records the April 1 reset
    assert run(emit_recent_resets_task, april + dt.timedelta(minutes=1), django_capture_on_commit_callbacks) == 1
    [event] = NotificationEvent.objects.filter(type="entitlements.reset")
    assert event.dedup_key == f"reset:{entitlement.pk}:2026-04-01T00:00:00Z"
    assert len(receiver.requests) == 1
