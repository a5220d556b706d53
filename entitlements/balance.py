"""Entitlement value and history (HOT PATH): loads the engine's inputs, runs it, keeps snapshots.

A read at time `t`:
1. loads the grants, the recorded resets and the newest snapshot at or before `t` in one statement (the API's
   value read gets them in the same statement as the entitlement itself: `entitlements.value_read`);
2. runs `engine.run` from that snapshot (else from `measureUsageFrom`) to `t` rounded up to the minute,
   with every reset in between computed from the usage period (so nothing depends on the reset job);
3. the usage of every phase after the snapshot (inside the current period) is read in one statement from
   rollups (`EventStore.usage_ranges`, `metering.postgres.usage`): the phases depend only on grants, resets and split points
   (`engine.usage_ranges` lists them before the run).

Snapshot rule (late events): a state is saved only at an instant older than the grace window
(`OPENMETER_ENTITLEMENT_GRACE_SECONDS`, default one day): the state right after each reset (kept), and one
checkpoint per entitlement at the start of the UTC day in which the grace window ends (replaced as days pass),
so a read queries at most about two days of usage. Events arriving late but within the grace window are
therefore always counted, since nothing after them is frozen yet. Snapshots at or after
an input change are deleted: a grant created (from its effectiveAt), a grant voided (from the void time), a
manual reset (from the reset time). Events backdated by more than the grace window before a saved snapshot
are not reflected in later periods (as upstream); `entitlements.balance.invalidate_snapshots` (admin action
"Recompute balances") recomputes them.
"""

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from catalog.features import feature_usage_filters
from entitlements import engine
from entitlements.engine import (
    GrantSpec,
    ManualReset,
    Recurrence,
    RunResult,
    State,
    ceil_minute,
    exact_sum,
    floor_minute,
)
from entitlements.models import BalanceSnapshot, Entitlement, EntitlementType
from metering.event_store import UsageRequest, event_store
from metering.models import MeterAggregation
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339

ZERO = Decimal(0)
GRACE = dt.timedelta(seconds=settings.OPENMETER_ENTITLEMENT_GRACE_SECONDS)
MAX_HISTORY_WINDOWS = 2000


@dataclass(frozen=True)
class EntitlementValue:
    """What `…/value` answers. `balance`, `usage`, `overage` and the total are Decimal (metered only)."""

    type: str | None  # None: no entitlement at that time (no access)
    has_access: bool
    at: dt.datetime
    balance: Decimal | None = None
    usage: Decimal | None = None
    overage: Decimal | None = None
    total_available_grant_amount: Decimal | None = None
    grant_balances: dict[str, Decimal] = field(default_factory=dict)
    config: str | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None


@dataclass(frozen=True)
class HistoryWindow:
    start: dt.datetime
    end: dt.datetime
    usage: Decimal
    balance_at_start: Decimal


@dataclass(frozen=True)
class History:
    windows: tuple[HistoryWindow, ...]
    segments: tuple[engine.Segment, ...]


def is_active(entitlement: Entitlement, at: dt.datetime) -> bool:
    if entitlement.active_from > at:
        return False
    if entitlement.active_to is not None and entitlement.active_to <= at:
        return False
    return entitlement.deleted_at is None or entitlement.deleted_at > at


def usage_period(entitlement: Entitlement) -> Recurrence:
    assert entitlement.usage_period_interval and entitlement.usage_period_anchor  # metered entitlements have one
    return Recurrence(entitlement.usage_period_interval, entitlement.usage_period_anchor)


def manual_resets(entitlement: Entitlement) -> list[ManualReset]:
    """Recorded resets (manual, and automatic ones the job recorded, which the engine would derive anyway)."""
    return [
        ManualReset(at=r.reset_at, preserve_overage=r.preserve_overage, retain_anchor=r.retain_anchor)
        for r in entitlement.resets.all()
    ]


@dataclass(frozen=True)
class Inputs:
    """Everything the engine needs from the database for one entitlement, read in one round trip.
    `subjects` (the customer's usage attribution) when the same statement read them."""

    resets: list[ManualReset]
    grants: list[GrantSpec]
    snapshot: State | None
    subjects: list[str] | None = None
    fresh_meter: bool = False  # the entitlement's meter row was read by the same statement


