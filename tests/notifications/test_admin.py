import pytest
from django.contrib.messages import get_messages

from notifications.models import DeliveryState, NotificationChannel, NotificationDelivery, NotificationRule
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create

pytestmark = pytest.mark.django_db

INVOICE = {"id": "01JAAAAAAAAAAAAAAAAAAAAAAA", "type": "standard", "status": "issued"}


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", "s@example.com", "pw"))
    return client


def test_admin_creates_a_channel_through_the_service(staff, receiver):
    response = staff.post("/admin/notifications/notificationchannel/add/", {
        "name": "ops", "url": receiver.url, "custom_headers__key": ["X-Team"], "custom_headers__value": ["billing"],
        "metadata__key": [""], "metadata__value": [""], "signing_secret": "",
    })
    assert response.status_code == 302, response.content
    channel = NotificationChannel.objects.get()
    assert channel.signing_secret.startswith("whsec_")
    assert channel.custom_headers == {"X-Team": "billing"}


def test_admin_channel_form_shows_service_validation(staff, settings):
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    response = staff.post("/admin/notifications/notificationchannel/add/", {
        "name": "ops", "url": "http://127.0.0.1:9/x",
    })
    assert response.status_code == 200
    assert "non-public address" in response.content.decode()
    assert NotificationChannel.objects.count() == 0


def test_admin_creates_a_threshold_rule_and_rejects_bad_thresholds(staff, receiver):
    channel = channel_create(name="c", url=receiver.url)
    form = {"type": "entitlements.balance.threshold", "name": "r", "channels": [channel.pk]}
    bad = staff.post("/admin/notifications/notificationrule/add/",
                     {**form, "thresholds__type": ["usage_value"], "thresholds__value": ["0"]})
    assert bad.status_code == 200
    assert "thresholds[0].value: must be greater than 0" in " ".join(bad.context["adminform"].form.errors["thresholds"])
    assert NotificationRule.objects.count() == 0
    good = staff.post("/admin/notifications/notificationrule/add/", {
        **form, "thresholds__type": ["usage_value", "usage_percentage", "usage_value"],
        "thresholds__value": ["5", "80", ""]})
    assert good.status_code == 302
    rule = NotificationRule.objects.get()
    assert rule.thresholds == [{"type": "usage_value", "value": "5"}, {"type": "usage_percentage", "value": "80"}]
    page = staff.get(f"/admin/notifications/notificationrule/{rule.pk}/change/").content.decode()
    assert 'name="thresholds__value" value="80"' in page
    assert list(rule.channels.all()) == [channel]


def test_admin_resend_action_and_event_pages(staff, receiver, django_capture_on_commit_callbacks):
    channel = channel_create(name="c", url=receiver.url)
    rule_create(type="invoice.created", name="r", channel_ids=[channel.pk])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    delivery = NotificationDelivery.objects.get()
    assert staff.get(f"/admin/notifications/notificationevent/{event.pk}/change/").status_code == 200
    assert staff.get(f"/admin/notifications/notificationdelivery/{delivery.pk}/change/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            "/admin/notifications/notificationevent/", {"action": "resend", "_selected_action": [event.pk]}
        )
    assert response.status_code == 302
    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count) == (DeliveryState.SUCCESS, 2)


def test_admin_refuses_deleting_a_channel_in_use(staff, receiver):
    channel = channel_create(name="c", url=receiver.url)
    rule_create(type="invoice.created", name="r", channel_ids=[channel.pk])
    confirm = staff.post(
        "/admin/notifications/notificationchannel/", {"action": "soft_delete", "_selected_action": [channel.pk]}
    )
    assert b"receive no more deliveries" in confirm.content  # asks first
    response = staff.post("/admin/notifications/notificationchannel/",
                          {"action": "soft_delete", "_selected_action": [channel.pk], "confirmed": "yes"})
    assert "is used by rule" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    channel.refresh_from_db()
    assert channel.deleted_at is None


def test_admin_deletes_a_rule_after_confirmation(staff, receiver):
    channel = channel_create(name="c", url=receiver.url)
    rule = rule_create(type="invoice.created", name="r", channel_ids=[channel.pk])
    staff.post("/admin/notifications/notificationrule/", {"action": "soft_delete", "_selected_action": [rule.pk]})
    rule.refresh_from_db()
    assert rule.deleted_at is None
    staff.post("/admin/notifications/notificationrule/",
               {"action": "soft_delete", "_selected_action": [rule.pk], "confirmed": "yes"})
    rule.refresh_from_db()
    assert rule.deleted_at is not None
