"""Metered entitlements on LATEST meters (grants are limits) and on features with advanced group-by filters."""

import datetime as dt

import pytest
import time_machine

from entitlements import balance
from entitlements.models import Entitlement
from entitlements.services import entitlement_value_of
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SEATS = "/api/v2/customers/acme/entitlements/seats"
TOKENS = "/api/v2/customers/acme/entitlements/tokens"


def at(days=0, hours=0):
    return T0 + dt.timedelta(days=days, hours=hours)


def z(when):
    return when.isoformat().replace("+00:00", "Z")


def entitle(api, feature_key, **extra):
    with time_machine.travel(T0, tick=False):
        body = {"type": "metered", "featureKey": feature_key, "usagePeriod": {"interval": "MONTH", "anchor": z(T0)},
                **extra}
        response = api.post("/api/v2/customers/acme/entitlements", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def grant(api, path, amount, when=T0, **extra):
    with time_machine.travel(when, tick=False):
        response = api.post(f"{path}/grants", {"amount": amount, "effectiveAt": z(when), **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def value(api, path, when):
    with time_machine.travel(when, tick=False):
        response = api.get(f"{path}/value")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def seats(api):
    """A LATEST meter of seats in use (`$.seats`), a feature on it, and customer acme with two subjects."""
    meter = MeterFactory(slug="seats", aggregation="LATEST", event_type="seats", value_property="$.seats", group_by={})
    FeatureFactory(key="seats", meter=meter)
    CustomerFactory(key="acme", subjects=["acme-eu"])


def report(when, count, subject="acme"):
    ingest([{"subject": subject, "time": when, "data": {"seats": count}}], type="seats")


def test_latest_meter_grants_are_limits(api, seats):
    entitle(api, "seats")
    limit = grant(api, SEATS, 10)
    report(at(days=1), 3)
    report(at(days=2), 7, subject="acme-eu")
    # the level is the customer's latest report (either subject): 7 of 10
    v = value(api, SEATS, at(days=3))
    assert v == {"hasAccess": True, "balance": 3, "usage": 7, "overage": 0, "totalAvailableGrantAmount": 10,
                 "grantBalances": {limit["id"]: 3}}
    report(at(days=4), 12)
    # 12 against 10: no access, overage 2
    v = value(api, SEATS, at(days=5))
    assert (v["hasAccess"], v["balance"], v["usage"], v["overage"]) == (False, 0, 12, 2)
    # back to 5 seats: the limit is not used up, 10 - 5 = 5 and no overage is kept
    report(at(days=6), 5)
    v = value(api, SEATS, at(days=7))
    assert (v["hasAccess"], v["balance"], v["usage"], v["overage"], v["totalAvailableGrantAmount"]) == (
        True, 5, 5, 0, 10)


def test_latest_limits_add_up_and_a_new_period_starts_without_a_level(api, seats):
    entitle(api, "seats", isSoftLimit=True)
    grant(api, SEATS, 10, priority=1)
    grant(api, SEATS, 5, when=at(days=10), priority=2)  # an add-on raising the limit from day 10
    report(at(days=1), 12)
    # day 5: 12 against 10 → overage 2, but a soft limit keeps access
    v = value(api, SEATS, at(days=5))
    assert (v["hasAccess"], v["balance"], v["overage"]) == (True, 0, 2)
    # day 11: the same level against 10 + 5 = 15 → 3 left
    v = value(api, SEATS, at(days=11))
    assert (v["balance"], v["usage"], v["overage"], v["totalAvailableGrantAmount"]) == (3, 12, 0, 15)
    # April (new usage period): no report yet this period → level 0, both limits in full
    v = value(api, SEATS, at(days=32))
    assert (v["balance"], v["usage"], v["overage"]) == (15, 0, 0)


def test_latest_values_are_the_same_from_snapshots_and_from_scratch(api, seats):
    created = entitle(api, "seats", preserveOverageAtReset=True)
    grant(api, SEATS, 10, maxRolloverAmount=0)
    for day, count in [(1, 4), (20, 11), (33, 2), (45, 9)]:
        report(at(days=day, hours=3), count)
    when = at(days=50)
    cached = value(api, SEATS, when)  # saves the April 1 boundary and a checkpoint
    entitlement = Entitlement.objects.get(pk=created["id"])
    assert entitlement.snapshots.count() == 2
    balance.invalidate_snapshots(entitlement=entitlement)
    # April: latest report 9 (day 45) against the limit 10; March's overage and the rollover of 0 change nothing
    assert cached == value(api, SEATS, when)
    assert (cached["balance"], cached["usage"], cached["overage"]) == (1, 9, 0)


def test_latest_history_shows_the_level_at_the_end_of_each_window(api, seats):
    entitle(api, "seats")
    grant(api, SEATS, 10)
    report(at(hours=2), 3)
    report(at(hours=5), 6)
    report(at(days=2, hours=1), 4)
    with time_machine.travel(at(days=3), tick=False):
        body = api.get(f"{SEATS}/history", {"windowSize": "DAY", "from": z(T0), "to": z(at(days=3))}).json()
    # day 1 ends at 6 seats; day 2 has no report and stays at 6; day 3 ends at 4
    assert body["windowedHistory"] == [
        {"period": {"from": z(T0), "to": z(at(days=1))}, "usage": 6, "balanceAtStart": 10},
        {"period": {"from": z(at(days=1)), "to": z(at(days=2))}, "usage": 6, "balanceAtStart": 10},
        {"period": {"from": z(at(days=2)), "to": z(at(days=3))}, "usage": 4, "balanceAtStart": 10},
    ]


@pytest.fixture
def tokens(api):
    """A SUM meter of tokens grouped by model and type, and customer acme."""
    MeterFactory(slug="tokens", group_by={"model": "$.model", "type": "$.type"})
    CustomerFactory(key="acme")


def use(when, tokens, model, type="input"):
    ingest([{"subject": "acme", "time": when, "data": {"tokens": tokens, "model": model, "type": type}}])


def feature_api(api, **filters):
    response = api.post("/api/v1/features", {"key": "tokens", "name": "Tokens", "meterSlug": "tokens", **filters},
                        format="json")
    assert response.status_code == 201, response.json()


def test_advanced_group_by_filters_narrow_entitlement_usage(api, tokens):
    feature_api(api, advancedMeterGroupByFilters={"model": {"$in": ["gpt-4", "gpt-4o"]}, "type": {"$ne": "output"}},
                unitCost={"type": "manual", "amount": "0.5"})
    entitle(api, "tokens")
    grant(api, TOKENS, 100)
    use(at(hours=1), 10, "gpt-4")
    use(at(hours=2), 20, "gpt-4o")
    use(at(hours=3), 40, "gpt-4o", type="output")  # type filtered out
    use(at(hours=4), 80, "claude")  # model filtered out
    v = value(api, TOKENS, at(days=1))
    # 10 + 20 = 30 counted; unitCost (0.5) is not applied: usage stays in meter units
    assert (v["usage"], v["balance"], v["overage"]) == (30, 70, 0)


def test_advanced_filters_win_over_the_legacy_exact_filters(api, tokens):
    # as upstream: with advancedMeterGroupByFilters present, meterGroupByFilters is ignored for usage
    feature_api(api, meterGroupByFilters={"model": "claude"}, advancedMeterGroupByFilters={"model": {"$like": "gpt%"}})
    entitle(api, "tokens")
    grant(api, TOKENS, 100)
    use(at(hours=1), 10, "gpt-4")
    use(at(hours=2), 80, "claude")
    v = value(api, TOKENS, at(days=1))
    assert (v["usage"], v["balance"]) == (10, 90)


def test_the_legacy_exact_filters_still_apply_alone(api, tokens):
    feature_api(api, meterGroupByFilters={"model": "claude"})
    entitle(api, "tokens")
    grant(api, TOKENS, 100)
    use(at(hours=1), 10, "gpt-4")
    use(at(hours=2), 80, "claude")
    assert value(api, TOKENS, at(days=1))["usage"] == 80


def test_the_value_read_finds_the_entitlement_by_id_and_by_customer_id(api, tokens):
    feature_api(api)
    created = entitle(api, "tokens")
    grant(api, TOKENS, 100)
    use(at(hours=1), 25, "gpt-4")
    customer_id = created["customerId"]
    with time_machine.travel(at(days=1), tick=False):
        by_id = api.get(f"/api/v2/customers/acme/entitlements/{created['id']}/value").json()
        by_customer_id = api.get(f"/api/v2/customers/{customer_id}/entitlements/tokens/value").json()
        v1 = api.get(f"/api/v1/customers/{customer_id.lower()}/entitlements/tokens/value").json()
        service = entitlement_value_of(customer_id_or_key="acme", id_or_feature_key="tokens")
    assert by_id["balance"] == by_customer_id["balance"] == v1["balance"] == service.balance == 75
    assert "grantBalances" not in v1