def input_columns(entitlement_id: str) -> str:
    """The engine's inputs of the entitlement whose id is the SQL expression `entitlement_id`, as three text
    columns (resets, grants, newest snapshot at or before `%(at)s`). JSON carries numerics as exact decimal text
    (parsed with Decimal) and timestamps in ISO 8601 (the connection's time zone is UTC)."""
    return f"""
  (SELECT coalesce(json_agg(json_build_array(r.reset_at, r.preserve_overage, r.retain_anchor) ORDER BY r.reset_at),
                   '[]')::text
     FROM entitlements_usagereset r WHERE r.entitlement_id = {entitlement_id}),
  (SELECT coalesce(json_agg(json_build_array(g.id, g.amount, g.priority, g.effective_at, g.created_at,
                                             g.max_rollover_amount, g.min_rollover_amount, g.expires_at,
                                             least(g.voided_at, g.deleted_at), g.recurrence_interval,
                                             g.recurrence_anchor) ORDER BY g.created_at, g.id), '[]')::text
     FROM entitlements_grant g WHERE g.entitlement_id = {entitlement_id}),
  (SELECT json_build_array(s.at, s.period_start, s.balances, s.overage, s.usage, s.grant_usage)::text
     FROM entitlements_balancesnapshot s WHERE s.entitlement_id = {entitlement_id} AND s.at <= %(at)s
     ORDER BY s.at DESC LIMIT 1)"""


# One statement instead of three ORM queries.
_INPUTS_SQL = f"SELECT {input_columns('%(id)s')}"


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _maybe_time(text: str | None) -> dt.datetime | None:
    return _time(text) if text else None


def load_inputs(entitlement: Entitlement, at: dt.datetime) -> Inputs:
    with connection.cursor() as cur:
        cur.execute(_INPUTS_SQL, {"id": entitlement.pk, "at": at})
        resets_json, grants_json, snapshot_json = cur.fetchone()
    return parse_inputs(resets_json, grants_json, snapshot_json)


_MANY_INPUTS_SQL = f"SELECT e.id, {input_columns('e.id')} FROM unnest(%(ids)s::text[]) AS e(id)"


def load_inputs_many(entitlement_ids: Sequence[str], at: dt.datetime) -> dict[str, Inputs]:
    """`load_inputs` of several entitlements in one statement, by id."""
    if not entitlement_ids:
        return {}
    with connection.cursor() as cur:
        cur.execute(_MANY_INPUTS_SQL, {"ids": list(entitlement_ids), "at": at})
        return {row[0]: parse_inputs(*row[1:]) for row in cur.fetchall()}


def parse_inputs(
    resets_json: str, grants_json: str, snapshot_json: str | None, **read_with: Any
) -> Inputs:
    """The three columns of `input_columns` as engine inputs."""
    resets = [
        ManualReset(at=_time(r[0]), preserve_overage=r[1], retain_anchor=r[2])
        for r in json.loads(resets_json)
    ]
    grants = [
        GrantSpec(
            id=g[0], amount=g[1], priority=int(g[2]), effective_at=_time(g[3]), created_at=_time(g[4]),
            max_rollover=g[5], min_rollover=g[6], expires_at=_maybe_time(g[7]), voided_at=_maybe_time(g[8]),
            recurrence=Recurrence(g[9], _time(g[10])) if g[9] else None,
        )
        for g in json.loads(grants_json, parse_float=Decimal, parse_int=Decimal)
    ]
    snapshot = None
    if snapshot_json:
        at_, period_start, balances, overage, usage, grant_usage = json.loads(snapshot_json, parse_float=Decimal)
        snapshot = State(
            at=_time(at_), period_start=_time(period_start),
            balances={k: Decimal(v) for k, v in balances.items()},
            overage=Decimal(overage), usage=Decimal(usage), grant_usage=Decimal(grant_usage),
        )
    return Inputs(resets=resets, grants=grants, snapshot=snapshot, **read_with)


def current_period(
    *, entitlement: Entitlement, at: dt.datetime, resets: list[ManualReset] | None = None
) -> tuple[dt.datetime, dt.datetime]:
    resets = manual_resets(entitlement) if resets is None else resets
    start, end = engine.current_period(usage_period=usage_period(entitlement), manual=resets, at=at)
    measure_from = entitlement.measure_usage_from
    if measure_from is not None and start < measure_from <= at:
        start = measure_from
    return start, end


def grants_are_limits(entitlement: Entitlement) -> bool:
    """LATEST meters report a level, so their grants are limits (see `engine`)."""
    meter = entitlement.feature.meter
    return meter is not None and meter.aggregation == MeterAggregation.LATEST


