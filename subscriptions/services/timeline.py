"""Where a subscription's phases and items start and end, and how timing requests become instants.

Phases run back to back: a phase ends where the next starts; the last one ends with the subscription
(open-ended while it is). Phases that would start at or after the subscription's end never run and are
left out. Items run for their phase unless narrowed by `starts_at`/`ends_at`.
"""

import datetime as dt
from dataclasses import dataclass

from catalog.periods import Period, billing_period_containing
from openmeter_site.core.errors import InvalidInput
from subscriptions.models import Subscription, SubscriptionItem, SubscriptionPhase

IMMEDIATE = "immediate"
NEXT_BILLING_CYCLE = "next_billing_cycle"


@dataclass(frozen=True)
class PhaseSpan:
    phase: SubscriptionPhase
    start: dt.datetime
    end: dt.datetime | None

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True)
class ItemSpan:
    item: SubscriptionItem
    phase: PhaseSpan
    start: dt.datetime
    end: dt.datetime | None

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def _min_end(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def phase_spans(subscription: Subscription) -> list[PhaseSpan]:
    phases = sorted(subscription.phases.all(), key=lambda p: p.active_from)
    if subscription.active_to is not None:
        phases = [p for p in phases if p.active_from < subscription.active_to] or phases[:1]
    spans = []
    for i, phase in enumerate(phases):
        end = phases[i + 1].active_from if i + 1 < len(phases) else subscription.active_to
        spans.append(PhaseSpan(phase, phase.active_from, _min_end(end, subscription.active_to)))
    return spans


def item_spans(span: PhaseSpan) -> list[ItemSpan]:
    out = []
    for item in span.phase.items.all():
        start = max(span.start, item.starts_at) if item.starts_at else span.start
        end = _min_end(span.end, item.ends_at)
        if end is None or start < end:
            out.append(ItemSpan(item, span, start, end))
    return sorted(out, key=lambda s: (s.item.key, s.start))


def all_item_spans(subscription: Subscription) -> list[ItemSpan]:
    return [item for span in phase_spans(subscription) for item in item_spans(span)]


def phase_at(subscription: Subscription, at: dt.datetime) -> PhaseSpan | None:
    return next((s for s in phase_spans(subscription) if s.contains(at)), None)


def billing_period_at(subscription: Subscription, at: dt.datetime) -> Period:
    return billing_period_containing(subscription.billing_anchor, subscription.billing_cadence, at)


def resolve_timing(timing: str | dt.datetime | None, subscription: Subscription, at: dt.datetime) -> dt.datetime:
    """`immediate` → now; `next_billing_cycle` → the end of the current billing period; a time → itself,
    which must not be in the past."""
    if timing is None or timing == IMMEDIATE:
        return max(at, subscription.active_from)
    if timing == NEXT_BILLING_CYCLE:
        if at < subscription.active_from:
            return subscription.active_from
        return billing_period_at(subscription, at).end
    if isinstance(timing, dt.datetime):
        if timing < at:
            raise InvalidInput(f"timing: {timing.isoformat()} is in the past")
        return timing
    raise InvalidInput(f"timing: must be immediate, next_billing_cycle or a date-time, got {timing!r}")
