"""Entitlement values as upstream's credit engine computes them (openmeter/credit/engine: grant.go burn-down order,
reset.go rollover; entitlement/metered/connector.go value and hasAccess), through the official client's V2
entitlement API; every balance derived by hand. Minute resolution throughout."""

from decimal import Decimal

import pytest

from tests.conformance.conftest import at, customer, iso, metered_feature, usage, utc

pytestmark = pytest.mark.django_db

JAN = utc(2026, 1, 1)


def _entitlement(om, cust, feature: str = "tokens", **extra) -> None:
    body = {"type": "metered", "featureKey": feature,
            "usagePeriod": {"interval": "MONTH", "anchor": iso(JAN)}, **extra}
    om.customer_entitlements_v2.post(cust.key, body)


def _grant(om, cust, amount: str, feature: str = "tokens", **extra) -> str:
    return om.customer_entitlement_v2.create_customer_entitlement_grant(
        cust.key, feature, {"amount": amount, "effectiveAt": iso(JAN), **extra}).id


def _value(om, cust, when, feature: str = "tokens"):
    return om.customer_entitlement_v2.get_customer_entitlement_value(cust.key, feature, time=when)


def _numbers(value) -> tuple[Decimal, Decimal, Decimal, Decimal, bool]:
    return (Decimal(str(value.balance)), Decimal(str(value.usage)), Decimal(str(value.overage)),
            Decimal(str(value.total_available_grant_amount)), value.has_access)


def test_burn_down_order_priority_then_expiry_then_expired_balances_lapse(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "burner")
        _entitlement(om, cust)
        a = _grant(om, cust, "50", priority=2)  # never expires
        b = _grant(om, cust, "30", priority=1, expiration={"duration": "WEEK", "count": 1})  # expires Jan 8
        c = _grant(om, cust, "20", priority=1, expiration={"duration": "DAY", "count": 3})  # expires Jan 4
    usage(om, cust.key, "tokens", utc(2026, 1, 2), 25)
    usage(om, cust.key, "tokens", utc(2026, 1, 5), 10)
    usage(om, cust.key, "tokens", utc(2026, 1, 9), 40)
    with at(utc(2026, 1, 3)):
        # Jan 2: 25 burns priority 1 first, the earlier expiry first: c 20 -> 0, b 30 -> 25
        early = _value(om, cust, utc(2026, 1, 3))
    assert _numbers(early) == (75, 25, 0, 100, True)
    assert {k: Decimal(str(v)) for k, v in early.grant_balances.items()} == {a: 50, b: 25, c: 0}
    with at(utc(2026, 1, 10)):
        # Jan 5: 10 more from b (c expired) -> 15; b lapses on Jan 8 with 15 unused; Jan 9: 40 from a -> 10
        # totalAvailableGrantAmount = usage burnt from grants (20 + 15 + 40 = 75) + balance 10 = 85
        value = _value(om, cust, utc(2026, 1, 10))
    assert _numbers(value) == (10, 75, 0, 85, True)
    usage(om, cust.key, "tokens", utc(2026, 1, 10, 12), 15)
    with at(utc(2026, 1, 11)):
        # 15 more: a's 10, then 5 of overage; no balance, no access
        value = _value(om, cust, utc(2026, 1, 11))
    assert _numbers(value) == (0, 90, 5, 85, False)


def test_rollover_at_each_usage_period_reset_is_clamped_between_min_and_max(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "roller")
        _entitlement(om, cust)
        _grant(om, cust, "100", minRolloverAmount="20", maxRolloverAmount="50")
    usage(om, cust.key, "tokens", utc(2026, 1, 10), 30)
    usage(om, cust.key, "tokens", utc(2026, 2, 10), 45)
    with at(utc(2026, 2, 2)):
        # January left 70: min(50, max(70, 20)) = 50 rolls over; the new period starts with no usage
        assert _numbers(_value(om, cust, utc(2026, 2, 2))) == (50, 0, 0, 50, True)
    with at(utc(2026, 3, 2)):
        # February: 50 - 45 = 5 left: min(50, max(5, 20)) = 20 rolls over
        assert _numbers(_value(om, cust, utc(2026, 3, 2))) == (20, 0, 0, 20, True)


def test_v2_grant_rolls_over_its_whole_amount_by_default(om):
    # V2 defaults maxRolloverAmount to the amount (V1: 0), minRolloverAmount to 0
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "keeper")
        _entitlement(om, cust)
        _grant(om, cust, "40")
    usage(om, cust.key, "tokens", utc(2026, 1, 10), 15)
    with at(utc(2026, 2, 2)):
        assert _numbers(_value(om, cust, utc(2026, 2, 2))) == (25, 0, 0, 25, True)


def test_soft_limit_keeps_access_with_overage(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "soft")
        _entitlement(om, cust, isSoftLimit=True)
        _grant(om, cust, "10")
    usage(om, cust.key, "tokens", utc(2026, 1, 5), 15)
    with at(utc(2026, 1, 6)):
        assert _numbers(_value(om, cust, utc(2026, 1, 6))) == (0, 15, 5, 10, True)


def test_has_access_by_entitlement_type(om):
    with at(JAN):
        metered_feature(om, "tokens")
        om.features.create({"key": "sso", "name": "SSO"})
        om.features.create({"key": "seats", "name": "Seats"})
        cust = customer(om, "types")
        _entitlement(om, cust)  # metered without grants: no balance, no access
        om.customer_entitlements_v2.post(cust.key, {"type": "boolean", "featureKey": "sso"})
        om.customer_entitlements_v2.post(cust.key, {"type": "static", "featureKey": "seats",
                                                    "config": '{"limit": 5}'})
    with at(utc(2026, 1, 2)):
        metered = _value(om, cust, utc(2026, 1, 2))
        boolean = _value(om, cust, utc(2026, 1, 2), "sso")
        static = _value(om, cust, utc(2026, 1, 2), "seats")
    assert (metered.has_access, Decimal(str(metered.balance))) == (False, 0)
    assert boolean.has_access is True and boolean.balance is None
    assert (static.has_access, static.config) == (True, '{"limit": 5}')


