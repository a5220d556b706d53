"""The catalog back office in headless Chromium, one scenario per operator task."""

import os

import pytest
from playwright.sync_api import Page, expect

from catalog.models import Feature, Plan, PlanAddon, RateCard
from tests.factories import FeatureFactory, MeterFactory, plan_body

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


API_NAMES = ("phases[", "rateCards", "upToAmount", "minimumAmount", "maximumAmount", "billingCadence",
             "billablesMustAlign", "P1W")


@pytest.mark.django_db(transaction=True)
def test_plan_editor_says_what_is_wrong_with_a_price_in_the_forms_words(operator_page, api):
    page = operator_page
    FeatureFactory(key="tokens", name="AI tokens")
    trial = {"key": "trial", "name": "Trial", "duration": "P14D", "rateCards": [
        {"type": "flat_fee", "key": "trial_fee", "name": "Trial fee", "billingCadence": "P1M",
         "price": {"type": "flat", "amount": "0", "paymentTerm": "in_advance"}}]}
    default = {"key": "default", "name": "Default", "duration": None, "rateCards": [
        {"type": "usage_based", "key": "tokens", "name": "AI tokens", "featureKey": "tokens", "billingCadence": "P1M",
         "price": {"type": "unit", "amount": "0.1"}}]}
    plan_id = api.post("/api/v1/plans", plan_body(phases=[trial, default]), format="json").json()["id"]
    page.goto(f"/admin/catalog/plan/{plan_id}/change/")

    # a bad price: volume tiers out of order and a minimum above the maximum, each on its field in plain words
    page.locator("#phases .om-phase[data-phase=default] tr[data-key=tokens]").get_by_role("link", name="Edit").click()
    page.select_option("#id_price_model", "volume")
    ups, units = page.locator("input[name=tiers__up_to]"), page.locator("input[name=tiers__unit]")
    ups.nth(0).fill("1000")
    units.nth(0).fill("0.1")
    ups.nth(1).fill("500")
    units.nth(1).fill("0.05")
    units.nth(2).fill("0.01")
    page.fill("#id_minimum_amount", "50")
    page.fill("#id_maximum_amount", "40")
    page.click("input[name=_save]")
    expect(page.locator(".field-tiers .errorlist")).to_contain_text(
        "row 2: tiers must be in ascending order of “up to”")
    page.fill("#id_maximum_amount", "")
    page.click("input[name=_save]")
    expect(page.locator(".field-tiers .errorlist")).to_contain_text("row 2: tiers must be in ascending order")
    page.fill("#id_minimum_amount", "50")
    page.fill("#id_maximum_amount", "40")
    ups.nth(1).fill("5000")
    page.click("input[name=_save]")
    expect(page.locator(".field-minimum_amount .errorlist")).to_have_text(
        "must not be greater than the maximum per period")
    shot(page, "rate_card_bad_price")
    assert not any(name in page.content() for name in API_NAMES)
    page.fill("#id_maximum_amount", "")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Rate card “AI tokens” saved")

    # billed weekly, the monthly rate cards no longer align: the page and the publish form name them
    page.click(".object-tools >> text=Edit details")
    page.fill("#id_billing_cadence_0", "1")
    page.select_option("#id_billing_cadence_1", "P{}W")
    page.click("input[name=_save]")
    problem = "Phase “Default”, rate card “AI tokens” (Billed every): must equal the billing cadence 1 week"
    expect(page.locator(".om-problems")).to_contain_text(problem)
    expect(page.locator(".om-problems")).to_contain_text("Phase “Trial”, rate card “Trial fee” (Billed every)")
    page.click(".object-tools >> text=Publish")
    page.click("input[name=_confirm]")
    refusal = page.locator(".errornote")
    expect(refusal).to_contain_text("not ready to publish: Phase “Trial”, rate card “Trial fee” (Billed every)")
    expect(refusal).to_contain_text(problem)
    shot(page, "plan_not_ready")
    assert not any(name in page.content() for name in API_NAMES)
    assert Plan.objects.get(pk=plan_id).status == "draft"


