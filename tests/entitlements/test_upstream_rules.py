"""Entitlement rules checked against upstream's Go code (`openmeter/credit`, `openmeter/entitlement/metered`),
through HTTP, with every figure worked out by hand."""

import datetime as dt

import pytest
import time_machine

from entitlements.models import BalanceSnapshot, Grant, UsageReset
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ENT = "/api/v2/customers/acme/entitlements/tokens"


def at(days=0, hours=0, minutes=0):
    return T0 + dt.timedelta(days=days, hours=hours, minutes=minutes)


def z(when):
    return when.isoformat().replace("+00:00", "Z")


def use(when, tokens):
    ingest([{"subject": "acme", "time": when, "data": {"tokens": tokens}}])


@pytest.fixture
def entitlement(api):
    """Monthly metered `tokens` of customer acme (subject acme), measured from March 1 (created on March 1)."""
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    CustomerFactory(key="acme", subjects=["acme"])

    def make(**extra):
        body = {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "MONTH", "anchor": z(T0)},
                **extra}
        with time_machine.travel(T0, tick=False):
            response = api.post("/api/v2/customers/acme/entitlements", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return make


def _value(api, when):
    with time_machine.travel(when, tick=False):
        response = api.get(f"{ENT}/value")
    assert response.status_code == 200, response.json()
    return response.json()


def test_overage_burnt_at_a_reset_counts_as_grant_usage(api, entitlement):
    # upstream's "Should carry over overage to next period": grant 50 (rollover min = max = 50), usage 80 → overage
    # 30; a reset preserving overage rolls 50 over and burns the 30 from it (20 left); 5 more used → balance 15,
    # totalAvailableGrantAmount = 15 + 5 + 30 burnt at the reset = 50
    entitlement(preserveOverageAtReset=True)
    with time_machine.travel(T0, tick=False):
        r = api.post(f"{ENT}/grants", {"amount": 50, "effectiveAt": z(T0), "minRolloverAmount": 50,
                                       "maxRolloverAmount": 50}, format="json")
        assert r.status_code == 201, r.json()
    use(at(days=1), 80)
    with time_machine.travel(at(days=2), tick=False):
        assert api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=2))}, format="json").status_code == 204
    use(at(days=3), 5)
    v = _value(api, at(days=4))
    assert (v["balance"], v["usage"], v["overage"], v["totalAvailableGrantAmount"]) == (15, 5, 0, 50)
    # the same from the reset snapshot the value read saved (and from a fresh computation)
    BalanceSnapshot.objects.all().delete()
    assert _value(api, at(days=4))["totalAvailableGrantAmount"] == 50


def test_a_grant_starting_before_the_current_usage_period_is_a_400(api, entitlement):
    entitlement()
    with time_machine.travel(at(days=40), tick=False):  # the current period started on April 1
        r = api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": z(at(days=20))}, format="json")
        assert r.status_code == 400
        assert r["Content-Type"] == PROBLEM
        assert "before the current usage period" in r.json()["detail"]
        assert api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": "2026-04-01T00:00:00Z"},
                        format="json").status_code == 201
    assert Grant.objects.count() == 1


def test_history_from_before_measure_usage_from_is_a_400(api, entitlement):
    entitlement(measureUsageFrom="2026-03-05T00:00:00Z")
    with time_machine.travel(at(days=10), tick=False):
        r = api.get(f"{ENT}/history", {"windowSize": "DAY", "from": z(at(days=1))})
        assert r.status_code == 400
        assert r["Content-Type"] == PROBLEM
        assert "measureUsageFrom" in r.json()["detail"]
        assert api.get(f"{ENT}/history", {"windowSize": "DAY", "from": "2026-03-05T00:00:00Z"}).status_code == 200


def test_a_reset_earlier_than_the_last_reset_is_a_400(api, entitlement):
    entitlement()
    with time_machine.travel(at(days=10), tick=False):
        assert api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=5))}, format="json").status_code == 204
        r = api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=4))}, format="json")
        assert r.status_code == 400
        assert r["Content-Type"] == PROBLEM
        # through the V1 subject API too
        v1 = api.get("/api/v1/subjects/acme/entitlements").json()[0]["id"]
        r = api.post(f"/api/v1/subjects/acme/entitlements/{v1}/reset", {"effectiveAt": z(at(days=3))}, format="json")
        assert r.status_code == 400
    assert list(UsageReset.objects.values_list("reset_at", flat=True)) == [at(days=5)]


def test_a_value_read_before_the_entitlement_existed(api, entitlement):
    # created on March 1; read as of February 20: V2 and the customer V1 read say no access and nothing else, the
    # V1 read by subject and feature key finds no entitlement (404), as upstream
    created = entitlement()
    before = {"time": "2026-02-20T00:00:00Z"}
    with time_machine.travel(at(days=1), tick=False):
        assert api.get(f"{ENT}/value", before).json() == {"hasAccess": False}
        assert api.get(f"/api/v2/customers/acme/entitlements/{created['id']}/value", before).json() == {
            "hasAccess": False}
        assert api.get("/api/v1/customers/acme/entitlements/tokens/value", before).json() == {"hasAccess": False}
        r = api.get("/api/v1/subjects/acme/entitlements/tokens/value", before)
        assert r.status_code == 404
        assert r["Content-Type"] == PROBLEM
        # by id it is the entitlement, not active then
        assert api.get(f"/api/v1/subjects/acme/entitlements/{created['id']}/value", before).json() == {
            "hasAccess": False}
        # now: a metered value with its figures
        assert set(api.get(f"{ENT}/value").json()) == {
            "hasAccess", "balance", "usage", "overage", "totalAvailableGrantAmount", "grantBalances"}


def test_a_grant_is_effective_from_the_start_of_its_minute(api, entitlement):
    # upstream truncates effectiveAt to the minute: a grant sent for 10:00:30 covers usage from 10:00:00 on
    entitlement()
    use(at(days=1, hours=10) + dt.timedelta(seconds=10), 7)
    with time_machine.travel(at(days=1, hours=11), tick=False):
        r = api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": "2026-03-02T10:00:30Z"}, format="json")
        assert r.status_code == 201, r.json()
        assert r.json()["effectiveAt"] == "2026-03-02T10:00:00Z"
    v = _value(api, at(days=1, hours=11))
    assert (v["balance"], v["usage"], v["overage"]) == (3, 7, 0)