def usage_request(
    entitlement: Entitlement, inputs: Inputs, ranges: Sequence[tuple[dt.datetime, dt.datetime]]
) -> UsageRequest:
    """The question to the event store: the meter's usage for the entitlement's customer and feature filters."""
    feature = entitlement.feature
    assert feature.meter is not None  # metered entitlements are only created on features with a meter
    subjects = entitlement.customer.subject_keys() if inputs.subjects is None else inputs.subjects
    filters = feature_usage_filters(feature)
    return UsageRequest(feature.meter, subjects, ranges, filters.group_filters, filters.advanced_filters)


def usage_function(
    entitlement: Entitlement,
    inputs: Inputs,
    planned: Sequence[tuple[dt.datetime, dt.datetime]] = (),
    known: Sequence[Decimal] | None = None,
) -> engine.UsageFn:
    """The meter's usage, memoised per range; the `planned` ranges are read up front in one statement (or were
    read already: `known`, their totals in order)."""

    def read(ranges: list[tuple[dt.datetime, dt.datetime]]) -> dict[tuple[dt.datetime, dt.datetime], Decimal]:
        r = usage_request(entitlement, inputs, ranges)
        totals = event_store().usage_ranges(meter=r.meter, subjects=r.subjects, ranges=ranges,
                                            fresh_meter=inputs.fresh_meter, group_filters=r.group_filters,
                                            advanced_filters=r.advanced_filters)
        return dict(zip(ranges, totals, strict=True))

    cache = dict(zip(planned, known, strict=True)) if known is not None else read(list(dict.fromkeys(planned)))

    def usage(start: dt.datetime, end: dt.datetime) -> Decimal:
        if (start, end) not in cache:
            cache.update(read([(start, end)]))
        return cache[(start, end)]

    return usage


