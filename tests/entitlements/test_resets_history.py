"""Manual and automatic resets, snapshots and late events, and the windowed history."""

import datetime as dt

import pytest
import time_machine

from entitlements import balance
from entitlements.models import BalanceSnapshot, Entitlement, UsageReset
from entitlements.services import entitlement_reset_due
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ENT = "/api/v2/customers/acme/entitlements/tokens"


def at(days=0, hours=0, minutes=0):
    return T0 + dt.timedelta(days=days, hours=hours, minutes=minutes)


def z(when):
    return when.isoformat().replace("+00:00", "Z")


def use(when, tokens, subject="acme"):
    ingest([{"subject": subject, "time": when, "data": {"tokens": tokens, "model": "m"}}])


@pytest.fixture
def metered(api):
    """A monthly metered entitlement anchored on March 1 with one 100-token grant (rollover up to 100)."""
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    CustomerFactory(key="acme")

    def make(**extra):
        with time_machine.travel(T0, tick=False):
            body = {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "MONTH", "anchor": z(T0)},
                    **extra}
            response = api.post("/api/v2/customers/acme/entitlements", body, format="json")
            assert response.status_code == 201, response.json()
            g = api.post(f"{ENT}/grants", {"amount": 100, "effectiveAt": z(T0)}, format="json")
            assert g.status_code == 201
        return Entitlement.objects.get(pk=response.json()["id"])

    return make


def value(api, when):
    with time_machine.travel(when, tick=False):
        response = api.get(f"{ENT}/value")
    assert response.status_code == 200, response.json()
    return response.json()


def test_manual_reset_rolls_over_and_reanchors(api, metered):
    metered()
    use(at(days=2), 30)
    with time_machine.travel(at(days=5), tick=False):
        response = api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=5)), "retainAnchor": False}, format="json")
        assert response.status_code == 204
        entitlement = api.get(ENT).json()
    assert entitlement["currentUsagePeriod"] == {"from": z(at(days=5)), "to": "2026-04-06T00:00:00Z"}
    assert entitlement["lastReset"] == z(at(days=5))
    use(at(days=6), 10)
    v = value(api, at(days=7))
    # 100 - 30 = 70 rolled over (max 100); then 10 used: 60
    assert (v["balance"], v["usage"], v["overage"]) == (60, 10, 0)


def test_reset_retaining_the_anchor_keeps_the_monthly_boundary(api, metered):
    metered()
    with time_machine.travel(at(days=5), tick=False):
        assert api.post(f"{ENT}/reset", {"retainAnchor": True}, format="json").status_code == 204
        assert api.get(ENT).json()["currentUsagePeriod"] == {"from": z(at(days=5)), "to": "2026-04-01T00:00:00Z"}


def test_reset_preserve_overage_overrides_the_entitlement_default(api, metered):
    metered(preserveOverageAtReset=False)
    use(at(days=1), 130)  # overage 30
    with time_machine.travel(at(days=2), tick=False):
        assert api.post(f"{ENT}/reset", {"preserveOverage": True}, format="json").status_code == 204
    v = value(api, at(days=3))
    # balance 0 rolls over as 0 (min 0), the 30 of overage is kept
    assert (v["balance"], v["overage"], v["usage"]) == (0, 30, 0)


def test_bad_resets_are_rejected_and_write_nothing(api, metered):
    metered()
    with time_machine.travel(at(days=5), tick=False):
        future = api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=6))}, format="json")
        assert future.status_code == 400
        assert future["Content-Type"] == "application/problem+json"
        assert api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=3))}, format="json").status_code == 204
        before = api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=2))}, format="json")
        assert before.status_code == 409
    assert list(UsageReset.objects.values_list("reset_at", flat=True)) == [at(days=3)]


def test_automatic_reset_job_is_idempotent_and_values_do_not_need_it(api, metered):
    entitlement = metered()
    use(at(days=2), 30)
    use(at(days=33), 5)
    before_job = value(api, at(days=35))
    # March: 100 - 30 = 70 → April 1 rollover min(100, 70) = 70; April: 70 - 5 = 65
    assert (before_job["balance"], before_job["usage"]) == (65, 5)
    with time_machine.travel(at(days=35), tick=False):
        assert entitlement_reset_due() == 1
        assert entitlement_reset_due() == 0
    assert list(UsageReset.objects.values_list("reset_at", "automatic")) == [(dt.datetime(2026, 4, 1, tzinfo=dt.UTC), True)]
    snapshot = BalanceSnapshot.objects.get(entitlement=entitlement)
    assert snapshot.at == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert {k: int(float(v)) for k, v in snapshot.balances.items()} == {entitlement.grants.get().pk: 70}
    assert value(api, at(days=35)) == before_job


