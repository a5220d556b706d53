"""The pure balance engine: hand-computed scenarios and hypothesis invariants (no database)."""

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlements.engine import (
    GrantSpec,
    ManualReset,
    Recurrence,
    ResetSpec,
    State,
    current_period,
    exact_sum,
    parse_interval,
    reset_timeline,
    run,
    usage_ranges,
)

D = Decimal
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
MIN = dt.timedelta(minutes=1)


def events_usage(events):
    def usage(start, end):
        return sum((amount for at, amount in events if start <= at < end), D(0))

    return usage


def grant(gid, amount, *, priority=1, at=T0, expires=None, voided=None, min_r="0", max_r=None, recurrence=None,
          created=None):
    return GrantSpec(
        id=gid, amount=D(amount), priority=priority, effective_at=at, created_at=created or T0,
        max_rollover=D(max_r) if max_r is not None else D(amount), min_rollover=D(min_r),
        expires_at=expires, voided_at=voided, recurrence=recurrence,
    )


def start_state(at=T0):
    return State(at=at, period_start=at)


def run_to(until, grants, events, resets=()):
    return run(state=start_state(), until=until, grants=grants, resets=list(resets), usage=events_usage(events)).state


def test_burn_order_priority_then_soonest_expiry_then_oldest():
    # given: C and B share priority 1, C expires first; A is priority 2
    a = grant("A", 100, priority=2)
    b = grant("B", 50, expires=T0 + 10 * DAY)
    c = grant("C", 30, expires=T0 + 5 * DAY)
    events = [(T0 + DAY, D(60)), (T0 + 7 * DAY, D(40)), (T0 + 12 * DAY, D(10))]
    # day 1: 60 → C 30 (gone), B 30 → B=20; A=100
    s1 = run_to(T0 + 2 * DAY, [a, b, c], events)
    assert s1.balances == {"A": D(100), "B": D(20), "C": D(0)}
    assert s1.balance == D(120)
    # day 7: C expired on day 5; 40 → B 20 → 0, A 20 → 80
    s2 = run_to(T0 + 8 * DAY, [a, b, c], events)
    assert s2.balances == {"A": D(80), "B": D(0)}
    # day 12: B expired on day 10; 10 → A 70. Total burnt 60 + 40 + 10 = 110
    s3 = run_to(T0 + 13 * DAY, [a, b, c], events)
    assert s3.balances == {"A": D(70)}
    assert s3.usage == D(110)
    assert s3.overage == 0


def test_equal_priority_and_expiry_burns_oldest_first():
    old = grant("Z-old", 10, created=T0)
    new = grant("A-new", 10, created=T0 + MIN)
    s = run_to(T0 + DAY, [new, old], [(T0 + MIN, D(4))])
    assert s.balances == {"Z-old": D(6), "A-new": D(10)}


def test_voided_grant_keeps_what_it_burnt_and_later_usage_is_overage():
    g = grant("G", 100, voided=T0 + 2 * DAY)
    events = [(T0 + DAY, D(30)), (T0 + 3 * DAY, D(10))]
    s = run_to(T0 + 4 * DAY, [g], events)
    # 30 burnt before the void; after it no grant: 10 is overage
    assert s.balance == 0
    assert s.overage == D(10)
    assert s.usage == D(40)
    assert s.grant_usage == D(30)


def test_reset_rolls_over_clamped_to_max_and_to_min():
    # G1: 100, rollover at most 50; G2: 10, rollover at least 20 and at most 30
    g1 = grant("G1", 100, max_r="50", created=T0)
    g2 = grant("G2", 10, min_r="20", max_r="30", created=T0 + MIN)
    events = [(T0 + DAY, D(20))]
    # usage 20 burns G1 (older): G1 = 80, G2 = 10
    # reset: G1 = min(50, max(80, 0)) = 50; G2 = min(30, max(10, 20)) = 20
    s = run_to(T0 + 2 * DAY, [g1, g2], events, [ResetSpec(at=T0 + 2 * DAY)])
    assert s.balances == {"G1": D(50), "G2": D(20)}
    assert s.usage == 0
    assert s.period_start == T0 + 2 * DAY


def test_reset_preserve_overage_on_and_off():
    g = grant("G", 10, min_r="10", max_r="10")  # the issueAfterReset shape
    events = [(T0 + DAY, D(15)), (T0 + 3 * DAY, D(2))]
    # period 1: 15 used of 10 → overage 5
    forgiven = run_to(T0 + 3 * DAY, [g], events, [ResetSpec(at=T0 + 2 * DAY, preserve_overage=False)])
    assert (forgiven.balance, forgiven.overage) == (D(10), D(0))
    # preserved: rolled 10 pays the old 5 → 5 left
    kept = run_to(T0 + 3 * DAY, [g], events, [ResetSpec(at=T0 + 2 * DAY, preserve_overage=True)])
    assert (kept.balance, kept.overage) == (D(5), D(0))
    # then 2 more used in period 2: 5 - 2 = 3
    later = run_to(T0 + 4 * DAY, [g], events, [ResetSpec(at=T0 + 2 * DAY, preserve_overage=True)])
    assert (later.balance, later.usage) == (D(3), D(2))


