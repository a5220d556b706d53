"""The catalog back office in headless Chromium, one scenario per operator task."""

import os

import pytest
from playwright.sync_api import Page, expect

from catalog.models import Plan, RateCard
from tests.factories import FeatureFactory

SHOTS = os.environ.get("OM_SCREENSHOTS")  # a folder: save what the operator saw (for a human look)


def shot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_billing_person_builds_and_publishes_a_plan(operator_page):
    page = operator_page
    FeatureFactory(key="tokens", name="AI tokens")

    # a new draft: the key is proposed from the name
    page.goto("/admin/catalog/plan/add/")
    page.fill("#id_name", "Pro")
    expect(page.locator("#id_key")).to_have_value("pro")
    page.select_option("#id_currency", "USD")
    page.click("input[name=_save]")
    expect(page.locator("#content h1")).to_have_text("Pro · v1")

    # a flat platform fee in the default phase
    page.click("#phases .om-phase[data-phase=default] >> text=+ Add rate card")
    page.fill("#id_name", "Platform fee")
    page.fill("#id_amount", "49")
    expect(page.locator(".field-tiers")).to_be_hidden()  # only the flat price's fields are shown
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Rate card “Platform fee” added")

    # graduated usage tiers with an allowance; the first try forgets the open-ended last tier
    page.click("#phases .om-phase[data-phase=default] >> text=+ Add rate card")
    page.fill("#id_name", "AI tokens")
    page.check("input[name=type][value=usage_based]")
    page.select_option("#id_feature", "tokens")
    page.select_option("#id_price_model", "graduated")
    expect(page.locator(".field-amount")).to_be_hidden()
    ups, units = page.locator("input[name=tiers__up_to]"), page.locator("input[name=tiers__unit]")
    ups.nth(0).fill("1000")
    units.nth(0).fill("0")
    ups.nth(1).fill("100000")
    units.nth(1).fill("0.002")
    page.select_option("#id_entitlement", "metered")
    page.fill("#id_issue_after_reset", "1000")
    page.click("input[name=_save]")
    expect(page.locator(".field-tiers .errorlist")).to_contain_text("row 2: the last tier must be open-ended")
    shot(page, "rate_card_form_error")
    ups.nth(1).fill("")
    page.click("input[name=_save]")

    phase = page.locator("#phases .om-phase[data-phase=default]")
    expect(phase.locator("tr[data-key=platform_fee]")).to_contain_text("$49.00 every month, in advance")
    tokens = phase.locator("tr[data-key=ai_tokens]")
    expect(tokens).to_contain_text("0 – 1,000: $0.00 per unit")
    expect(tokens).to_contain_text("above 1,000: $0.002 per unit")
    expect(tokens).to_contain_text("1,000 units per month, hard limit")
    shot(page, "plan_draft")

    # publish now
    page.click(".object-tools >> text=Publish")
    shot(page, "plan_publish_form")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist")).to_contain_text("Pro v1 is published")
    expect(page.locator(".fieldBox.field-status_badge")).to_contain_text("active")
    expect(page.locator(".object-tools")).not_to_contain_text("Add rate card")
    shot(page, "plan_published")
    plan = Plan.objects.get(key="pro")
    assert plan.status == "active"
    assert RateCard.objects.get(phase__plan=plan, key="ai_tokens").price_json["tiers"][1] == {
        "unitPrice": {"type": "unit", "amount": "0.002"}, "flatPrice": None}