def test_recurring_grant_refills_to_its_amount_at_each_recurrence(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "daily")
        _entitlement(om, cust)
        _grant(om, cust, "10", recurrence={"interval": "DAY", "anchor": iso(JAN)})
    usage(om, cust.key, "tokens", utc(2026, 1, 1, 9), 7)
    usage(om, cust.key, "tokens", utc(2026, 1, 2, 9), 12)
    with at(utc(2026, 1, 1, 23)):
        assert _numbers(_value(om, cust, utc(2026, 1, 1, 23))) == (3, 7, 0, 10, True)
    with at(utc(2026, 1, 2, 23)):
        # refilled to 10 at midnight; 12 used: 10 burnt, 2 overage; usage counts the whole usage period (19)
        # and the grant has been burnt 7 + 10 = 17
        assert _numbers(_value(om, cust, utc(2026, 1, 2, 23))) == (0, 19, 2, 17, False)


def test_issue_after_reset_grants_its_amount_at_the_start_of_every_period(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "issued")
        _entitlement(om, cust, issue={"amount": 25, "priority": 3})
    usage(om, cust.key, "tokens", utc(2026, 1, 10), 40)
    with at(utc(2026, 1, 11)):
        # the default grant (25) is issued when the first period starts: 40 used, 15 overage
        assert _numbers(_value(om, cust, utc(2026, 1, 11))) == (0, 40, 15, 25, False)
    with at(utc(2026, 2, 2)):
        # at the reset the grant rolls over exactly its amount (min = max = 25); the overage is forgiven
        assert _numbers(_value(om, cust, utc(2026, 2, 2))) == (25, 0, 0, 25, True)


def test_usage_period_anchor_and_measure_usage_from(om):
    with at(utc(2026, 1, 20, 10, 30, 45)):
        metered_feature(om, "tokens")
        cust = customer(om, "anchored")
        usage(om, cust.key, "tokens", utc(2026, 1, 16), 4)
        ent = om.customer_entitlements_v2.post(cust.key, {
            "type": "metered", "featureKey": "tokens",
            "usagePeriod": {"interval": "MONTH", "anchor": "2026-01-15T00:00:00Z"},
            "measureUsageFrom": "CURRENT_PERIOD_START", "isSoftLimit": True})
    # CURRENT_PERIOD_START: the period of the anchor holding the creation time, [Jan 15, Feb 15)
    assert ent["measureUsageFrom"] == "2026-01-15T00:00:00Z"
    assert ent["currentUsagePeriod"] == {"from": "2026-01-15T00:00:00Z", "to": "2026-02-15T00:00:00Z"}
    with at(utc(2026, 1, 21)):
        assert Decimal(str(_value(om, cust, utc(2026, 1, 21)).usage)) == 4

    other = customer(om, "from_now")
    with at(utc(2026, 1, 20, 10, 30, 45)):
        usage(om, other.key, "tokens", utc(2026, 1, 16), 4)
        ent = om.customer_entitlements_v2.post(other.key, {
            "type": "metered", "featureKey": "tokens",
            "usagePeriod": {"interval": "MONTH", "anchor": "2026-01-15T00:00:00Z"}, "isSoftLimit": True})
    # the default measures from creation, truncated to the minute; the first period starts there
    assert ent["measureUsageFrom"] == "2026-01-20T10:30:00Z"
    assert ent["currentUsagePeriod"] == {"from": "2026-01-20T10:30:00Z", "to": "2026-02-15T00:00:00Z"}
    with at(utc(2026, 1, 21)):
        assert Decimal(str(_value(om, other, utc(2026, 1, 21)).usage)) == 0


def test_void_keeps_what_was_burnt_and_a_reset_without_the_anchor_re_anchors(om):
    with at(JAN):
        metered_feature(om, "tokens")
        cust = customer(om, "voider")
        _entitlement(om, cust)
        first = _grant(om, cust, "50", priority=1)
        _grant(om, cust, "50", priority=2)
    usage(om, cust.key, "tokens", utc(2026, 1, 5), 30)
    with at(utc(2026, 1, 10)):
        om.grants.delete(first)  # voided now; the 30 it covered stay burnt from it
    usage(om, cust.key, "tokens", utc(2026, 1, 11), 10)
    with at(utc(2026, 1, 12)):
        # the 10 after the void come from the second grant: 40 left; grant usage 30 + 10 = 40, plus 40 available
        assert _numbers(_value(om, cust, utc(2026, 1, 12))) == (40, 40, 0, 80, True)
    with at(utc(2026, 1, 15, 12)):
        om.customer_entitlement_v2.reset_customer_entitlement(cust.key, "tokens", {"retainAnchor": False})
        ent = om.customer_entitlements_v2.get(cust.key, "tokens")
    # the usage period restarts at the reset: [Jan 15 12:00, Feb 15 12:00); the second grant rolls over its 40
    assert ent["currentUsagePeriod"] == {"from": "2026-01-15T12:00:00Z", "to": "2026-02-15T12:00:00Z"}
    with at(utc(2026, 1, 16)):
        assert _numbers(_value(om, cust, utc(2026, 1, 16))) == (40, 0, 0, 40, True)
