"""Plans through the HTTP API: lifecycle, versioning, filters and bad input."""

import datetime as dt

import pytest
import time_machine

from catalog.models import Plan, PlanPhase, RateCard
from tests.factories import FeatureFactory, flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def create(api, body) -> dict:
    response = api.post("/api/v1/plans", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def assert_problem(response, status: int, text: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert text in body["detail"], body["detail"]
    return body


def test_plan_create_returns_draft_with_phases_and_every_price_kind(api):
    # given a metered feature
    FeatureFactory(key="tokens")
    tiered = {
        "type": "tiered",
        "mode": "graduated",
        "tiers": [
            {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0.01"}, "flatPrice": None},
            {"upToAmount": None, "unitPrice": {"type": "unit", "amount": "0.005"},
             "flatPrice": {"type": "flat", "amount": "2"}},
        ],
        "minimumAmount": "5",
    }
    phases = [
        {"key": "trial", "name": "Trial", "duration": "P1M", "rateCards": [flat_fee_card(amount="0")]},
        {
            "key": "main",
            "name": "Main",
            "duration": None,
            "rateCards": [
                flat_fee_card(amount="49.99", discounts={"percentage": {"percentage": 10}}),
                usage_card("tokens", key="tokens_tiered", price=tiered,
                           entitlementTemplate={"type": "metered", "isSoftLimit": True, "issueAfterReset": "100"}),
                usage_card("tokens", key="tokens_pkg",
                           price={"type": "package", "amount": "1.50", "quantityPerPackage": "1000", "maximumAmount": "99"}),
                usage_card("tokens", key="tokens_dyn", price={"type": "dynamic", "multiplier": "1.2"},
                           discounts={"usage": {"quantity": "500"}}),
                flat_fee_card(key="setup", amount="100", cadence=None, taxConfig={"stripe": {"code": "txcd_10000000"}}),
            ],
        },
    ]

    # when
    body = create(api, plan_body(phases=phases, description="The pro plan"))

    # then
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert "effectiveFrom" not in body  # optional fields without a value are left out, as OpenMeter does
    assert [p["key"] for p in body["phases"]] == ["trial", "main"]
    cards = {c["key"]: c for c in body["phases"][1]["rateCards"]}
    assert cards["base_fee"]["price"] == {"type": "flat", "amount": "49.99", "paymentTerm": "in_advance"}
    assert cards["base_fee"]["discounts"] == {"percentage": {"percentage": 10}}
    assert cards["tokens_tiered"]["price"]["tiers"][1] == {
        "unitPrice": {"type": "unit", "amount": "0.005"}, "flatPrice": {"type": "flat", "amount": "2"},
    }
    assert cards["tokens_tiered"]["price"]["minimumAmount"] == "5"
    assert cards["tokens_tiered"]["entitlementTemplate"]["isSoftLimit"] is True
    assert cards["tokens_pkg"]["price"]["quantityPerPackage"] == "1000"
    assert cards["tokens_dyn"]["price"] == {"type": "dynamic", "multiplier": "1.2"}
    assert cards["setup"]["billingCadence"] is None
    # the last phase is open-ended and every phase has rate cards: nothing stops publishing
    assert body["validationErrors"] is None


def test_typed_price_readers_return_decimals(api):
    FeatureFactory(key="tokens")
    tiered = {"type": "tiered", "mode": "volume", "tiers": [
        {"upToAmount": "10", "unitPrice": {"type": "unit", "amount": "1.10"}},
        {"unitPrice": {"type": "unit", "amount": "0.90"}},
    ]}
    create(api, plan_body(phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [
        usage_card("tokens", price=tiered, discounts={"percentage": {"percentage": "12.5"}})]}]))
    card = RateCard.objects.get(key="tokens")
    from decimal import Decimal

    from catalog.pricing_models import PriceTier, TieredPrice
    assert card.price == TieredPrice(mode="volume", tiers=(
        PriceTier(up_to_amount=Decimal("10"), flat_amount=None, unit_amount=Decimal("1.1")),
        PriceTier(up_to_amount=None, flat_amount=None, unit_amount=Decimal("0.9")),
    ))
    assert card.discounts.percentage == Decimal("12.5")


def test_publish_sets_effective_from_and_closes_previous_version(api):
    # given v1 published at T0
    v1 = create(api, plan_body())
    with time_machine.travel(T0, tick=False):
        published = api.post(f"/api/v1/plans/{v1['id']}/publish").json()
    assert published["status"] == "active"
    assert published["effectiveFrom"] == "2026-01-10T12:00:00Z"

    # when v2 is created with the same key and published a day later
    v2 = create(api, plan_body())
    assert v2["version"] == 2
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        api.post(f"/api/v1/plans/{v2['id']}/publish")
        old = api.get(f"/api/v1/plans/{v1['id']}").json()
        by_key = api.get("/api/v1/plans/pro").json()

    # then v1 ends where v2 starts, and the key resolves to v2
    assert old["effectiveTo"] == "2026-01-11T12:00:00Z"
    assert old["status"] == "archived"
    assert by_key["id"] == v2["id"]


def test_get_by_key_prefers_published_unless_include_latest(api):
    v1 = create(api, plan_body())
    api.post(f"/api/v1/plans/{v1['id']}/publish")
    v2 = create(api, plan_body())

    assert api.get("/api/v1/plans/pro").json()["id"] == v1["id"]
    assert api.get("/api/v1/plans/pro?includeLatest=true").json()["id"] == v2["id"]
    assert_problem(api.get("/api/v1/plans/nope"), 404, "not found")


def test_only_one_draft_per_key(api):
    create(api, plan_body())
    response = api.post("/api/v1/plans", plan_body(), format="json")
    assert_problem(response, 400, "only a single draft version is allowed")
    assert Plan.objects.count() == 1


def test_update_replaces_draft_phases(api):
    plan = create(api, plan_body())
    body = plan_body(phases=[{"key": "only", "name": "Only", "duration": None, "rateCards": [flat_fee_card(amount="20")]}])
    del body["key"], body["currency"]

    response = api.put(f"/api/v1/plans/{plan['id']}", body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["phases"][0]["rateCards"][0]["price"]["amount"] == "20"
    assert PlanPhase.objects.filter(plan_id=plan["id"]).count() == 1


def test_editing_a_published_plan_is_400_and_changes_nothing(api):
    plan = create(api, plan_body())
    api.post(f"/api/v1/plans/{plan['id']}/publish")
    body = plan_body(phases=[{"key": "x", "name": "X", "duration": None, "rateCards": [flat_fee_card(amount="99")]}])

    response = api.put(f"/api/v1/plans/{plan['id']}", body, format="json")

    assert_problem(response, 400, "can be updated, but")
    assert RateCard.objects.get().price_json["amount"] == "10"


def test_publishing_an_invalid_plan_is_400_with_validation_errors(api):
    # given a draft whose last phase has a duration and whose first phase is empty
    phases = [
        {"key": "empty", "name": "Empty", "duration": "P1M", "rateCards": []},
        {"key": "end", "name": "End", "duration": "P2M", "rateCards": [flat_fee_card(cadence="P1Y")]},
    ]
    plan = create(api, plan_body(phases=phases, alignment={"billablesMustAlign": True}))
    assert {e["code"] for e in plan["validationErrors"]} == {
        "plan_last_phase_not_open_ended", "plan_phase_has_no_rate_cards", "rate_card_billing_cadence_unaligned",
    }

    # when
    response = api.post(f"/api/v1/plans/{plan['id']}/publish")

    # then
    body = assert_problem(response, 400, "cannot be published")
    assert len(body["extensions"]["validationErrors"]) == 3
    assert Plan.objects.get().effective_from is None


def test_a_phase_need_not_last_whole_billing_periods(api):
    # upstream (productcatalog/plan.go, phase.go) has no such rule: a 10-day trial before a monthly phase publishes,
    # and billing cuts the periods at the phase change
    phases = [
        {"key": "trial", "name": "Trial", "duration": "P10D", "rateCards": [flat_fee_card()]},
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card()]},
    ]
    plan = create(api, plan_body(phases=phases))
    published = api.post(f"/api/v1/plans/{plan['id']}/publish")
    assert published.status_code == 200, published.content
    assert published.json()["status"] == "active"


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (usage_card("nope"), "no feature with key 'nope'"),
        ({**usage_card("x"), "featureKey": None}, "a usage-based price needs a feature with a meter"),
        (usage_card("unmetered"), "has no meter"),
        (usage_card("tokens", price={"type": "tiered", "mode": "volume", "tiers": [
            {"upToAmount": "100", "unitPrice": {"type": "unit", "amount": "1"}},
            {"upToAmount": "50", "unitPrice": {"type": "unit", "amount": "1"}},
            {"unitPrice": {"type": "unit", "amount": "1"}},
        ]}), "ascending order"),
        (usage_card("tokens", price={"type": "tiered", "mode": "volume", "tiers": [
            {"upToAmount": "100", "unitPrice": {"type": "unit", "amount": "1"}},
        ]}), "the last tier must be open-ended"),
        (usage_card("tokens", price={"type": "tiered", "mode": "volume", "tiers": [
            {"unitPrice": {"type": "unit", "amount": "1"}},
            {"upToAmount": "100", "unitPrice": {"type": "unit", "amount": "1"}},
        ]}), "only the last tier may be open-ended"),
        (usage_card("tokens", price={"type": "package", "amount": "1", "quantityPerPackage": "0"}), "quantityPerPackage"),
        (usage_card("tokens", price={"type": "unit", "amount": "1", "minimumAmount": "10", "maximumAmount": "5"}),
         "minimumAmount: must not be greater than maximumAmount"),
        (usage_card("tokens", price={"type": "unit", "amount": "-1"}), "price.amount"),
        (usage_card("tokens", price={"type": "bogus"}), "price.type"),
        (flat_fee_card(price={"type": "unit", "amount": "1"}), "a flat_fee rate card takes a flat price"),
        (flat_fee_card(entitlementTemplate={"type": "boolean"}), "an entitlement template needs a featureKey"),
        (usage_card("tokens", cadence="one month"), "invalid ISO 8601 duration"),
        (flat_fee_card(discounts={"usage": {"quantity": "5"}}), "percentage discounts only"),
    ],
)
def test_bad_rate_cards_are_400_and_nothing_is_written(api, card, message):
    FeatureFactory(key="tokens")
    FeatureFactory(key="unmetered", meter=None)
    body = plan_body(phases=[{"key": "main", "name": "Main", "duration": None, "rateCards": [card]}])

    response = api.post("/api/v1/plans", body, format="json")

    assert_problem(response, 400, message)
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"currency": "XXQ"}, "currency"),
        ({"billingCadence": "monthly"}, "billingCadence"),
        ({"key": "Not A Key"}, "key"),
        ({"phases": []}, "phases"),
        ({"phases": [
            {"key": "a", "name": "A", "duration": None, "rateCards": [flat_fee_card()]},
            {"key": "b", "name": "B", "duration": None, "rateCards": [flat_fee_card()]},
        ]}, "only the last phase may be open-ended"),
        ({"phases": [
            {"key": "a", "name": "A", "duration": "P1M", "rateCards": [flat_fee_card()]},
            {"key": "a", "name": "A", "duration": None, "rateCards": [flat_fee_card()]},
        ]}, "duplicate phase key"),
        ({"phases": [{"key": "a", "name": "A", "duration": None, "rateCards": [flat_fee_card(), flat_fee_card()]}]},
         "duplicate rate card key"),
    ],
)
def test_bad_plans_are_400(api, change, message):
    response = api.post("/api/v1/plans", {**plan_body(), **change}, format="json")
    assert_problem(response, 400, message)
    assert not Plan.objects.exists()