def planned_ranges(entitlement: Entitlement, inputs: Inputs, **run: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    """The usage ranges `engine.run` will read, known before the run."""
    return list(dict.fromkeys(engine.usage_ranges(grants=inputs.grants, limits=grants_are_limits(entitlement), **run)))


def run_engine(entitlement: Entitlement, inputs: Inputs, known: Sequence[Decimal] | None = None,
               **run: Any) -> RunResult:
    """`engine.run` with the entitlement's usage, every range of which is read up front in one statement (or was
    read already: `known`, the totals of `planned_ranges` in order)."""
    usage = usage_function(entitlement, inputs, planned_ranges(entitlement, inputs, **run), known)
    return engine.run(grants=inputs.grants, usage=usage, limits=grants_are_limits(entitlement), **run)


def _start_state(entitlement: Entitlement, snapshot: State | None) -> State:
    if snapshot is not None:
        return snapshot
    assert entitlement.measure_usage_from is not None
    start = floor_minute(entitlement.measure_usage_from)
    return State(at=start, period_start=start)


def compute(
    entitlement: Entitlement,
    at: dt.datetime,
    split_at: Iterable[dt.datetime] = (),
    inputs: Inputs | None = None,
) -> RunResult:
    """Run the engine from the newest usable snapshot to `at` (the partial minute of `at` is included)."""
    inputs = inputs or load_inputs(entitlement, at)
    run = _run_arguments(entitlement, at, inputs, split_at)
    result = run_engine(entitlement, inputs, **run)
    _save_snapshots([(entitlement, result)])
    return result


def _run_arguments(
    entitlement: Entitlement, at: dt.datetime, inputs: Inputs, split_at: Iterable[dt.datetime] = ()
) -> dict[str, Any]:
    """`engine.run`'s arguments from the newest usable snapshot to `at`."""
    state = _start_state(entitlement, inputs.snapshot)
    timeline = engine.reset_timeline(
        usage_period=usage_period(entitlement),
        manual=inputs.resets,
        preserve_overage_at_reset=entitlement.preserve_overage_at_reset,
        start=state.at,
        until=at,
    )
    until = max(ceil_minute(at), state.at)
    checkpoint = _frozen_before().replace(hour=0, minute=0, second=0, microsecond=0)
    return {"state": state, "until": until, "resets": timeline, "split_at": split_at,
            "capture_at": checkpoint if state.at < checkpoint < until else None}


def _frozen_before() -> dt.datetime:
    return timezone.now() - GRACE


def _snapshot_row(entitlement: Entitlement, state: State, checkpoint: bool) -> BalanceSnapshot:
    return BalanceSnapshot(
        entitlement=entitlement,
        at=state.at,
        balances={k: str(v) for k, v in state.balances.items()},
        overage=state.overage,
        period_start=state.period_start,
        usage=state.usage,
        grant_usage=state.grant_usage,
        checkpoint=checkpoint,
    )


def _save_snapshots(runs: Sequence[tuple[Entitlement, RunResult]]) -> None:
    """Boundary snapshots older than the grace window are kept; the in-period checkpoint (at the start of the UTC
    day the grace window ends in) replaces the entitlement's previous one. At most two statements for any number
    of runs."""
    frozen_before = _frozen_before()
    rows, replaced = [], []
    for entitlement, result in runs:
        boundaries = [s for s in result.period_states if s.at <= frozen_before]
        rows += [_snapshot_row(entitlement, s, checkpoint=False) for s in boundaries]
        checkpoint = result.captured
        if checkpoint is not None and checkpoint.at not in {s.at for s in boundaries}:
            replaced.append(entitlement.pk)
            rows.append(_snapshot_row(entitlement, checkpoint, checkpoint=True))
    if replaced:
        BalanceSnapshot.objects.filter(entitlement__in=replaced, checkpoint=True).delete()
    if rows:
        BalanceSnapshot.objects.bulk_create(rows, ignore_conflicts=True)


def invalidate_snapshots(*, entitlement: Entitlement, since: dt.datetime | None = None) -> int:
    qs = BalanceSnapshot.objects.filter(entitlement=entitlement)
    if since is not None:
        qs = qs.filter(at__gte=since)
    return qs.delete()[0]


def no_access(at: dt.datetime) -> EntitlementValue:
    """Upstream's NoAccessValue: `{"hasAccess": false}` and nothing else (no figures that look like facts)."""
    return EntitlementValue(type=None, has_access=False, at=at)


def value(*, entitlement: Entitlement, at: dt.datetime, inputs: Inputs | None = None) -> EntitlementValue:
    """`inputs`: already read with the entitlement (`value_read`), at `at`. An entitlement not active at `at`
    (before it started, after it ended) has no access and no figures, as upstream."""
    known = _value_without_usage(entitlement, at)
    if known is not None:
        return known
    inputs = inputs or load_inputs(entitlement, at)
    return _metered_value(entitlement, at, inputs, compute(entitlement, at, inputs=inputs).state)


def values(*, entitlements: Sequence[Entitlement], at: dt.datetime) -> dict[str, EntitlementValue]:
    """`value` of each entitlement (a page of the back office), by id, in a number of statements that does not grow
    with the entitlements: their inputs in one, their usage in one round trip, their new snapshots in two. Each
    entitlement's `feature.meter` and `customer` (with its subjects) are read by the caller."""
    found: dict[str, EntitlementValue] = {}
    metered = []
    for entitlement in entitlements:
        known = _value_without_usage(entitlement, at)
        if known is None:
            metered.append(entitlement)
        else:
            found[entitlement.pk] = known
    inputs = load_inputs_many([e.pk for e in metered], at)
    runs = [_run_arguments(e, at, inputs[e.pk]) for e in metered]
    planned = [planned_ranges(e, inputs[e.pk], **run) for e, run in zip(metered, runs, strict=True)]
    totals = event_store().usage_ranges_many(
        [usage_request(e, inputs[e.pk], ranges) for e, ranges in zip(metered, planned, strict=True)])
    results = [run_engine(e, inputs[e.pk], known, **run) for e, known, run in zip(metered, totals, runs, strict=True)]
    _save_snapshots(list(zip(metered, results, strict=True)))
    for entitlement, result in zip(metered, results, strict=True):
        found[entitlement.pk] = _metered_value(entitlement, at, inputs[entitlement.pk], result.state)
    return found


def _value_without_usage(entitlement: Entitlement, at: dt.datetime) -> EntitlementValue | None:
    """The value when it needs no usage (inactive, boolean, static, not measured yet); None for a metered one."""
    if not is_active(entitlement, at):
        return no_access(at)
    if entitlement.type == EntitlementType.BOOLEAN:
        return EntitlementValue(type=entitlement.type, has_access=True, at=at)
    if entitlement.type == EntitlementType.STATIC:
        return EntitlementValue(type=entitlement.type, has_access=True, at=at, config=entitlement.config)
    if entitlement.measure_usage_from is None or at < entitlement.measure_usage_from:
        return EntitlementValue(
            type=entitlement.type, has_access=False, at=at, balance=ZERO, usage=ZERO, overage=ZERO,
            total_available_grant_amount=ZERO,
        )
    return None


def _metered_value(entitlement: Entitlement, at: dt.datetime, inputs: Inputs, state: State) -> EntitlementValue:
    period_start, period_end = current_period(entitlement=entitlement, at=at, resets=inputs.resets)
    bal = state.balance
    return EntitlementValue(
        type=entitlement.type,
        has_access=entitlement.is_soft_limit or bal > 0,
        at=at,
        balance=bal,
        usage=state.usage,
        overage=state.overage,
        total_available_grant_amount=exact_sum([state.grant_usage, bal]),
        grant_balances=dict(state.balances),
        period_start=period_start,
        period_end=period_end,
    )


def _window_starts(start: dt.datetime, end: dt.datetime, window_size: str, tz: ZoneInfo) -> list[dt.datetime]:
    """Window boundaries in `tz` covering [start, end); the first window starts at `start` itself."""
    from dateutil.relativedelta import relativedelta

    step = {"MINUTE": relativedelta(minutes=1), "HOUR": relativedelta(hours=1), "DAY": relativedelta(days=1),
            "MONTH": relativedelta(months=1)}.get(window_size)
    if step is None:
        raise InvalidInput("windowSize: must be one of MINUTE, HOUR, DAY, MONTH")
    local = start.astimezone(tz)
    floor = {
        "MINUTE": local.replace(second=0, microsecond=0),
        "HOUR": local.replace(minute=0, second=0, microsecond=0),
        "DAY": local.replace(hour=0, minute=0, second=0, microsecond=0),
        "MONTH": local.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    }[window_size]
    starts = [start]
    k = 1
    while True:
        # wall-clock arithmetic in the zone, then back to UTC: DST-correct day and month windows
        nxt = (floor.replace(tzinfo=None) + step * k).replace(tzinfo=tz).astimezone(dt.UTC)
        if nxt >= end:
            return starts
        if nxt > start:
            starts.append(nxt)
        if len(starts) > MAX_HISTORY_WINDOWS:
            raise InvalidInput(f"windowSize: more than {MAX_HISTORY_WINDOWS} windows; use a larger window or range")
        k += 1


def history(
    *, entitlement: Entitlement, start: dt.datetime | None, end: dt.datetime | None, window_size: str, tz: ZoneInfo
) -> History:
    """Usage and balance per window, and the burn-down segments, over [start, end)."""
    if entitlement.type != EntitlementType.METERED:
        raise InvalidInput(f"entitlement {entitlement.pk} is {entitlement.type}: only metered entitlements have history")
    now = timezone.now()
    measured_from = entitlement.measure_usage_from
    if start is not None and measured_from is not None and start < measured_from:  # upstream: a validation error
        raise InvalidInput(f"from: {format_rfc3339(start)} is before measureUsageFrom ({format_rfc3339(measured_from)})")
    end = ceil_minute(end or now)
    start = floor_minute(start or current_period(entitlement=entitlement, at=min(end, now))[0])
    if measured_from is not None:
        start = max(start, measured_from)
    if start >= end:
        raise InvalidInput("from: must be before to")
    starts = _window_starts(start, end, window_size, tz)
    before = compute(entitlement, start).state if start > (entitlement.measure_usage_from or start) else None
    result = _run_from(entitlement, before, start, end, starts)
    windows = _windows(result, starts, end, levels=grants_are_limits(entitlement))
    return History(windows=tuple(windows), segments=result.segments)


def _run_from(
    entitlement: Entitlement, before: State | None, start: dt.datetime, end: dt.datetime, starts: list[dt.datetime]
) -> RunResult:
    state = before or State(at=start, period_start=start)
    inputs = load_inputs(entitlement, start)
    timeline = engine.reset_timeline(
        usage_period=usage_period(entitlement),
        manual=inputs.resets,
        preserve_overage_at_reset=entitlement.preserve_overage_at_reset,
        start=state.at,
        until=end,
    )
    return run_engine(entitlement, inputs, state=state, until=end, resets=timeline, split_at=starts)


def _windows(result: RunResult, starts: list[dt.datetime], end: dt.datetime, levels: bool) -> list[HistoryWindow]:
    """Usage per window: the sum of its segments' usage, or for a LATEST meter (`levels`) the level at the
    window's end (its last segment's)."""
    bounds = [*starts, end]
    out: list[HistoryWindow] = []
    segments = list(result.segments)
    for w_start, w_end in itertools.pairwise(bounds):
        inside = [s for s in segments if w_start <= s.start < w_end]
        if not inside:
            continue
        used = inside[-1].usage if levels else exact_sum(s.usage for s in inside)
        if used == 0:
            continue
        out.append(HistoryWindow(start=w_start, end=w_end, usage=used, balance_at_start=inside[0].balance_at_start))
    return out
