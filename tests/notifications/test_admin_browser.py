"""Notifications in the back office, in headless Chromium: a webhook channel with custom headers and a signing secret
(a header the sender sets itself refused on its field), and a balance-threshold rule with threshold rows."""

import pytest
from playwright.sync_api import expect

from notifications.models import NotificationChannel, NotificationRule
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
        "customHeaders: Content-Type is set by the webhook sender")
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