def test_archive_only_active_and_delete_rules(api):
    plan = create(api, plan_body())
    assert_problem(api.post(f"/api/v1/plans/{plan['id']}/archive"), 400, "can be archived")
    api.post(f"/api/v1/plans/{plan['id']}/publish")
    assert_problem(api.delete(f"/api/v1/plans/{plan['id']}"), 400, "can be deleted")

    archived = api.post(f"/api/v1/plans/{plan['id']}/archive")
    assert archived.status_code == 200
    assert archived.json()["status"] == "archived"

    assert api.delete(f"/api/v1/plans/{plan['id']}").status_code == 204
    assert Plan.objects.get().deleted_at is not None
    assert api.get("/api/v1/plans").json()["totalCount"] == 0
    assert api.get("/api/v1/plans?includeDeleted=true").json()["totalCount"] == 1


def test_list_filters_and_pages(api):
    with time_machine.travel(T0, tick=False):
        a1 = create(api, plan_body("alpha"))
        api.post(f"/api/v1/plans/{a1['id']}/publish")
        a2 = create(api, plan_body("alpha"))
        create(api, plan_body("beta", currency="EUR"))

    def keys(query: str) -> list[tuple[str, int]]:
        with time_machine.travel(T0, tick=False):
            body = api.get(f"/api/v1/plans?{query}").json()
        return [(p["key"], p["version"]) for p in body["items"]]

    assert keys("") == [("alpha", 1), ("alpha", 2), ("beta", 1)]
    assert keys("key=alpha") == [("alpha", 1), ("alpha", 2)]
    assert keys("keyVersion[alpha]=2") == [("alpha", 2)]
    assert keys("status=active") == [("alpha", 1)]
    assert keys("status=draft&currency=EUR") == [("beta", 1)]
    assert keys(f"id={a2['id']}") == [("alpha", 2)]
    assert keys("orderBy=version&order=DESC") == [("alpha", 2), ("beta", 1), ("alpha", 1)]
    page = api.get("/api/v1/plans?page=2&pageSize=2").json()
    assert (page["totalCount"], page["page"], page["pageSize"], len(page["items"])) == (3, 2, 2, 1)
    assert_problem(api.get("/api/v1/plans?status=bogus"), 400, "status")
