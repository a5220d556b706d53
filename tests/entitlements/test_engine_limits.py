"""The engine with grants as limits (LATEST meters): hand-computed scenarios and invariants (no database)."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlements.engine import ResetSpec, run
from tests.entitlements.test_engine import DAY, MIN, T0, grant, grants_and_usage, minutes, start_state

D = Decimal


def levels(events):
    """A LATEST meter: the value of the last event in [start, end), 0 without events."""

    def usage(start, end):
        inside = [(at, value) for at, value in sorted(events, key=lambda e: e[0]) if start <= at < end]
        return inside[-1][1] if inside else D(0)

    return usage


def run_levels(until, grants, events, resets=(), split_at=(), state=None):
    return run(state=state or start_state(), until=until, grants=grants, resets=list(resets), usage=levels(events),
               split_at=split_at, limits=True).state


def test_balance_is_the_limit_minus_the_latest_level():
    seats = grant("A", 100)
    events = [(T0 + DAY, D(30)), (T0 + 2 * DAY, D(80)), (T0 + 3 * DAY, D(50))]
    # day 2.5: the level is 80 → 100 - 80 = 20
    s = run_levels(T0 + 2 * DAY + 12 * 60 * MIN, [seats], events)
    assert (s.balance, s.usage, s.overage, s.grant_usage) == (D(20), D(80), D(0), D(80))
    # day 4: the level went down to 50: the limit is back, 100 - 50 = 50 (nothing is burnt for good)
    s = run_levels(T0 + 4 * DAY, [seats], events)
    assert (s.balance, s.usage, s.overage) == (D(50), D(50), D(0))
    assert s.grant_usage + s.balance == D(100)  # totalAvailableGrantAmount = the limit


def test_overage_is_the_level_above_the_limit_and_is_not_carried():
    seats = grant("A", 100)
    events = [(T0 + DAY, D(130)), (T0 + 3 * DAY, D(60))]
    # day 2: 130 against 100 → overage 30
    s = run_levels(T0 + 2 * DAY, [seats], events)
    assert (s.balance, s.overage) == (D(0), D(30))
    # a grant starting on day 2 splits the phases; day 4: level 60 against 100 + 10 → balance 50, no old overage
    extra = grant("B", 10, priority=2, at=T0 + 2 * DAY)
    s = run_levels(T0 + 4 * DAY, [seats, extra], events)
    assert (s.balance, s.overage, s.usage) == (D(50), D(0), D(60))
    assert s.balances == {"A": D(40), "B": D(10)}  # A (priority 1) covers the level first


def test_the_level_before_a_grant_starts_still_counts_after_it():
    # level 120 reported on day 1; a second limit of 50 starts on day 5; nothing is reported since
    a = grant("A", 100)
    b = grant("B", 50, priority=2, at=T0 + 5 * DAY)
    s = run_levels(T0 + 6 * DAY, [a, b], [(T0 + DAY, D(120))])
    # limits 150 against the level 120: A 100 → 0, B 50 → 30
    assert (s.balance, s.overage, s.usage) == (D(30), D(0), D(120))
    assert s.balances == {"A": D(0), "B": D(30)}


def test_an_expired_limit_no_longer_counts():
    a = grant("A", 100)
    b = grant("B", 40, priority=2, expires=T0 + 3 * DAY)
    events = [(T0 + DAY, D(120))]
    # day 2: 140 against 120 → 20 left; day 4: B expired, 100 against 120 → overage 20
    assert run_levels(T0 + 2 * DAY, [a, b], events).balance == D(20)
    s = run_levels(T0 + 4 * DAY, [a, b], events)
    assert (s.balance, s.overage) == (D(0), D(20))


def test_a_reset_restarts_the_level_and_rollover_or_preserved_overage_change_nothing():
    a = grant("A", 100, max_r="0")  # a budget would roll over nothing; a limit is back in full anyway
    events = [(T0 + DAY, D(130)), (T0 + 12 * DAY, D(20))]
    reset = ResetSpec(at=T0 + 10 * DAY, preserve_overage=True)
    # day 11: new period, nothing reported in it yet: level 0, the full limit, the old overage 30 is not kept
    s = run_levels(T0 + 11 * DAY, [a], events, [reset])
    assert (s.balance, s.usage, s.overage, s.period_start) == (D(100), D(0), D(0), T0 + 10 * DAY)
    # day 13: level 20 → 80
    s = run_levels(T0 + 13 * DAY, [a], events, [reset])
    assert (s.balance, s.usage) == (D(80), D(20))


def test_a_read_exactly_at_a_reset_has_the_full_limit():
    a = grant("A", 100)
    s = run_levels(T0 + 10 * DAY, [a], [(T0 + DAY, D(130))], [ResetSpec(at=T0 + 10 * DAY, preserve_overage=True)])
    assert (s.balance, s.usage, s.overage) == (D(100), D(0), D(0))


@settings(max_examples=200, deadline=None)
@given(grants_and_usage(expiring=True), st.lists(minutes, max_size=5), st.lists(st.integers(1, 28), max_size=3,
                                                                                    unique=True))
def test_split_points_and_snapshots_never_change_a_level_value(case, cuts, reset_days):
    """With limits, the value depends only on the limits active at the end and the latest level of the period."""
    grants, events = case
    resets = [ResetSpec(at=T0 + d * DAY, preserve_overage=d % 2 == 0) for d in reset_days]
    until = T0 + 29 * DAY
    whole = run_levels(until, grants, events, resets)
    split = run_levels(until, grants, events, resets, split_at=[T0 + c * MIN for c in cuts])
    assert (split.balances, split.overage, split.usage) == (whole.balances, whole.overage, whole.usage)
    middle = T0 + (cuts[0] if cuts else 0) * MIN
    first = run_levels(middle, grants, events, resets)
    resumed = run_levels(until, grants, events, resets, state=first)
    assert (resumed.balances, resumed.overage, resumed.usage) == (whole.balances, whole.overage, whole.usage)
    # the value itself: limits active at `until` against the period's latest level
    period_start = max([T0, *(r.at for r in resets if r.at <= until)])
    level = levels(events)(period_start, until)
    limit = sum((g.amount for g in grants if g.active_at(until)), D(0))
    assert whole.usage == level
    assert whole.balance == max(D(0), limit - level)
    assert whole.overage == max(D(0), level - limit)
    assert whole.grant_usage + whole.balance == limit

