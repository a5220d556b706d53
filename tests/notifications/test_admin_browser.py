"""Notifications in the back office, in headless Chromium: a webhook channel with custom headers and a signing secret
(a header the sender sets itself refused on its field), a balance-threshold rule with threshold rows, and an
invoice event read and its rule paused."""

import pytest
from playwright.sync_api import expect

from billing.models import Invoice
from notifications.models import NotificationChannel, NotificationRule
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create
from tests.billing.helpers import customer, flat_line, profile
from tests.factories import FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 32 base64 characters, as the spec's pattern wants


def test_operator_sets_up_a_webhook_channel_with_headers_and_a_threshold_rule(operator_page):
    page = operator_page
    FeatureFactory(key="api_calls", name="API calls", meter=MeterFactory(slug="api_calls"))

    page.goto("/admin/notifications/notificationchannel/add/")
    page.fill("#id_name", "Billing alerts")
    page.fill("#id_url", "http://127.0.0.1:9/hooks/openmeter")
    keys, values = page.locator("input[name=custom_headers__key]"), page.locator("input[name=custom_headers__value]")
    keys.nth(0).fill("X-Team")
    values.nth(0).fill("billing")
    keys.nth(1).fill("Content-Type")
    values.nth(1).fill("text/plain")
    page.fill("#id_signing_secret", SECRET)
    page.click("input[name=_save]")
    # the sender sets Content-Type itself: refused on the headers, and the secret is not shown back
    expect(page.locator(".field-custom_headers .errorlist")).to_have_text(
        "Content-Type is set by the webhook sender")
    expect(page.locator("#id_signing_secret")).to_have_value("")
    page.locator("input[name=custom_headers__key]").nth(1).fill("")
    page.locator("input[name=custom_headers__value]").nth(1).fill("")
    page.fill("#id_signing_secret", SECRET)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#result_list")).to_contain_text("Billing alerts")
    channel = NotificationChannel.objects.get(name="Billing alerts")
    assert (channel.custom_headers, channel.signing_secret) == ({"X-Team": "billing"}, SECRET)
    page.locator("#result_list").get_by_role("link", name="Billing alerts").click()
    expect(page.locator(".field-masked_secret")).not_to_contain_text(SECRET)

    page.goto("/admin/notifications/notificationrule/add/")
    page.select_option("#id_type", "entitlements.balance.threshold")
    page.fill("#id_name", "API calls running out")
    page.select_option("#id_channels_from", label="Billing alerts")
    page.click("#id_channels_add")
    page.select_option("#id_features_from", index=0)
    page.click("#id_features_add")
    kinds, numbers = page.locator("select[name=thresholds__type]"), page.locator("input[name=thresholds__value]")
    kinds.nth(0).select_option("usage_percentage")
    numbers.nth(0).fill("80")
    kinds.nth(1).select_option("balance_value")
    numbers.nth(1).fill("1000")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#result_list")).to_contain_text("API calls running out")
    expect(page.locator("#result_list")).to_contain_text("Billing alerts")
    rule = NotificationRule.objects.get(name="API calls running out")
    assert [c.name for c in rule.channels.all()] == ["Billing alerts"]
    assert [f.key for f in rule.features.all()] == ["api_calls"]
    assert rule.thresholds == [{"type": "usage_percentage", "value": "80"}, {"type": "balance_value", "value": "1000"}]


def test_operator_reads_an_invoice_event_and_pauses_its_rule(operator_page, api, receiver):
    channel = channel_create(name="Billing alerts", url=receiver.url)
    rule = rule_create(type="invoice.created", name="New invoices", channel_ids=[channel.pk])
    profile()
    cust = customer(name="Globex")
    api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
             {"currency": "USD", "lines": [flat_line(amount="10")]}, format="json")
    [invoice] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
    number = Invoice.objects.get(pk=invoice["id"]).number
    emit_invoice_event(invoice_payload={"id": invoice["id"], "type": "standard", "status": "issued",
                                        "customer": {"name": "Globex"}}, event_type="invoice.created")
    page = operator_page

    # the event says what it is about; its body is folded away until opened, indented
    page.goto("/admin/notifications/notificationevent/")
    expect(page.locator("#result_list")).to_contain_text(f"invoice {number} of Globex")
    page.locator("#result_list tbody tr").first.locator("a").first.click()
    expect(page.locator(".field-about")).to_contain_text(f"invoice {number} of Globex")
    body = page.locator(".field-payload pre")
    expect(body).to_be_hidden()
    page.click("text=The JSON sent to the channels")
    expect(body).to_be_visible()
    expect(body).to_contain_text('"type": "invoice.created"')
    page.locator(".field-about").get_by_role("link", name=number).click()
    expect(page.locator("#content h1")).to_contain_text(number)

    # the rule is paused and resumed from its list, through the notifications service
    page.goto("/admin/notifications/notificationrule/")
    page.check(f"input[name=_selected_action][value='{rule.pk}']")
    page.select_option("select[name=action]", "disable")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Disabled 1 notification rule.")
    rule.refresh_from_db()
    assert rule.disabled is True
    page.check(f"input[name=_selected_action][value='{rule.pk}']")
    page.select_option("select[name=action]", "enable")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Enabled 1 notification rule.")
    rule.refresh_from_db()
    assert rule.disabled is False