@pytest.mark.django_db(transaction=True)
def test_billing_person_sells_an_add_on_with_a_plan(operator_page, api):
    page = operator_page
    plan_id = api.post("/api/v1/plans", plan_body(), format="json").json()["id"]

    # an add-on bought in a quantity, $5 a seat a month
    page.goto("/admin/catalog/addon/add/")
    page.fill("#id_name", "Extra seats")
    page.check("input[name=instance_type][value=multiple]")
    page.click("input[name=_save]")
    page.click("#rate-cards >> text=+ Add rate card")
    page.fill("#id_name", "Seat")
    page.fill("#id_amount", "5")
    page.click("input[name=_save]")
    expect(page.locator("#rate-cards tr[data-key=seat]")).to_contain_text("$5.00 every month, in advance")
    page.click(".object-tools >> text=Publish")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist")).to_contain_text("Extra seats v1 is published: plans can sell it")

    # the draft plan sells it from its first phase, at most 10
    page.goto(f"/admin/catalog/plan/{plan_id}/change/")
    page.click("#addons >> text=+ Sell an add-on")
    page.select_option("#id_from_plan_phase", "default")
    page.fill("#id_max_quantity", "10")
    page.click("input[name=_save]")
    expect(page.locator("#addons")).to_contain_text("Extra seats (extra_seats v1)")
    expect(page.locator("#addons")).to_contain_text("10")
    shot(page, "plan_with_addon")
    assert PlanAddon.objects.get(plan_id=plan_id).max_quantity == 10


@pytest.mark.django_db(transaction=True)
def test_billing_person_creates_a_metered_feature_and_archives_it(operator_page):
    page = operator_page
    MeterFactory(slug="llm_tokens", name="LLM tokens", group_by={"model": "$.model"})

    page.goto("/admin/catalog/feature/add/")
    page.fill("#id_name", "GPT-4o tokens")
    expect(page.locator("#id_key")).to_have_value("gpt_4o_tokens")
    page.select_option("#id_meter", "llm_tokens")
    page.locator("input[name=group_by_filters__key]").first.fill("model")
    page.locator("input[name=group_by_filters__value]").first.fill("gpt-4o")
    page.select_option("#id_unit_cost", "manual")
    page.fill("#id_unit_cost_amount", "0.00001")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Feature gpt_4o_tokens created")
    expect(page.locator(".field-filters")).to_contain_text("model = gpt-4o")
    expect(page.locator(".field-unit_cost_shown")).to_contain_text("$0.00001 per unit")
    shot(page, "feature")

    page.click(".object-tools >> text=Archive")
    expect(page.locator(".om-confirm")).to_contain_text("can no longer be granted")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist")).to_contain_text("is archived")
    assert Feature.objects.get(key="gpt_4o_tokens").archived_at is not None


def _add_card(page: Page, name: str, feature: str, price_model: str) -> None:
    page.click("#phases .om-phase[data-phase=default] >> text=+ Add rate card")
    page.fill("#id_name", name)
    page.check("input[name=type][value=usage_based]")
    page.select_option("#id_feature", feature)
    page.select_option("#id_price_model", price_model)


