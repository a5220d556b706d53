"""The plan editor in the back office (Django test client): every part is a typed form, saved through the catalog
service the API uses; a rejection is shown on the form and changes nothing. The browser test is
tests/catalog/test_catalog_browser.py."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from catalog.models import Feature, Plan, PlanAddon, RateCard
from tests.factories import FeatureFactory, addon_body, flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def _plan(api, **kwargs) -> Plan:
    response = api.post("/api/v1/plans", plan_body(**kwargs), format="json")
    assert response.status_code == 201, response.content
    return Plan.objects.get(pk=response.json()["id"])


def _url(name: str, *args: object) -> str:
    return reverse(f"admin:{name}", args=args)


def card_form(**values: object) -> dict:
    """A filled rate card form: a flat fee of $10 a month unless `values` say otherwise."""
    data: dict[str, object] = {
        "name": "Base fee", "key": "base_fee", "type": "flat_fee", "feature": "", "billing_cadence_0": "1",
        "billing_cadence_1": "P{}M", "description": "", "price_model": "flat", "amount": "10",
        "payment_term": "in_advance", "quantity_per_package": "", "multiplier": "", "minimum_amount": "",
        "maximum_amount": "", "discount_percentage": "", "free_quantity": "", "entitlement": "",
        "issue_after_reset": "", "usage_period_0": "", "usage_period_1": "P{}M", "issue_after_reset_priority": "1",
        "static_config": "", "tax_behavior": "", "stripe_tax_code": "", "metadata__key": [""],
        "metadata__value": [""], "tiers__up_to": [""], "tiers__unit": [""], "tiers__flat": [""],
    }
    data.update(values)
    return data


def tiers(*rows: tuple[str, str, str]) -> dict:
    return {"tiers__up_to": [r[0] for r in rows], "tiers__unit": [r[1] for r in rows],
            "tiers__flat": [r[2] for r in rows]}


def test_plan_page_reads_like_a_price_list(admin_client, api):
    # given a two-phase plan with a tiered usage price, a commitment, discounts and a metered entitlement
    FeatureFactory(key="tokens", name="AI tokens")
    tiered = {"type": "tiered", "mode": "graduated", "minimumAmount": "10", "tiers": [
        {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0"}, "flatPrice": None},
        {"upToAmount": None, "unitPrice": {"type": "unit", "amount": "0.05"}, "flatPrice": None}]}
    plan = _plan(api, phases=[
        {"key": "trial", "name": "Trial", "duration": "P14D", "rateCards": [flat_fee_card(amount="0")]},
        {"key": "default", "name": "Default", "duration": None, "rateCards": [
            flat_fee_card(amount="49", discounts={"percentage": {"percentage": 10}}),
            usage_card("tokens", key="tokens", price=tiered, discounts={"usage": {"quantity": "500"}},
                       entitlementTemplate={"type": "metered", "isSoftLimit": True, "issueAfterReset": "1000"}),
        ]},
    ])

    # when the operator opens it
    page = admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()

    # then every price reads as money in the plan's currency
    for text in ["Trial", "14 days", "Default", "until the subscription ends", "$0.00 every month, in advance",
                 "$49.00 every month, in advance", "10% off", "AI tokens", "graduated tiers",
                 "0 – 1,000: $0.00 per unit", "above 1,000: $0.05 per unit", "at least $10.00",
                 "first 500 units free", "1,000 units per month, soft limit", "v1 (this page)", "om-status-draft"]:
        assert text in page, text
    assert 'name="name"' not in page  # the record is read-only: parts are edited on their own forms


def test_operator_creates_a_draft_plan(admin_client):
    response = admin_client.post(_url("catalog_plan_add"), {
        "name": "Pro", "key": "pro", "currency": "EUR", "billing_cadence_0": "1", "billing_cadence_1": "P{}M",
        "description": "", "pro_rating_enabled": "on", "billables_must_align": "on",
        "settlement_mode": "credit_then_invoice", "metadata__key": ["segment"], "metadata__value": ["smb"],
    })

    plan = Plan.objects.get(key="pro")
    assert response.status_code == 302 and response["Location"] == _url("catalog_plan_change", plan.pk)
    assert (plan.version, plan.currency, plan.billing_cadence, plan.status) == (1, "EUR", "P1M", "draft")
    assert plan.metadata == {"segment": "smb"}
    assert [(p.key, p.duration) for p in plan.phases.all()] == [("default", None)]


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"key": "Pro Plan"}, "key", "lower case letters"),
        ({"currency": "usd"}, "currency", "Select a valid choice"),
        ({"billing_cadence_0": "0"}, "billing_cadence", "must not be zero"),  # the service's rule
    ],
)
def test_plan_create_refusals_are_shown_on_the_field(admin_client, values, field, message):
    data = {"name": "Pro", "key": "pro", "currency": "USD", "billing_cadence_0": "1", "billing_cadence_1": "P{}M",
            "settlement_mode": "credit_then_invoice", **values}
    response = admin_client.post(_url("catalog_plan_add"), data)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors[field])
    assert not Plan.objects.exists()


PRICES = [
    ({"price_model": "flat", "amount": "49.99", "payment_term": "in_arrears"},
     {"type": "flat", "amount": "49.99", "paymentTerm": "in_arrears"}, "$49.99 every month, in arrears"),
    ({"type": "usage_based", "feature": "tokens", "price_model": "unit", "amount": "0.0015"},
     {"type": "unit", "amount": "0.0015"}, "$0.0015 per unit"),
    ({"type": "usage_based", "feature": "tokens", "price_model": "graduated",
      **tiers(("1000", "0", ""), ("10000", "0.002", "5"), ("", "0.001", ""))},
     {"type": "tiered", "mode": "graduated", "tiers": [
         {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0"}, "flatPrice": None},
         {"upToAmount": "10000", "unitPrice": {"type": "unit", "amount": "0.002"},
          "flatPrice": {"type": "flat", "amount": "5"}},
         {"unitPrice": {"type": "unit", "amount": "0.001"}, "flatPrice": None}]},
     "1,000 – 10,000: $0.002 per unit + $5.00 flat"),
    ({"type": "usage_based", "feature": "tokens", "price_model": "volume",
      **tiers(("100", "1", ""), ("", "0.5", ""))},
     {"type": "tiered", "mode": "volume", "tiers": [
         {"upToAmount": "100", "unitPrice": {"type": "unit", "amount": "1"}, "flatPrice": None},
         {"unitPrice": {"type": "unit", "amount": "0.5"}, "flatPrice": None}]},
     "volume tiers"),
    ({"type": "usage_based", "feature": "tokens", "price_model": "package", "amount": "2",
      "quantity_per_package": "1000", "maximum_amount": "500"},
     {"type": "package", "amount": "2", "quantityPerPackage": "1000", "maximumAmount": "500"},
     "$2.00 per 1,000 units"),
    ({"type": "usage_based", "feature": "tokens", "price_model": "dynamic", "multiplier": "1.25"},
     {"type": "dynamic", "multiplier": "1.25"}, "metered cost × 1.25"),
    ({"price_model": ""}, None, "free"),
]


@pytest.mark.parametrize(("values", "stored", "shown"), PRICES, ids=[p[1]["type"] if p[1] else "free" for p in PRICES])
def test_rate_card_of_every_price_type_is_saved_through_the_service(admin_client, api, values, stored, shown):
    # given a draft plan and a metered feature
    FeatureFactory(key="tokens")
    plan = _plan(api)

    # when the operator adds a rate card of that price type to the default phase
    response = admin_client.post(_url("catalog_plan_card_add", plan.pk, "default"),
                                 card_form(key="added", name="Added", **values))

    # then it is stored in the API's shape and shown on the plan page
    assert response.status_code == 302, response.context["form"].errors
    card = RateCard.objects.get(phase__plan=plan, key="added")
    assert card.price_json == stored
    assert shown in admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()


def test_commitments_discounts_and_entitlement_template_round_trip(admin_client, api):
    FeatureFactory(key="tokens")
    plan = _plan(api)
    values = {"type": "usage_based", "feature": "tokens", "price_model": "unit", "amount": "0.01",
              "minimum_amount": "20", "maximum_amount": "2000", "discount_percentage": "15", "free_quantity": "1000",
              "entitlement": "metered", "issue_after_reset": "50000", "usage_period_0": "1", "usage_period_1": "P{}W",
              "is_soft_limit": "on", "issue_after_reset_priority": "3", "tax_behavior": "exclusive",
              "stripe_tax_code": "txcd_10103001", "metadata__key": ["team"], "metadata__value": ["ml"]}
    admin_client.post(_url("catalog_plan_card_add", plan.pk, "default"), card_form(key="tokens", name="Tokens",
                                                                                    **values))

    card = RateCard.objects.get(phase__plan=plan, key="tokens")
    assert card.price_json == {"type": "unit", "amount": "0.01", "minimumAmount": "20", "maximumAmount": "2000"}
    assert card.discounts_json == {"percentage": {"percentage": "15"}, "usage": {"quantity": "1000"}}
    assert card.entitlement_template_json == {"type": "metered", "isSoftLimit": True, "issueAfterResetPriority": 3,
                                              "preserveOverageAtReset": False, "issueAfterReset": "50000",
                                              "usagePeriod": "P1W"}
    assert card.tax_config == {"behavior": "exclusive", "stripe": {"code": "txcd_10103001"}}
    assert card.metadata == {"team": "ml"}
    # reopened, the form shows what was saved
    form = admin_client.get(_url("catalog_plan_card", plan.pk, "default", "tokens")).context["form"]
    assert {k: form.initial[k] for k in ("minimum_amount", "discount_percentage", "issue_after_reset",
                                         "usage_period", "issue_after_reset_priority", "stripe_tax_code")} == {
        "minimum_amount": Decimal(20), "discount_percentage": Decimal(15), "issue_after_reset": Decimal(50000),
        "usage_period": "P1W", "issue_after_reset_priority": 3, "stripe_tax_code": "txcd_10103001"}


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"type": "usage_based", "price_model": "graduated", "feature": "tokens",
          **tiers(("1000", "0.1", ""), ("500", "0.05", ""), ("", "0.01", ""))},
         "tiers", "row 2: tiers must be in ascending order"),
        ({"type": "usage_based", "price_model": "graduated", "feature": "tokens", **tiers(("1000", "0.1", ""))},
         "tiers", "row 1: the last tier must be open-ended"),
        ({"type": "usage_based", "price_model": "unit", "amount": "1", "feature": "no_meter"},
         "feature", "has no meter"),
        ({"type": "usage_based", "price_model": "unit", "amount": "-1", "feature": "tokens"},
         "amount", "must be at least 0"),
        ({"type": "usage_based", "price_model": "unit", "amount": "1", "feature": "tokens",
          "minimum_amount": "50", "maximum_amount": "10"}, "minimum_amount",
         "must not be greater than the maximum per period"),
        ({"price_model": "unit", "amount": "1"}, "price_model", "a rate card charged as a fee takes a flat price"),
        ({"discount_percentage": "150"}, "discount_percentage", "between 0 and 100"),
        ({"key": "base_fee"}, "key", "duplicate rate card key"),
        ({"entitlement": "metered"}, "entitlement", "an entitlement template needs a feature"),
        ({"stripe_tax_code": "tax1"}, "stripe_tax_code", "txcd_"),
    ],
)
def test_rate_card_refusals_are_shown_on_the_field_and_change_nothing(admin_client, api, values, field, message):
    # given a draft whose default phase has the base_fee card
    FeatureFactory(key="tokens")
    FeatureFactory(key="no_meter", meter=None)
    plan = _plan(api)
    before = list(RateCard.objects.filter(phase__plan=plan).values_list("pk", "key", "price_json"))

    response = admin_client.post(_url("catalog_plan_card_add", plan.pk, "default"),
                                 card_form(**{"key": "added", "name": "Added", **values}))

    assert response.status_code == 200
    assert message in str(response.context["form"].errors.get(field)), response.context["form"].errors
    assert list(RateCard.objects.filter(phase__plan=plan).values_list("pk", "key", "price_json")) == before


def test_edit_and_remove_a_rate_card(admin_client, api):
    plan = _plan(api)
    response = admin_client.post(_url("catalog_plan_card", plan.pk, "default", "base_fee"),
                                 card_form(name="Platform fee", amount="99"))
    assert response.status_code == 302
    card = RateCard.objects.get(phase__plan=plan)
    assert (card.name, card.price_json["amount"]) == ("Platform fee", "99")

    page = admin_client.get(_url("catalog_plan_card_remove", plan.pk, "default", "base_fee"))
    assert b"is removed from phase default" in page.content  # a confirmation first
    assert RateCard.objects.filter(phase__plan=plan).count() == 1
    admin_client.post(_url("catalog_plan_card_remove", plan.pk, "default", "base_fee"))
    assert not RateCard.objects.filter(phase__plan=plan).exists()


def test_phases_are_added_in_place_edited_and_removed(admin_client, api):
    plan = _plan(api)
    trial = {"name": "Trial", "key": "trial", "duration_0": "14", "duration_1": "P{}D", "description": "",
             "position": "0"}
    assert admin_client.post(_url("catalog_plan_phase_add", plan.pk), trial).status_code == 302
    assert [(p.key, p.duration) for p in Plan.objects.get(pk=plan.pk).phases.all()] == [
        ("trial", "P14D"), ("default", None)]
    assert RateCard.objects.get(phase__plan=plan).phase.key == "default"  # the existing cards stay in their phase

    # an open-ended phase before the last is the service's refusal, shown on the duration
    response = admin_client.post(_url("catalog_plan_phase", plan.pk, "trial"),
                                 {**trial, "duration_0": "", "position": ""})
    assert "only the last phase may be open-ended" in str(response.context["form"].errors["duration"])

    admin_client.post(_url("catalog_plan_phase", plan.pk, "trial"), {**trial, "name": "Free trial", "duration_0": "1",
                                                                      "duration_1": "P{}M"})
    assert Plan.objects.get(pk=plan.pk).phases.get(key="trial").duration == "P1M"
    admin_client.post(_url("catalog_plan_phase_remove", plan.pk, "trial"))
    assert [p.key for p in Plan.objects.get(pk=plan.pk).phases.all()] == ["default"]


def test_publish_shows_what_is_missing_then_publishes(admin_client, api):
    # given a draft whose last phase has an end: not publishable
    plan = _plan(api, phases=[{"key": "a", "name": "A", "duration": "P1M", "rateCards": [flat_fee_card()]}])
    page = admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()
    assert "Not ready to publish" in page and "the last phase must be open-ended" in page

    response = admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"})
    assert "the last phase must be open-ended" in response.content.decode()
    assert Plan.objects.get(pk=plan.pk).status == "draft"

    admin_client.post(_url("catalog_plan_phase", plan.pk, "a"), {"name": "A", "key": "a", "duration_0": ""})
    response = admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"}, follow=True)
    assert "is published" in response.content.decode()
    assert Plan.objects.get(pk=plan.pk).status == "active"


def test_what_stops_publishing_names_phases_rate_cards_and_fields_as_the_forms_do(admin_client, api):
    # given a draft billed monthly whose plan cadence is then changed to weekly (its rate cards must align)
    FeatureFactory(key="tokens", name="AI tokens")
    plan = _plan(api, phases=[
        {"key": "trial", "name": "Trial", "duration": "P14D", "rateCards": [flat_fee_card(amount="0")]},
        {"key": "default", "name": "Default", "duration": None,
         "rateCards": [usage_card("tokens", key="tokens", name="AI tokens")]},
    ])
    admin_client.post(_url("catalog_plan_details", plan.pk), {
        "name": "Pro", "billing_cadence_0": "1", "billing_cadence_1": "P{}W", "settlement_mode": "credit_then_invoice",
        "billables_must_align": "on"})

    page = admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()
    refused = admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"}).content.decode()

    problem = "Phase “Default”, rate card “AI tokens” (Billed every): must equal the billing cadence 1 week"
    assert problem in page and "Phase “Trial”, rate card “base_fee” (Billed every)" in page
    assert "not ready to publish: Phase “Trial”, rate card “base_fee” (Billed every)" in refused and problem in refused
    for api_name in ("phases[", "rateCards", "billingCadence", "billablesMustAlign", "P1W"):
        assert api_name not in page and api_name not in refused, api_name


def test_a_refusal_elsewhere_in_the_draft_names_the_part_as_edited(admin_client, api):
    # given a draft whose usage card's feature was archived after it was saved
    FeatureFactory(key="tokens", name="AI tokens")
    plan = _plan(api, phases=[{"key": "default", "name": "Default", "duration": None,
                               "rateCards": [flat_fee_card(), usage_card("tokens", key="tokens", name="AI tokens")]}])
    api.delete(f"/api/v1/features/{Feature.objects.get(key='tokens').pk}")

    # when the operator adds a trial phase in front (the default phase becomes phases[1] in the edited draft)
    response = admin_client.post(_url("catalog_plan_phase_add", plan.pk), {
        "name": "Trial", "key": "trial", "duration_0": "14", "duration_1": "P{}D", "description": "", "position": "0"})

    # then the refusal names the phase and rate card it is about, and the field by its label
    assert response.context["form"].non_field_errors() == [
        "Phase “Default”, rate card “AI tokens” (Feature): no feature with key 'tokens'"]
    assert [p.key for p in Plan.objects.get(pk=plan.pk).phases.all()] == ["default"]


def test_publish_at_a_later_time_schedules_the_version(admin_client, api):
    plan = _plan(api)
    with time_machine.travel(T0, tick=False):
        admin_client.post(_url("catalog_plan_do", plan.pk, "publish"),
                          {"when": "at", "at_0": "2026-02-01", "at_1": "00:00"})
    plan.refresh_from_db()
    assert plan.effective_from == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)  # the test client's zone is UTC
    with time_machine.travel(T0, tick=False):
        assert plan.status == "scheduled"


def test_published_plans_are_read_only_archived_never_deleted(admin_client, api):
    plan = _plan(api)
    admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"})

    page = admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()
    assert "Edit details" not in page and "Add rate card" not in page and "Delete draft" not in page
    assert admin_client.get(_url("catalog_plan_card", plan.pk, "default", "base_fee")).status_code == 404
    assert admin_client.post(_url("catalog_plan_change", plan.pk), {"name": "Changed"}).status_code == 403
    assert admin_client.post(_url("catalog_plan_delete", plan.pk), {"post": "yes"}).status_code == 403
    assert b"delete_selected" not in admin_client.get(_url("catalog_plan_changelist")).content
    assert Plan.objects.filter(pk=plan.pk, deleted_at__isnull=True).exists()

    # archive asks first, then archives
    confirm = admin_client.get(_url("catalog_plan_do", plan.pk, "archive")).content.decode()
    assert "Archiving ends sales of this version now" in confirm
    admin_client.post(_url("catalog_plan_do", plan.pk, "archive"), {})
    plan.refresh_from_db()
    assert plan.status == "archived" and plan.deleted_at is None


def test_new_version_then_delete_the_draft_softly(admin_client, api):
    plan = _plan(api)
    admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"})

    response = admin_client.post(_url("catalog_plan_do", plan.pk, "new_version"), {})
    draft = Plan.objects.get(key="pro", version=2)
    assert response["Location"] == _url("catalog_plan_change", draft.pk)
    assert RateCard.objects.filter(phase__plan=draft).count() == 1
    page = admin_client.get(_url("catalog_plan_change", draft.pk)).content.decode()
    assert "v2 (this page)" in page and ">v1</a>" in page

    admin_client.post(_url("catalog_plan_do", draft.pk, "delete_draft"), {})
    draft.refresh_from_db()
    assert draft.deleted_at is not None  # kept, as the API's soft delete
    assert Plan.objects.get(pk=plan.pk).status == "active"


def test_changelist_bulk_archive_asks_first(admin_client, api):
    plan = _plan(api)
    admin_client.post(_url("catalog_plan_do", plan.pk, "publish"), {"when": "now"})
    page = admin_client.post(_url("catalog_plan_changelist"), {"action": "archive", "_selected_action": [plan.pk]})
    assert b"Archived versions can no longer be subscribed to" in page.content
    assert Plan.objects.get(pk=plan.pk).status == "active"
    admin_client.post(_url("catalog_plan_changelist"),
                      {"action": "archive", "_selected_action": [plan.pk], "confirmed": "yes"})
    assert Plan.objects.get(pk=plan.pk).status == "archived"


def test_changelist_bulk_publish_goes_on_past_a_refusal(admin_client, api):
    published = _plan(api, key="basic", name="Basic")
    admin_client.post(_url("catalog_plan_do", published.pk, "publish"), {"when": "now"}, follow=True)
    draft = _plan(api)
    page = admin_client.post(_url("catalog_plan_changelist"),
                             {"action": "publish", "_selected_action": [published.pk, draft.pk]}, follow=True)
    shown = [(m.level_tag, m.message) for m in page.context["messages"]]
    assert [level for level, _ in shown] == ["error", "success"]
    assert shown[0][1].startswith("Basic v1: ") and shown[1][1] == "Published 1 plan."
    assert Plan.objects.get(pk=draft.pk).status == "active"


def test_plan_sells_an_add_on(admin_client, api):
    plan = _plan(api)
    addon_id = api.post("/api/v1/addons", addon_body(), format="json").json()["id"]
    api.post(f"/api/v1/addons/{addon_id}/publish")

    form = admin_client.get(_url("catalog_plan_addon_add", plan.pk)).context["form"]
    assert [c[0] for c in form.fields["addon"].choices] == [addon_id]
    admin_client.post(_url("catalog_plan_addon_add", plan.pk),
                      {"addon": addon_id, "from_plan_phase": "default", "max_quantity": "5"})
    link = PlanAddon.objects.get(plan=plan)
    assert (link.addon_id, link.max_quantity) == (addon_id, 5)
    assert "Extra_Seats (extra_seats v1)" in admin_client.get(_url("catalog_plan_change", plan.pk)).content.decode()

    admin_client.post(_url("catalog_plan_addon_remove", plan.pk, link.pk))
    link.refresh_from_db()
    assert link.deleted_at is not None


def test_features_are_offered_with_their_meter(admin_client, api):
    FeatureFactory(key="seats", name="Seats", meter=None)
    plan = _plan(api)
    choices = dict(admin_client.get(_url("catalog_plan_card_add", plan.pk, "default")).context["form"]
                   .fields["feature"].choices)
    assert choices["seats"] == "Seats (seats), no meter"


# --- add-ons: the same editor -----------------------------------------------------------------------------------------


def test_addon_is_created_priced_published_versioned_and_archived(admin_client):
    from catalog.models import Addon

    response = admin_client.post(_url("catalog_addon_add"), {
        "name": "Extra seats", "key": "extra_seats", "currency": "USD", "instance_type": "multiple",
        "description": ""})
    addon = Addon.objects.get(key="extra_seats")
    assert response["Location"] == _url("catalog_addon_change", addon.pk)

    # a multiple-instance add-on takes flat prices only: the service refuses to publish a per-unit price
    FeatureFactory(key="tokens")
    admin_client.post(_url("catalog_addon_card_add", addon.pk), card_form(
        key="tokens", name="Tokens", type="usage_based", feature="tokens", price_model="unit", amount="0.01"))
    response = admin_client.post(_url("catalog_addon_do", addon.pk, "publish"), {"when": "now"})
    assert "allows only flat prices" in response.content.decode()
    assert Addon.objects.get(pk=addon.pk).status == "draft"

    admin_client.post(_url("catalog_addon_card_remove", addon.pk, "tokens"))
    admin_client.post(_url("catalog_addon_card_add", addon.pk), card_form(key="seat", name="Seat", amount="5"))
    page = admin_client.get(_url("catalog_addon_change", addon.pk)).content.decode()
    assert "$5.00 every month, in advance" in page and "Tokens" not in page
    admin_client.post(_url("catalog_addon_do", addon.pk, "publish"), {"when": "now"})
    assert Addon.objects.get(pk=addon.pk).status == "active"

    admin_client.post(_url("catalog_addon_do", addon.pk, "new_version"), {})
    draft = Addon.objects.get(key="extra_seats", version=2)
    assert [c.key for c in draft.rate_cards.all()] == ["seat"]
    admin_client.post(_url("catalog_addon_do", addon.pk, "archive"), {})
    assert Addon.objects.get(pk=addon.pk).status == "archived"
    assert admin_client.post(_url("catalog_addon_delete", addon.pk), {"post": "yes"}).status_code == 403


def test_addon_details_refusal_keeps_the_draft(admin_client, api):
    from catalog.models import Addon

    addon_id = api.post("/api/v1/addons", addon_body(), format="json").json()["id"]
    response = admin_client.post(_url("catalog_addon_details", addon_id),
                                 {"name": "", "instance_type": "single"})
    assert "This field is required" in str(response.context["form"].errors["name"])
    assert Addon.objects.get(pk=addon_id).name == "Extra_Seats"
    admin_client.post(_url("catalog_addon_details", addon_id), {"name": "Seats", "instance_type": "multiple"})
    assert Addon.objects.get(pk=addon_id).name == "Seats"
