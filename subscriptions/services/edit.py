"""Editing a running subscription (PATCH, `SubscriptionEdit`): add/remove items and phases, stretch phases.

Edits apply at the edit time (`immediate`: now; `next_billing_cycle`: the end of the current billing
period). An item added to the running phase starts then; an item removed from it ends then. Edits to
future phases change them outright. Past phases are history and cannot be edited.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.periods import add_duration, parse_duration
from catalog.services.ratecards import RateCardInput, check_rate_cards
from openmeter_site.core.errors import InvalidInput
from subscriptions.events import subscription_changed
from subscriptions.models import Subscription, SubscriptionItem, SubscriptionPhase
from subscriptions.services import provisioning
from subscriptions.services.lifecycle import (
    customer_currency_set_if_unset,
    item_from_rate_card,
    require_action,
    subscription_get,
)
from subscriptions.services.timeline import PhaseSpan, item_spans, phase_spans, resolve_timing


@dataclass(frozen=True)
class AddItem:
    phase_key: str
    rate_card: RateCardInput


@dataclass(frozen=True)
class RemoveItem:
    phase_key: str
    item_key: str


@dataclass(frozen=True)
class AddPhase:
    key: str
    name: str
    start_after: str | None  # ISO 8601 duration from the subscription's start
    duration: str | None = None  # given: the phase is inserted and the later phases move by it
    description: str | None = None
    discounts: dict[str, Any] | None = None


@dataclass(frozen=True)
class RemovePhase:
    phase_key: str
    shift: str  # next: the later phases move up to fill the gap; prev: the previous phase lasts longer


@dataclass(frozen=True)
class StretchPhase:
    phase_key: str
    extend_by: str  # ISO 8601 duration


@dataclass(frozen=True)
class UnscheduleEdit:
    """Undo item changes of the running phase that have not taken effect yet."""


EditOperation = AddItem | RemoveItem | AddPhase | RemovePhase | StretchPhase | UnscheduleEdit


@dataclass(frozen=True)
class EditContext:
    subscription: Subscription
    at: dt.datetime  # the request time
    when: dt.datetime  # when the edit takes effect


def _span(ctx: EditContext, phase_key: str) -> PhaseSpan:
    span = next((s for s in phase_spans(ctx.subscription) if s.phase.key == phase_key), None)
    if span is None:
        raise InvalidInput(f"phaseKey: the subscription has no phase {phase_key!r}")
    if span.end is not None and span.end <= ctx.when:
        raise InvalidInput(f"phaseKey: phase {phase_key!r} has ended and cannot be edited")
    return span


def _add_item(ctx: EditContext, op: AddItem) -> None:
    span = _span(ctx, op.phase_key)
    card = op.rate_card
    features = check_rate_cards([card], "rateCard")
    running = span.start <= ctx.when
    if any(s.item.key == card.key and (s.end is None or s.end > ctx.when) for s in item_spans(span)):
        raise InvalidInput(f"rateCard.key: phase {span.phase.key!r} already has an item {card.key!r}; remove it first")
    item_from_rate_card(span.phase, card, features, starts_at=ctx.when if running else None).save()


def _remove_item(ctx: EditContext, op: RemoveItem) -> None:
    span = _span(ctx, op.phase_key)
    live = [s for s in item_spans(span) if s.item.key == op.item_key and (s.end is None or s.end > ctx.when)]
    if not live:
        raise InvalidInput(f"itemKey: phase {span.phase.key!r} has no item {op.item_key!r} to remove")
    for s in live:
        if s.start >= ctx.when:
            s.item.delete()
        else:
            s.item.ends_at = ctx.when
            s.item.save(update_fields=["ends_at", "updated_at"])


def _shift_from(ctx: EditContext, start: dt.datetime, duration: str, sign: int) -> None:
    phases = SubscriptionPhase.objects.filter(subscription=ctx.subscription, active_from__gte=start).order_by(
        "-active_from" if sign > 0 else "active_from"
    )
    for phase in phases:  # in this order the unique (subscription, active_from) never collides midway
        phase.active_from = add_duration(phase.active_from, duration, sign)
        phase.save(update_fields=["active_from", "updated_at"])


def _add_phase(ctx: EditContext, op: AddPhase) -> None:
    sub = ctx.subscription
    if sub.phases.filter(key=op.key).exists():
        raise InvalidInput(f"phase.key: the subscription already has a phase {op.key!r}")
    start = add_duration(sub.active_from, op.start_after or "P0D")
    if start <= ctx.when:
        raise InvalidInput("phase.startAfter: a new phase must start in the future")
    if op.duration:
        _shift_from(ctx, start, op.duration, 1)
    elif sub.phases.filter(active_from=start).exists():
        raise InvalidInput("phase.startAfter: another phase starts then; give the new phase a duration to insert it")
    SubscriptionPhase.objects.create(
        subscription=sub, key=op.key, name=op.name, description=op.description, discounts_json=op.discounts,
        active_from=start,
    )


def _remove_phase(ctx: EditContext, op: RemovePhase) -> None:
    span = _span(ctx, op.phase_key)
    if span.start <= ctx.when:
        raise InvalidInput(f"phaseKey: phase {span.phase.key!r} has started; only future phases can be removed")
    following = list(SubscriptionPhase.objects.filter(subscription=ctx.subscription, active_from__gt=span.start))
    span.phase.delete()
    if op.shift == "next" and following:
        gap = following[0].active_from - span.start  # the following phases move up to fill the gap
        for phase in sorted(following, key=lambda p: p.active_from):
            phase.active_from -= gap
            phase.save(update_fields=["active_from", "updated_at"])


def _stretch_phase(ctx: EditContext, op: StretchPhase) -> None:
    span = _span(ctx, op.phase_key)
    if span.end is None:
        raise InvalidInput(f"phaseKey: phase {span.phase.key!r} is open-ended; there is nothing to stretch")
    if parse_duration(op.extend_by).is_zero:
        raise InvalidInput("extendBy: must not be zero")
    _shift_from(ctx, span.end, op.extend_by, 1)


def _unschedule_edit(ctx: EditContext, op: UnscheduleEdit) -> None:
    span = next((s for s in phase_spans(ctx.subscription) if s.contains(ctx.at)), None)
    if span is None:
        return
    SubscriptionItem.objects.filter(phase=span.phase, starts_at__gt=ctx.at).delete()
    SubscriptionItem.objects.filter(phase=span.phase, ends_at__gt=ctx.at).update(ends_at=None, updated_at=ctx.at)


# each operation, its name in the API's `op`, and what applies it
OPERATIONS: dict[type, tuple[str, Callable[[EditContext, Any], None]]] = {
    AddItem: ("add_item", _add_item),
    RemoveItem: ("remove_item", _remove_item),
    AddPhase: ("add_phase", _add_phase),
    RemovePhase: ("remove_phase", _remove_phase),
    StretchPhase: ("stretch_phase", _stretch_phase),
    UnscheduleEdit: ("unschedule_edit", _unschedule_edit),
}


@transaction.atomic
def subscription_edit(
    *, subscription_id: str, customizations: Sequence[EditOperation], timing: str | dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> Subscription:
    """Apply the operations in order, all or nothing."""
    at = at or timezone.now()
    subscription = Subscription.objects.select_for_update().get(pk=subscription_get(subscription_id=subscription_id).pk)
    require_action(subscription, "edit", at)
    ctx = EditContext(subscription, at, resolve_timing(timing, subscription, at))
    for i, op in enumerate(customizations):
        name, apply = OPERATIONS[type(op)]
        try:
            apply(ctx, op)
        except InvalidInput as exc:
            raise InvalidInput(f"customizations[{i}] ({name}): {exc.detail}", extensions=exc.extensions) from exc
    customer_currency_set_if_unset(subscription)
    provisioning.sync_entitlements(subscription=subscription, at=at)
    subscription_changed(subscription.pk, at)
    return subscription_get(subscription_id=subscription.pk)