@pytest.mark.django_db(transaction=True)
def test_billing_person_prices_usage_in_packages_volume_tiers_and_at_cost_with_commitments_and_discounts(
        operator_page, api):
    page = operator_page
    for key, name in (("api_calls", "API calls"), ("images", "Images"), ("llm_cost", "LLM cost")):
        FeatureFactory(key=key, name=name, meter=MeterFactory(slug=key, event_type=key))
    plan_id = api.post("/api/v1/plans", plan_body("scale"), format="json").json()["id"]
    page.goto(f"/admin/catalog/plan/{plan_id}/change/")

    # API calls: $5 per started 1,000, at least $20 and at most $500 a month, 10% off, the first 100 free
    _add_card(page, "API calls", "api_calls", "package")
    expect(page.locator(".field-tiers")).to_be_hidden()
    page.fill("#id_amount", "5")
    page.fill("#id_quantity_per_package", "1000")
    page.fill("#id_minimum_amount", "20")
    page.fill("#id_maximum_amount", "500")
    page.fill("#id_discount_percentage", "10")
    page.fill("#id_free_quantity", "100")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Rate card “API calls” added")

    # images: volume tiers, the reached tier's price for every image; a minimum above the maximum is refused first
    _add_card(page, "Images", "images", "volume")
    expect(page.locator(".field-amount")).to_be_hidden()
    ups, units, flats = (page.locator(f"input[name=tiers__{part}]") for part in ("up_to", "unit", "flat"))
    ups.nth(0).fill("100")
    units.nth(0).fill("0.50")
    units.nth(1).fill("0.40")
    flats.nth(1).fill("10")
    page.fill("#id_minimum_amount", "50")
    page.fill("#id_maximum_amount", "40")
    page.click("input[name=_save]")
    expect(page.locator(".field-minimum_amount .errorlist")).to_have_text("must not be greater than the maximum per period")
    page.fill("#id_maximum_amount", "")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Rate card “Images” added")

    # LLM cost: what the provider charges, plus 25%, at least $10 a month
    _add_card(page, "LLM cost", "llm_cost", "dynamic")
    expect(page.locator(".field-multiplier")).to_be_visible()
    page.fill("#id_multiplier", "1.25")
    page.fill("#id_minimum_amount", "10")
    page.click("input[name=_save]")

    phase = page.locator("#phases .om-phase[data-phase=default]")
    calls, images, cost = (phase.locator(f"tr[data-key={key}]") for key in ("api_calls", "images", "llm_cost"))
    expect(calls).to_contain_text("$5.00 per 1,000 units")
    expect(calls).to_contain_text("at least $20.00, at most $500.00")
    expect(calls).to_contain_text("10% off, first 100 units free")
    expect(images).to_contain_text("volume tiers")
    expect(images).to_contain_text("0 – 100: $0.50 per unit")
    expect(images).to_contain_text("above 100: $0.40 per unit + $10.00 flat")
    expect(images).to_contain_text("at least $50.00")
    expect(cost).to_contain_text("metered cost × 1.25")
    expect(cost).to_contain_text("at least $10.00")
    shot(page, "plan_usage_prices")
    cards = {c.key: c for c in RateCard.objects.filter(phase__plan_id=plan_id)}
    assert cards["api_calls"].price_json == {"type": "package", "amount": "5", "quantityPerPackage": "1000",
                                             "minimumAmount": "20", "maximumAmount": "500"}
    assert cards["api_calls"].discounts_json == {"percentage": {"percentage": "10"}, "usage": {"quantity": "100"}}
    assert cards["images"].price_json["mode"] == "volume"
    assert cards["llm_cost"].price_json == {"type": "dynamic", "multiplier": "1.25", "minimumAmount": "10"}


@pytest.mark.django_db(transaction=True)
def test_billing_person_archives_a_published_plan_which_is_never_deleted(operator_page, api):
    page = operator_page
    plan_id = api.post("/api/v1/plans", plan_body("legacy"), format="json").json()["id"]
    api.post(f"/api/v1/plans/{plan_id}/publish")
    page.goto(f"/admin/catalog/plan/{plan_id}/change/")
    tools = page.locator(".object-tools")
    expect(tools).not_to_contain_text("Delete")  # a published version is archived, never deleted
    page.click(".object-tools >> text=Archive")
    expect(page.locator(".om-confirm")).to_contain_text("Existing subscriptions continue unchanged.")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist")).to_contain_text("is archived: no new subscriptions")
    expect(page.locator(".fieldBox.field-status_badge")).to_contain_text("archived")
    expect(tools).not_to_contain_text("Archive")
    expect(tools).not_to_contain_text("Delete")
    # the list still has it, filtered as archived; no bulk delete is offered either
    page.goto("/admin/catalog/plan/?status=archived")
    expect(page.locator("#result_list")).to_contain_text("Legacy")
    expect(page.locator("select[name=action]")).not_to_contain_text("Delete")
    plan = Plan.objects.get(pk=plan_id)
    assert plan.status == "archived" and plan.deleted_at is None
