"""Entitlement balance engine (HOT PATH; pure: no ORM, no I/O except the injected usage function).

This module is the audited core of metered entitlements. It follows OpenMeter's credit engine
(`openmeter/credit/engine`) and works in Decimal at one-minute resolution.

Inputs
------
* Grants (`GrantSpec`): amount, priority (1..255, lower burns first), effectiveAt, optional expiresAt and
  voidedAt (a voided or deleted grant is inactive from that time on), min/max rollover amounts and an optional
  recurrence. A grant is *active* at t when `effective_at <= t < min(expires_at, voided_at)`.
* Resets (`ResetSpec`): the times at which a usage period ends, each with its `preserve_overage` flag. They are
  the automatic usage-period boundaries plus manual resets; `reset_timeline()` computes them from the usage
  period (interval + anchor, re-anchored by manual resets with `retainAnchor=false`), so a value is right
  whether or not the reset job has recorded the boundary yet.
* A starting `State` (a balance snapshot, or the empty state at `measureUsageFrom`) and the time `until`.
* `usage(start, end) -> Decimal`: the meter's usage over the minute-aligned half-open range [start, end).

Algorithm
---------
1. The interval [state.at, until) is cut into *phases* at every reset, every grant activity change
   (effectiveAt, expiresAt, voidedAt), every grant recurrence, and any extra split points the caller asks for
   (history window starts).
2. At the start of each phase, in this order:
   a. If a reset happens here: every grant still active keeps `min(maxRollover, max(balance, minRollover))`
      (issueAfterReset is a grant with amount = minRollover = maxRollover, so it is re-issued by this rule).
      With preserveOverage the old overage is burnt from these rolled-over balances in burn order (counted as
      grant usage of the new period) and what cannot be covered stays overage; without it the overage is
      forgiven. Period usage restarts at 0.
   b. Grants no longer active are dropped (balance 0). A grant becoming active gets `balance = amount`.
      A recurring grant at a recurrence time (after its effectiveAt) gets `balance = amount` (no rollover).
3. The phase's usage `u = usage(phase.start, phase.end)` plus any overage carried from earlier phases of the
   same period is burnt from the active grants in burn order: priority ascending, then expiresAt ascending
   (grants that never expire last), then createdAt, then id. Each grant gives `min(balance, remaining)`.
   What no grant covers is the overage.
4. At `until` the same step 2b is applied and any carried overage is paid from grants starting exactly then
   (`_settle`), so `run(a→c)` equals `run(run(a→b)→c)` for every b: what snapshots rely on.
5. Balance = Σ balances of active grants (never negative). Usage = usage since the current period started.
   totalAvailableGrantAmount = balance + what grants burnt during the current period (a preserved overage
   burnt at the reset included).
   `hasAccess` is decided by the caller: `isSoftLimit or balance > 0`.

Rules at the edges
------------------
* Times are minute-aligned: grant effectiveAt, resets, voids and anchors are floored to the minute by the
  services (as upstream truncates them); a read at a sub-minute time counts that whole minute (usage up to the next minute).
* A grant expiring exactly at a reset is not rolled over; a grant starting exactly at a reset starts at amount.
* A recurrence at the same minute as a reset wins: the balance is the grant's amount, not the rollover.
* Month and year intervals add calendar months from the anchor and clamp to the month's end
  (anchor Jan 31 → Feb 28 → Mar 31), never drifting.
* All arithmetic runs in a 76-digit decimal context (`EXACT`): sums of NUMERIC(38,19) values never round.

Grants as limits (LATEST meters)
--------------------------------
A LATEST meter reports a level (seats, stored GB), not a flow, so its grants are limits rather than budgets
(upstream: "LATEST meters treat grants as limits"). With `limits=True`:
* at the start of every phase each active grant is back at its full amount (nothing is burnt for good);
* the phase burns the meter's latest value over [period start, phase end): the level known at the end of the
  phase in the current usage period (usage before a reset never counts after it);
* no overage is carried from one phase to the next (it would count the same level twice), so rollover
  amounts and preserveOverage have no effect;
* usage is that latest value (not a sum over phases); totalAvailableGrantAmount = Σ active grant amounts.
So the value at t is `balance = max(0, Σ active amounts - level)`, `overage = max(0, level - Σ active amounts)`
whatever the phases are (property-tested: extra split points never change it).

Invariant (property-tested): within one period with no expiry, recurrence or void,
`balance + usage - overage == Σ amounts of the grants that became active`.
"""

