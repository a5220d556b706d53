import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.utils.html import escape

from billing.models import Invoice
from entitlements.services import UsagePeriodInput, entitlement_create
from notifications.models import DeliveryState, NotificationChannel, NotificationDelivery, NotificationRule
from notifications.services.channels import channel_create, channel_set_disabled
from notifications.services.evaluation import emit_invoice_event
from notifications.services.events import EventSubject, event_create
from notifications.services.rules import Threshold, rule_create, rule_delete, rule_set_disabled
from notifications.services.samples import rule_test
from openmeter_site.core.errors import InvalidInput, NotFound
from tests.billing.helpers import customer, flat_line, profile
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db

INVOICE = {"id": "01JAAAAAAAAAAAAAAAAAAAAAAA", "type": "standard", "status": "issued"}
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


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
    assert "row 1: must be greater than 0" in " ".join(bad.context["adminform"].form.errors["thresholds"])
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


def test_event_page_links_the_invoice_and_shows_the_body_pretty_and_escaped(staff, api, receiver):
    # given an invoice.created event about a real invoice, whose body carries markup in a name
    channel = channel_create(name="c", url=receiver.url)
    rule_create(type="invoice.created", name="invoices", channel_ids=[channel.pk])
    profile()
    cust = customer(name="Acme <b>Corp</b>")
    api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
             {"currency": "USD", "lines": [flat_line(amount="12.50")]}, format="json")
    [invoice] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
    number = Invoice.objects.get(pk=invoice["id"]).number
    [event] = emit_invoice_event(invoice_payload={**INVOICE, "id": invoice["id"], "customer": {"name": cust.name},
                                                  "totals": {"total": Decimal("12345678901234567890.123")}},
                                 event_type="invoice.created")

    page = staff.get(f"/admin/notifications/notificationevent/{event.pk}/change/").content.decode()
    listed = staff.get("/admin/notifications/notificationevent/").content.decode()

    # then it says what it is about, with a link to the invoice's page
    link = f'invoice <a href="/admin/billing/invoice/{invoice["id"]}/change/">{number}</a> of Acme &lt;b&gt;Corp&lt;/b&gt;'
    assert link in page and link in listed
    # and the body sent, indented, escaped, numbers as sent, folded away until opened
    assert '<details class="om-payload"><summary>The JSON sent to the channels' in page
    assert escape('\n  "type": "invoice.created",\n') in page
    assert escape('"name": "Acme <b>Corp</b>"') in page and "<b>Corp</b>" not in page
    assert escape('"total": 12345678901234567890.123') in page
    assert "payload_json" not in page and escape('{"id":') not in page  # no raw one-line JSON


def test_event_page_links_the_entitlement_and_marks_test_events(staff, receiver):
    customer_ = CustomerFactory(key="acme", name="ACME Inc.", subjects=["acme-api"])
    feature = FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    entitlement = entitlement_create(customer=customer_, feature=feature, type="metered",
                                     usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
    channel = channel_create(name="c", url=receiver.url)
    rule = rule_create(type="entitlements.balance.threshold", name="low", channel_ids=[channel.pk],
                       thresholds=[Threshold(type="usage_percentage", value=Decimal(80))])
    event = event_create(rule=rule, data={"entitlement": {"id": entitlement.pk}}, about=EventSubject(
        entitlement_id=entitlement.pk, feature_id=feature.pk, feature_key="tokens", subject_key="acme-api"))
    sample = rule_test(rule_id=rule.pk)

    page = staff.get(f"/admin/notifications/notificationevent/{event.pk}/change/").content.decode()
    test_page = staff.get(f"/admin/notifications/notificationevent/{sample.pk}/change/").content.decode()

    assert (f'entitlement to <a href="/admin/entitlements/entitlement/{entitlement.pk}/change/">tokens</a> '
            "of ACME Inc.") in page
    assert "(a sample, not in the database)" in test_page
    assert "yes: sent by “Send a test event”, about sample data" in test_page and "Send a test event”" not in page
    assert "<title>Balance Threshold event " in page


def test_enabling_a_channel_goes_through_the_service_and_its_checks(staff, settings):
    # given two disabled channels, one whose private address is no longer allowed
    public = channel_create(name="public", url="https://93.184.216.34/om", disabled=True)
    private = channel_create(name="private", url="http://127.0.0.1:9/hook", disabled=True)
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False

    response = staff.post("/admin/notifications/notificationchannel/",
                          {"action": "enable", "_selected_action": [public.pk, private.pk]}, follow=True)

    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert shown[0][0] == "error" and shown[0][1].startswith("private: url:")
    assert "non-public address" in shown[0][1]
    assert shown[1] == ("success", "Enabled 1 notification channel.")
    public.refresh_from_db()
    private.refresh_from_db()
    assert (public.disabled, private.disabled) == (False, True)

    staff.post("/admin/notifications/notificationchannel/", {"action": "disable", "_selected_action": [public.pk]})
    public.refresh_from_db()
    assert public.disabled is True


def test_disabling_and_enabling_a_rule_goes_through_the_service(staff, receiver):
    channel = channel_create(name="c", url=receiver.url)
    rule = rule_create(type="invoice.created", name="r", channel_ids=[channel.pk], metadata={"team": "billing"})
    staff.post("/admin/notifications/notificationrule/", {"action": "disable", "_selected_action": [rule.pk]})
    rule.refresh_from_db()
    assert rule.disabled is True
    response = staff.post("/admin/notifications/notificationrule/",
                          {"action": "enable", "_selected_action": [rule.pk]}, follow=True)
    assert "Enabled 1 notification rule." in response.content.decode()
    rule.refresh_from_db()
    assert (rule.disabled, rule.metadata, list(rule.channels.all())) == (False, {"team": "billing"}, [channel])


def test_set_disabled_services_refuse_what_the_api_would(receiver, settings):
    channel = channel_create(name="c", url="http://127.0.0.1:9/hook")
    rule = rule_create(type="invoice.created", name="r", channel_ids=[channel.pk])
    rule_delete(rule_id=rule.pk)
    with pytest.raises(NotFound):
        rule_set_disabled(rule_id=rule.pk, disabled=True)
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(InvalidInput, match="url: "):
        channel_set_disabled(channel_id=channel.pk, disabled=False)