def test_preserved_overage_larger_than_rollover_stays_overage():
    g = grant("G", 10, min_r="10", max_r="10")
    s = run_to(T0 + 2 * DAY, [g], [(T0 + DAY, D(25))], [ResetSpec(at=T0 + 2 * DAY, preserve_overage=True)])
    # overage 15, rolled 10 pays 10 → balance 0, overage 5
    assert (s.balance, s.overage) == (D(0), D(5))


def test_recurring_grant_is_reissued_without_rollover():
    g = grant("R", 100, recurrence=Recurrence("DAY", T0))
    events = [(T0 + dt.timedelta(hours=1), D(70)), (T0 + DAY + dt.timedelta(hours=1), D(30))]
    mid = run_to(T0 + DAY - MIN, [g], events)
    assert mid.balance == D(30)
    # recurrence at T0 + 1 day: back to 100, then 30 used
    s = run_to(T0 + 2 * DAY - MIN, [g], events)
    assert s.balance == D(70)
    assert s.usage == D(100)


def test_grant_starting_mid_period_pays_earlier_overage():
    g = grant("late", 50, at=T0 + 2 * DAY)
    s = run_to(T0 + 3 * DAY, [g], [(T0 + DAY, D(20))])
    # 20 overage before the grant; the grant covers it: 50 - 20 = 30
    assert (s.balance, s.overage, s.grant_usage) == (D(30), D(0), D(20))


def test_segments_split_at_grant_changes():
    a = grant("A", 10)
    b = grant("B", 10, at=T0 + DAY)
    result = run(state=start_state(), until=T0 + 2 * DAY, grants=[a, b], resets=[],
                 usage=events_usage([(T0 + dt.timedelta(hours=1), D(15))]))
    assert [(s.start, s.end) for s in result.segments] == [(T0, T0 + DAY), (T0 + DAY, T0 + 2 * DAY)]
    first, second = result.segments
    assert (first.usage, first.overage, dict(first.grant_usages)) == (D(15), D(5), {"A": D(10)})
    # B arrives and pays the 5 of overage
    assert (second.balance_at_start, second.balance_at_end, second.overage) == (D(10), D(5), D(0))


def test_reset_timeline_monthly_with_reanchor():
    period = Recurrence("MONTH", dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    # month ends clamp: Jan 31 → Feb 28 → Mar 31
    auto = reset_timeline(usage_period=period, manual=[], preserve_overage_at_reset=True,
                          start=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), until=dt.datetime(2026, 3, 31, tzinfo=dt.UTC))
    assert [r.at.date().isoformat() for r in auto] == ["2026-02-28", "2026-03-31"]
    assert all(r.preserve_overage for r in auto)
    # a manual reset on Feb 10 that does not retain the anchor moves later boundaries to the 10th
    manual = [ManualReset(at=dt.datetime(2026, 2, 10, tzinfo=dt.UTC), preserve_overage=False, retain_anchor=False)]
    moved = reset_timeline(usage_period=period, manual=manual, preserve_overage_at_reset=False,
                           start=dt.datetime(2026, 1, 31, tzinfo=dt.UTC), until=dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert [r.at.date().isoformat() for r in moved] == ["2026-02-10", "2026-03-10"]
    start, end = current_period(usage_period=period, manual=manual, at=dt.datetime(2026, 3, 20, tzinfo=dt.UTC))
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-03-10", "2026-04-10")


# ---------------------------------------------------------------- properties

amounts = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
minutes = st.integers(min_value=0, max_value=60 * 24 * 28)


@st.composite
def grants_and_usage(draw, *, expiring=False):
    n = draw(st.integers(min_value=0, max_value=6))
    grants = []
    for i in range(n):
        start = T0 + draw(minutes) * MIN
        expires = start + draw(st.integers(1, 60 * 24 * 20)) * MIN if expiring and draw(st.booleans()) else None
        grants.append(grant(f"g{i}", draw(amounts), priority=draw(st.integers(1, 5)), at=start, expires=expires,
                            created=T0 + i * MIN))
    events = [(T0 + m * MIN, a) for m, a in draw(st.lists(st.tuples(minutes, amounts), max_size=20))]
    return grants, events


UNTIL = T0 + 29 * DAY


@settings(max_examples=200, deadline=None)
@given(grants_and_usage())
def test_balance_plus_usage_minus_overage_equals_granted(case):
    grants, events = case
    s = run_to(UNTIL, grants, events)
    granted = sum((g.amount for g in grants), D(0))
    assert s.balance + s.usage - s.overage == granted
    assert s.balance >= 0 and s.overage >= 0
    assert s.overage == 0 or s.balance == 0  # overage only when every grant is spent
    assert s.usage == sum((a for _, a in events), D(0))
    assert s.grant_usage + s.balance == granted  # totalAvailableGrantAmount


@settings(max_examples=200, deadline=None)
@given(grants_and_usage(expiring=True))
def test_expiry_only_loses_balance_never_creates_it(case):
    grants, events = case
    s = run_to(UNTIL, grants, events)
    granted = sum((g.amount for g in grants), D(0))
    assert s.balance + s.usage - s.overage <= granted
    assert s.grant_usage <= s.usage
    assert all(v >= 0 for v in s.balances.values())


@settings(max_examples=150, deadline=None)
@given(grants_and_usage(expiring=True), minutes, st.lists(st.integers(1, 28), max_size=3, unique=True))
def test_resuming_from_any_intermediate_state_gives_the_same_result(case, cut, reset_days):
    """What snapshots rely on: run(a→c) == run(run(a→b) → c) for any b, with resets anywhere."""
    grants, events = case
    resets = [ResetSpec(at=T0 + d * DAY, preserve_overage=d % 2 == 0) for d in reset_days]
    usage = events_usage(events)
    whole = run(state=start_state(), until=UNTIL, grants=grants, resets=resets, usage=usage).state
    middle = T0 + cut * MIN
    first = run(state=start_state(), until=middle, grants=grants, resets=resets, usage=usage).state
    resumed = run(state=first, until=UNTIL, grants=grants, resets=resets, usage=usage).state
    if T0 < middle < UNTIL:
        captured = run(state=start_state(), until=UNTIL, grants=grants, resets=resets, usage=usage,
                       capture_at=middle).captured
        assert captured == first
    assert resumed.balances == whole.balances
    assert (resumed.overage, resumed.usage, resumed.period_start) == (whole.overage, whole.usage, whole.period_start)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["DAY", "WEEK", "MONTH", "YEAR", "PT6H", "P2W"]), minutes, minutes)