def test_late_events_within_grace_are_counted_after_a_reset(api, metered):
    metered()
    use(at(days=2), 30)
    with time_machine.travel(at(days=10), tick=False):
        assert api.post(f"{ENT}/reset", {}, format="json").status_code == 204
    assert value(api, at(days=10, hours=12))["balance"] == 70
    # an event from day 5 arrives late (after the reset, within the grace window): rollover is now 100 - 50
    use(at(days=5), 20)
    assert value(api, at(days=10, hours=12))["balance"] == 50
    assert not BalanceSnapshot.objects.exists()  # the reset is younger than the grace window


def test_snapshot_freezes_a_boundary_older_than_grace_and_can_be_recomputed(api, metered):
    entitlement = metered()
    use(at(days=2), 30)
    assert value(api, at(days=40))["balance"] == 70
    assert BalanceSnapshot.objects.filter(at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC)).exists()
    # an event backdated by more than the grace window is not reflected past the frozen boundary ...
    use(at(days=3), 20)
    assert value(api, at(days=40))["balance"] == 70
    # ... until the snapshots are recomputed (admin action "Recompute balances")
    balance.invalidate_snapshots(entitlement=entitlement)
    assert value(api, at(days=40))["balance"] == 50


def test_grant_created_with_a_past_effective_date_invalidates_later_snapshots(api, metered):
    metered()
    use(at(days=2), 30)
    assert value(api, at(days=40))["balance"] == 70
    assert BalanceSnapshot.objects.count() == 1
    with time_machine.travel(at(days=40), tick=False):
        response = api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": z(at(days=1)), "maxRolloverAmount": 0},
                            format="json")
        assert response.status_code == 201
    assert BalanceSnapshot.objects.count() == 0
    # March: 30 burns the older grant first: 100 → 70, the new 10 keeps 10; April 1: 70 and min(0, 10) = 0
    assert value(api, at(days=40))["balance"] == 70


def test_history_windows_and_burndown_in_a_non_utc_zone(api, metered):
    metered()
    # 10 at 22:00 New York on Mar 1 (03:00Z Mar 2), 5 at 01:00 New York on Mar 2 (06:00Z)
    use(dt.datetime(2026, 3, 2, 3, tzinfo=dt.UTC), 10)
    use(dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC), 5)
    query = {"windowSize": "DAY", "from": z(T0), "to": z(at(days=3))}
    with time_machine.travel(at(days=4), tick=False):
        utc = api.get(f"{ENT}/history", query).json()
        ny = api.get(f"{ENT}/history", {**query, "windowTimeZone": "America/New_York"}).json()
    assert utc["windowedHistory"] == [
        {"period": {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}, "usage": 15, "balanceAtStart": 100}
    ]
    assert ny["windowedHistory"] == [
        {"period": {"from": "2026-03-01T05:00:00Z", "to": "2026-03-02T05:00:00Z"}, "usage": 10, "balanceAtStart": 100},
        {"period": {"from": "2026-03-02T05:00:00Z", "to": "2026-03-03T05:00:00Z"}, "usage": 5, "balanceAtStart": 90},
    ]
    total = sum(s["usage"] for s in utc["burndownHistory"])
    assert total == 15
    last = utc["burndownHistory"][-1]
    assert last["balanceAtEnd"] == 85 and last["overage"] == 0


def test_history_requires_window_size_and_a_valid_zone(api, metered):
    metered()
    with time_machine.travel(at(days=1), tick=False):
        assert api.get(f"{ENT}/history").status_code == 400
        assert api.get(f"{ENT}/history", {"windowSize": "DAY", "windowTimeZone": "Mars/Base"}).status_code == 400
        assert api.get(f"{ENT}/history", {"windowSize": "WEEK"}).status_code == 400


def test_recurring_grant_through_the_api(api):
    FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    CustomerFactory(key="acme")
    with time_machine.travel(T0, tick=False):
        api.post("/api/v2/customers/acme/entitlements",
                 {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "MONTH"}}, format="json")
        g = api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": z(T0), "recurrence": {"interval": "WEEK"}},
                     format="json").json()
    assert g["recurrence"] == {"interval": "WEEK", "anchor": z(T0), "intervalISO": "P1W"}
    use(at(days=1), 8)
    use(at(days=8), 3)
    # week 1: 10 - 8 = 2; re-issued on day 7 to 10; week 2: 10 - 3 = 7
    v = value(api, at(days=9))
    assert (v["balance"], v["usage"]) == (7, 11)