import calendar
import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Context, Decimal, localcontext

from dateutil.relativedelta import relativedelta

from openmeter_site.core.errors import InvalidInput

ZERO = Decimal(0)
# Sums of NUMERIC(38,19) values never round in 76 significant digits (the default context has 28).
EXACT = Context(prec=76)
MINUTE = dt.timedelta(minutes=1)
FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)

UsageFn = Callable[[dt.datetime, dt.datetime], Decimal]

_NAMED_INTERVALS = {
    "DAY": relativedelta(days=1),
    "WEEK": relativedelta(weeks=1),
    "MONTH": relativedelta(months=1),
    "YEAR": relativedelta(years=1),
}
_ISO_INTERVALS = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(EXACT):
        return sum(values, ZERO)


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: dt.datetime) -> dt.datetime:
    floored = floor_minute(t)
    return floored if floored == t else floored + MINUTE


@functools.lru_cache(maxsize=256)
def parse_interval(text: str) -> relativedelta:
    """`DAY|WEEK|MONTH|YEAR` or an ISO 8601 duration of whole minutes or more (`P1M`, `P2W`, `PT6H`)."""
    if text in _NAMED_INTERVALS:
        return _NAMED_INTERVALS[text]
    import isodate

    try:
        parsed = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise InvalidInput(f"interval: {text!r} is not DAY, WEEK, MONTH, YEAR or an ISO 8601 duration") from exc
    if isinstance(parsed, dt.timedelta):
        step = relativedelta(seconds=int(parsed.total_seconds()))
    else:
        step = relativedelta(years=int(parsed.years), months=int(parsed.months)) + relativedelta(
            seconds=int(parsed.tdelta.total_seconds())
        )
    probe = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    try:
        too_short = probe + step < probe + MINUTE
        probe + step * 10  # ten periods on must still be a date (year 9999 at most)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"interval: {text!r} is too long") from exc
    if too_short:
        raise InvalidInput(f"interval: {text!r} must be at least one minute")
    return step


def interval_iso(text: str) -> str:
    return _ISO_INTERVALS.get(text, text)