def test_current_period_contains_the_instant_and_boundaries_line_up(interval, anchor_min, at_min):
    period = Recurrence(interval, T0 + anchor_min * MIN)
    at = T0 + at_min * MIN
    start, end = current_period(usage_period=period, manual=[], at=at)
    assert start <= at < end
    assert period.nth(period.index_at(at)) == start
    resets = reset_timeline(usage_period=period, manual=[], preserve_overage_at_reset=False, start=start - MIN, until=at)
    assert resets and resets[-1].at == start


def test_arithmetic_is_exact_beyond_the_default_28_digits():
    # 10^18 + 10^-18 has 37 significant digits: the default decimal context would round it
    g = grant("big", "1000000000000000000.000000000000000001")
    s = run_to(T0 + DAY, [g], [(T0 + MIN, D("0.000000000000000001"))])
    assert s.balance == D("1000000000000000000")
    assert exact_sum([s.grant_usage, s.balance]) == D("1000000000000000000.000000000000000001")


def test_recurrence_at_a_reset_wins_over_the_rollover():
    g = grant("R", 10, max_r="3", recurrence=Recurrence("DAY", T0))
    s = run_to(T0 + DAY, [g], [(T0 + MIN, D(2))], [ResetSpec(at=T0 + DAY)])
    # rollover would give min(3, 8) = 3; the daily recurrence at the same minute re-issues 10
    assert s.balance == D(10)


def test_grant_expiring_exactly_at_a_reset_is_not_rolled_over():
    g = grant("E", 10, expires=T0 + DAY)
    s = run_to(T0 + DAY + MIN, [g], [], [ResetSpec(at=T0 + DAY)])
    assert s.balances == {}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["MONTH", "YEAR", "P3M", "P1Y6M", "P1M2D", "DAY", "WEEK", "PT6H", "P2W"]),
       st.integers(min_value=0, max_value=60 * 24 * 366 * 3), st.integers(min_value=-40, max_value=40))
def test_recurrence_times_are_the_calendar_arithmetic_of_relativedelta(interval, anchor_min, k):
    # anchors on every day of the month, month ends included (Jan 31 + 1 month = Feb 28)
    period = Recurrence(interval, T0 + anchor_min * MIN)
    assert period.nth(k) == period.anchor + parse_interval(interval) * k


@settings(max_examples=150, deadline=None)
@given(grants_and_usage(expiring=True), st.lists(minutes, max_size=4), st.lists(st.integers(1, 28), max_size=3,
                                                                                unique=True), st.booleans())
def test_usage_ranges_are_exactly_the_ranges_run_asks_for(case, cuts, reset_days, limits):
    grants, events = case
    resets = [ResetSpec(at=T0 + d * DAY) for d in reset_days]
    asked = []

    def recording(start, end):
        asked.append((start, end))
        return events_usage(events)(start, end)

    args = {"state": start_state(), "until": UNTIL, "grants": grants, "resets": resets,
            "split_at": [T0 + c * MIN for c in cuts], "capture_at": T0 + 5 * DAY, "limits": limits}
    run(usage=recording, **args)
    assert usage_ranges(**args) == asked
