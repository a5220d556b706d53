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
        # earlier than the last reset, or at it: a validation error (400), as upstream
        for when in (at(days=2), at(days=3)):
            again = api.post(f"{ENT}/reset", {"effectiveAt": z(when)}, format="json")
            assert again.status_code == 400
            assert again["Content-Type"] == "application/problem+json"
            assert "last reset" in again.json()["detail"] or "current usage period" in again.json()["detail"]
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
    snapshot = BalanceSnapshot.objects.get(entitlement=entitlement, checkpoint=False)
    assert snapshot.at == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert {k: int(float(v)) for k, v in snapshot.balances.items()} == {entitlement.grants.get().pk: 70}
    assert value(api, at(days=35)) == before_job


def test_late_events_within_grace_are_counted_after_a_reset(api, metered):
    metered()
    use(at(days=2), 30)
    with time_machine.travel(at(days=10), tick=False):
        assert api.post(f"{ENT}/reset", {}, format="json").status_code == 204
    assert value(api, at(days=10, hours=12))["balance"] == 70
    # an event from 18:00 the day before the reset arrives late (after the reset, 18 hours old: within the
    # one-day grace window): the rollover is now 100 - 30 - 20 = 50
    use(at(days=9, hours=18), 20)
    assert value(api, at(days=10, hours=12))["balance"] == 50
    assert not BalanceSnapshot.objects.filter(checkpoint=False).exists()  # the reset is younger than the grace window
    # the rule's other side: an event older than the grace window (day 5, 5.5 days old) is behind the day-9
    # checkpoint and is not counted until balances are recomputed
    checkpoint = BalanceSnapshot.objects.get(checkpoint=True)
    assert checkpoint.at == at(days=9)
    use(at(days=5), 7)
    assert value(api, at(days=10, hours=12))["balance"] == 50
    balance.invalidate_snapshots(entitlement=Entitlement.objects.get())
    assert value(api, at(days=10, hours=12))["balance"] == 43


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
    use(at(days=33), 5)
    assert value(api, at(days=40))["balance"] == 65
    assert BalanceSnapshot.objects.count() == 2  # the April 1 boundary and the day-39 checkpoint
    with time_machine.travel(at(days=40), tick=False):
        # April 3 is in the current usage period (from April 1): allowed, and the day-39 checkpoint goes
        response = api.post(f"{ENT}/grants", {"amount": 10, "effectiveAt": z(at(days=33)), "maxRolloverAmount": 0},
                            format="json")
        assert response.status_code == 201
    assert list(BalanceSnapshot.objects.values_list("at", flat=True)) == [dt.datetime(2026, 4, 1, tzinfo=dt.UTC)]
    # April 1: 70 rolled over; April 3: the 5 burns the older grant first (70 → 65), the new 10 keeps 10 → 75
    assert value(api, at(days=40))["balance"] == 75


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


def test_values_from_snapshots_equal_a_full_recompute(api, metered):
    entitlement = metered(preserveOverageAtReset=True)
    with time_machine.travel(at(days=20), tick=False):
        api.post(f"{ENT}/grants", {"amount": 40, "effectiveAt": z(at(days=20)), "priority": 3,
                                   "expiration": {"duration": "WEEK", "count": 3}, "maxRolloverAmount": 15},
                 format="json")
        api.post(f"{ENT}/reset", {"effectiveAt": z(at(days=18)), "retainAnchor": True}, format="json")
    for day, tokens in [(1, 50), (10, 70), (19, 5), (25, 30), (33, 12), (47, 80), (70, 1)]:
        use(at(days=day, hours=3), tokens)
    times = [at(days=d, hours=5) for d in (26, 40, 50, 75)]
    cached = [value(api, when) for when in times]  # saves boundary snapshots and checkpoints along the way
    assert BalanceSnapshot.objects.filter(checkpoint=False).count() >= 2
    balance.invalidate_snapshots(entitlement=entitlement)
    fresh = []
    for when in times:
        balance.invalidate_snapshots(entitlement=entitlement)
        fresh.append(value(api, when))
    assert cached == fresh


def test_void_from_a_past_time_within_the_period(api, metered):
    metered()
    use(at(days=1), 30)
    use(at(days=3), 10)
    with time_machine.travel(at(days=4), tick=False):
        grant_id = api.get(f"{ENT}/grants").json()["items"][0]["id"]
        assert api.delete(f"/api/v1/grants/{grant_id}", {"at": z(at(days=2))},
                          QUERY_STRING=f"at={z(at(days=2))}").status_code == 204
        v = api.get(f"{ENT}/value").json()
    # the 30 used on day 1 stays burnt; from day 2 the grant is void: the 10 of day 3 is overage
    assert (v["balance"], v["usage"], v["overage"], v["hasAccess"]) == (0, 40, 10, False)
    with time_machine.travel(at(days=40), tick=False):
        # a void before the current period is refused
        other = api.post(f"{ENT}/grants", {"amount": 5, "effectiveAt": z(at(days=35))}, format="json").json()
        late = api.delete(f"/api/v1/grants/{other['id']}", QUERY_STRING=f"at={z(at(days=20))}")
        assert late.status_code == 409


def test_preserve_overage_at_reset_on_the_automatic_boundary(api, metered):
    metered(preserveOverageAtReset=True, issueAfterReset=50)
    # March: 100 + 50 granted, 170 used → overage 20
    use(at(days=3), 170)
    v = value(api, at(days=32))
    # April 1: the 100 grant rolls over 0; issueAfterReset gives 50 (min = max = 50) and pays the 20: 30 left
    assert (v["balance"], v["overage"], v["usage"]) == (30, 0, 0)