@dataclass(frozen=True)
class Recurrence:
    """A recurring period: times `anchor + k·interval` for every integer k (months clamp to the month's end)."""

    interval: str
    anchor: dt.datetime

    @functools.cached_property
    def step(self) -> relativedelta:
        return parse_interval(self.interval)

    @functools.cached_property
    def fixed_step(self) -> dt.timedelta | None:
        """The step as a timedelta when it has no months or years (plain arithmetic, no calendar)."""
        s = self.step
        if s.years or s.months:
            return None
        return dt.timedelta(days=s.days, hours=s.hours, minutes=s.minutes, seconds=s.seconds)

    @functools.cached_property
    def month_step(self) -> int | None:
        """The step in months when it is whole months or years only."""
        s = self.step
        if s.days or s.hours or s.minutes or s.seconds or s.microseconds or not (s.years or s.months):
            return None
        return s.years * 12 + s.months

    def nth(self, k: int) -> dt.datetime:
        if self.fixed_step is not None:
            return self.anchor + self.fixed_step * k
        if self.month_step is not None:  # as relativedelta does it, without building one: clamp to the month's end
            months = self.anchor.month - 1 + self.month_step * k
            year, month = self.anchor.year + months // 12, months % 12 + 1
            day = min(self.anchor.day, calendar.monthrange(year, month)[1])
            return self.anchor.replace(year=year, month=month, day=day)
        return self.anchor + self.step * k

    def _approx_index(self, t: dt.datetime) -> int:
        if self.fixed_step is not None:
            return (t - self.anchor) // self.fixed_step
        probe = self.anchor + self.step
        approx = (probe - self.anchor).total_seconds()
        return int((t - self.anchor).total_seconds() // approx)

    def index_at(self, t: dt.datetime) -> int:
        """The largest k with nth(k) <= t."""
        k = self._approx_index(t)
        while self.nth(k) > t:
            k -= 1
        while self.nth(k + 1) <= t:
            k += 1
        return k

    def period_containing(self, t: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        k = self.index_at(t)
        return self.nth(k), self.nth(k + 1)

    def times_between(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        """Recurrence times in the open interval (start, end)."""
        out: list[dt.datetime] = []
        k = self.index_at(start) + 1
        while (t := self.nth(k)) < end:
            out.append(t)
            k += 1
        return out


@dataclass(frozen=True)
class GrantSpec:
    id: str
    amount: Decimal
    priority: int
    effective_at: dt.datetime
    created_at: dt.datetime
    max_rollover: Decimal
    min_rollover: Decimal = ZERO
    expires_at: dt.datetime | None = None
    voided_at: dt.datetime | None = None
    recurrence: Recurrence | None = None

    @property
    def inactive_from(self) -> dt.datetime:
        ends = [t for t in (self.expires_at, self.voided_at) if t is not None]
        return min(ends) if ends else FAR_FUTURE

    def active_at(self, t: dt.datetime) -> bool:
        return self.effective_at <= t < self.inactive_from

    def burn_key(self) -> tuple[int, bool, dt.datetime, dt.datetime, str]:
        return (self.priority, self.expires_at is None, self.expires_at or FAR_FUTURE, self.created_at, self.id)

    def recurs_at(self, t: dt.datetime) -> bool:
        if self.recurrence is None or t <= self.effective_at:
            return False
        return self.recurrence.nth(self.recurrence.index_at(t)) == t

    def change_points(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        points = [t for t in (self.effective_at, self.expires_at, self.voided_at) if t is not None and start < t < end]
        if self.recurrence is not None:
            lo = max(start, self.effective_at)
            hi = min(end, self.inactive_from)
            if lo < hi:
                points += self.recurrence.times_between(lo, hi)
        return points


@dataclass(frozen=True)
class ResetSpec:
    at: dt.datetime
    preserve_overage: bool = False


@dataclass(frozen=True)
class ManualReset:
    at: dt.datetime
    preserve_overage: bool
    retain_anchor: bool


@dataclass(frozen=True)
class State:
    """The balance at one instant: what a snapshot stores."""

    at: dt.datetime
    period_start: dt.datetime
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    overage: Decimal = ZERO
    usage: Decimal = ZERO  # usage in [period_start, at)
    grant_usage: Decimal = ZERO  # burnt from grants in [period_start, at)

    @property
    def balance(self) -> Decimal:
        return exact_sum(self.balances.values())


@dataclass(frozen=True)
class Segment:
    """One burn-down phase: the spec's GrantBurnDownHistorySegment."""

    start: dt.datetime
    end: dt.datetime
    usage: Decimal
    overage: Decimal
    balances_at_start: Mapping[str, Decimal]
    balances_at_end: Mapping[str, Decimal]
    grant_usages: Mapping[str, Decimal]

    @property
    def balance_at_start(self) -> Decimal:
        return exact_sum(self.balances_at_start.values())

    @property
    def balance_at_end(self) -> Decimal:
        return exact_sum(self.balances_at_end.values())


@dataclass(frozen=True)
class RunResult:
    state: State
    segments: tuple[Segment, ...]
    period_states: tuple[State, ...]  # the state right after each reset crossed, in time order
    captured: State | None = None  # the state at `capture_at`, when asked


def burn_order(grants: Iterable[GrantSpec]) -> list[GrantSpec]:
    return sorted(grants, key=GrantSpec.burn_key)


def burn(
    balances: Mapping[str, Decimal], ordered: Sequence[GrantSpec], amount: Decimal
) -> tuple[dict[str, Decimal], dict[str, Decimal], Decimal]:
    """Burn `amount` from the balances in the given order → (new balances, used per grant, uncovered)."""
    out = dict(balances)
    used: dict[str, Decimal] = {}
    remaining = amount
    for grant in ordered:
        if remaining <= 0:
            break
        have = out.get(grant.id, ZERO)
        take = min(have, remaining)
        if take > 0:
            out[grant.id] = have - take
            used[grant.id] = take
            remaining -= take
    return out, used, remaining


def rollover(
    state: State, grants: Mapping[str, GrantSpec], reset: ResetSpec, ordered: Sequence[GrantSpec]
) -> State:
    """Step 2a: the state right after a reset at `reset.at`."""
    rolled: dict[str, Decimal] = {}
    for grant_id, balance in state.balances.items():
        grant = grants.get(grant_id)
        if grant is None or not grant.active_at(reset.at):
            continue
        rolled[grant_id] = min(grant.max_rollover, max(balance, grant.min_rollover))
    overage = ZERO
    used: dict[str, Decimal] = {}
    if reset.preserve_overage and state.overage > 0:
        rolled, used, overage = burn(rolled, ordered, state.overage)
    # the overage burnt from rolled-over grants is grant usage of the new period (upstream's reset snapshot keeps it
    # as TotalGrantUsage, so totalAvailableGrantAmount still counts it)
    return State(at=reset.at, period_start=reset.at, balances=rolled, overage=overage,
                 grant_usage=exact_sum(used.values()))


def _activate(balances: Mapping[str, Decimal], grants: Sequence[GrantSpec], at: dt.datetime) -> dict[str, Decimal]:
    """Step 2b: drop inactive grants, start new ones, re-issue recurring ones."""
    out: dict[str, Decimal] = {}
    for grant in grants:
        if not grant.active_at(at):
            continue
        if grant.id not in balances or grant.recurs_at(at):
            out[grant.id] = grant.amount
        else:
            out[grant.id] = balances[grant.id]
    return out


def _split_points(
    start: dt.datetime,
    until: dt.datetime,
    grants: Sequence[GrantSpec],
    resets: Sequence[ResetSpec],
    extra: Iterable[dt.datetime],
) -> list[dt.datetime]:
    points = {start, until}
    points.update(r.at for r in resets if start < r.at < until)
    points.update(t for t in extra if start < t < until)
    for grant in grants:
        points.update(grant.change_points(start, until))
    return sorted(points)


def run(
    *,
    state: State,
    until: dt.datetime,
    grants: Sequence[GrantSpec],
    resets: Sequence[ResetSpec],
    usage: UsageFn,
    split_at: Iterable[dt.datetime] = (),
    capture_at: dt.datetime | None = None,
    limits: bool = False,
) -> RunResult:
    """Advance `state` to `until` (minute-aligned). `resets` may include times outside (state.at, until).

    `capture_at` (inside (state.at, until)) also returns the state at that instant, equal to what
    `run(..., until=capture_at).state` gives: a checkpoint the caller may store as a snapshot.
    `limits`: grants are limits (LATEST meters), see the module docstring.
    """
    with localcontext(EXACT):
        return _run(state=state, until=until, grants=grants, resets=resets, usage=usage, split_at=split_at,
                    capture_at=capture_at, limits=limits)


def _run(
    *,
    state: State,
    until: dt.datetime,
    grants: Sequence[GrantSpec],
    resets: Sequence[ResetSpec],
    usage: UsageFn,
    split_at: Iterable[dt.datetime],
    capture_at: dt.datetime | None,
    limits: bool,
) -> RunResult:
    ordered = burn_order(grants)
    by_id = {g.id: g for g in grants}
    reset_at, points = _timeline(state, until, grants, resets, split_at, capture_at)
    current = state
    captured: State | None = None
    segments: list[Segment] = []
    period_states: list[State] = []
    for start, end in itertools.pairwise(points):
        if start in reset_at:
            current = rollover(current, by_id, reset_at[start], ordered)
            period_states.append(current)
        if start == capture_at:
            captured = _settle(current, start, ordered, limits)
        current, segment = _run_phase(current, start, end, ordered, usage, limits)
        segments.append(segment)
    if until in reset_at:
        current = rollover(current, by_id, reset_at[until], ordered)
        period_states.append(current)
    current = _settle(current, until, ordered, limits)
    return RunResult(state=current, segments=tuple(segments), period_states=tuple(period_states), captured=captured)


def _timeline(
    state: State,
    until: dt.datetime,
    grants: Sequence[GrantSpec],
    resets: Sequence[ResetSpec],
    split_at: Iterable[dt.datetime],
    capture_at: dt.datetime | None,
) -> tuple[dict[dt.datetime, ResetSpec], list[dt.datetime]]:
    """The resets crossed, and the phase boundaries (step 1)."""
    reset_at = {r.at: r for r in resets if state.at < r.at <= until}
    extra = [*split_at, capture_at] if capture_at is not None else split_at
    return reset_at, _split_points(state.at, until, grants, list(reset_at.values()), extra)


def usage_ranges(
    *,
    state: State,
    until: dt.datetime,
    grants: Sequence[GrantSpec],
    resets: Sequence[ResetSpec],
    split_at: Iterable[dt.datetime] = (),
    capture_at: dt.datetime | None = None,
    limits: bool = False,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The ranges `run` with the same arguments asks `usage` for, in order: they depend on no usage, so a caller
    can read them all at once before running."""
    reset_at, points = _timeline(state, until, grants, resets, split_at, capture_at)
    period_start = state.period_start
    ranges = []
    for start, end in itertools.pairwise(points):
        if start in reset_at:
            period_start = start
        ranges.append((period_start if limits else start, end))
    return ranges


def _settle(state: State, at: dt.datetime, ordered: Sequence[GrantSpec], limits: bool) -> State:
    """The state at the instant `at`: grant changes at `at` applied, carried overage paid if it can be
    (limits: the active grants' full amounts against the current level)."""
    balances = _activate(state.balances, ordered, at)
    active = [g for g in ordered if g.id in balances]
    if limits:
        balances, used, overage = burn(_full_amounts(active), active, state.usage)
        return replace(state, balances=balances, overage=overage, grant_usage=exact_sum(used.values()))
    balances, used, overage = burn(balances, active, state.overage)
    burnt = sum(used.values(), ZERO)
    return replace(state, balances=balances, overage=overage, grant_usage=state.grant_usage + burnt)


def _full_amounts(active: Sequence[GrantSpec]) -> dict[str, Decimal]:
    return {g.id: g.amount for g in active}


def _run_phase(
    state: State, start: dt.datetime, end: dt.datetime, ordered: Sequence[GrantSpec], usage: UsageFn, limits: bool
) -> tuple[State, Segment]:
    at_start = _activate(state.balances, ordered, start)
    active = [g for g in ordered if g.id in at_start]
    if limits:
        at_start = _full_amounts(active)
        used_now = usage(state.period_start, end)  # the level at the end of the phase
        carried = ZERO
    else:
        used_now = usage(start, end)
        carried = state.overage
    at_end, used, overage = burn(at_start, active, used_now + carried)
    burnt = sum(used.values(), ZERO)
    segment = Segment(
        start=start,
        end=end,
        usage=used_now,
        overage=overage,
        balances_at_start=at_start,
        balances_at_end=at_end,
        grant_usages=used,
    )
    new_state = State(
        at=end,
        period_start=state.period_start,
        balances=at_end,
        overage=overage,
        usage=used_now if limits else state.usage + used_now,
        grant_usage=burnt if limits else state.grant_usage + burnt,
    )
    return new_state, segment


def reset_timeline(
    *,
    usage_period: Recurrence,
    manual: Sequence[ManualReset],
    preserve_overage_at_reset: bool,
    start: dt.datetime,
    until: dt.datetime,
) -> list[ResetSpec]:
    """Every reset in (start, until]: automatic usage-period boundaries and manual resets.

    A manual reset with `retain_anchor=False` re-anchors the usage period at its own time; automatic
    boundaries after it follow the new anchor. Manual resets earlier than `start` still set the anchor.
    """
    ordered = sorted(manual, key=lambda r: r.at)
    anchors: list[tuple[dt.datetime, Recurrence]] = [(dt.datetime.min.replace(tzinfo=dt.UTC), usage_period)]
    anchors += [(r.at, Recurrence(usage_period.interval, r.at)) for r in ordered if not r.retain_anchor]
    out: dict[dt.datetime, ResetSpec] = {}
    for i, (seg_start, period) in enumerate(anchors):
        seg_end = anchors[i + 1][0] if i + 1 < len(anchors) else FAR_FUTURE
        lo, hi = max(start, seg_start), min(until, seg_end)
        if lo > hi:
            continue
        candidates = period.times_between(lo, hi)
        if hi == until and hi < seg_end and period.nth(period.index_at(hi)) == hi:
            candidates.append(hi)
        for t in candidates:
            if t > start:
                out[t] = ResetSpec(at=t, preserve_overage=preserve_overage_at_reset)
    for r in ordered:
        if start < r.at <= until:
            out[r.at] = ResetSpec(at=r.at, preserve_overage=r.preserve_overage)
    return [out[t] for t in sorted(out)]


def current_period(
    *, usage_period: Recurrence, manual: Sequence[ManualReset], at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The usage period containing `at`: [last reset <= at, next automatic boundary)."""
    anchor = usage_period
    last_manual: dt.datetime | None = None
    for r in sorted(manual, key=lambda r: r.at):
        if r.at > at:
            break
        last_manual = r.at
        if not r.retain_anchor:
            anchor = Recurrence(usage_period.interval, r.at)
    start, end = anchor.period_containing(at)
    if last_manual is not None and last_manual > start:
        start = last_manual
    return start, end
