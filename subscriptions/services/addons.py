"""Add-ons bought on a subscription, with a quantity that changes over time.

Each create or update appends a segment to the quantity timeline at the requested time (later segments
are replaced); quantity 0 ends the purchase. Billing applies the add-on's rate cards to the items of the same
key, quantity times, per segment (`billables`); they are listed with the subscription items they affect.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Addon, AddonInstanceType, CatalogStatus, PlanAddon, RateCard
from catalog.services.addons import addon_get
from openmeter_site.core.errors import InvalidInput, NotFound
from subscriptions.events import subscription_changed
from subscriptions.models import Subscription, SubscriptionAddon, SubscriptionAddonQuantity, SubscriptionItem
from subscriptions.services.lifecycle import require_action, subscription_conflict, subscription_get
from subscriptions.services.timeline import item_spans, phase_at, phase_spans, resolve_timing


@dataclass(frozen=True)
class QuantitySegment:
    start: dt.datetime
    end: dt.datetime | None
    quantity: int

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def addon_quantity_timeline(sa: SubscriptionAddon) -> list[QuantitySegment]:
    """Segments [start, end) with their quantity, ending with the subscription."""
    rows = sorted(sa.quantities.all(), key=lambda q: q.active_from)
    sub_end = sa.subscription.active_to
    out = []
    for i, row in enumerate(rows):
        end = rows[i + 1].active_from if i + 1 < len(rows) else sub_end
        if sub_end is not None and end is not None:
            end = min(end, sub_end)
        if end is None or row.active_from < end:
            out.append(QuantitySegment(row.active_from, end, row.quantity))
    return out


def subscription_addon_quantity_at(sa: SubscriptionAddon, at: dt.datetime) -> int:
    return next((s.quantity for s in addon_quantity_timeline(sa) if s.contains(at)), 0)


def subscription_addon_list_qs(subscription: Subscription) -> QuerySet[SubscriptionAddon]:
    return (
        SubscriptionAddon.objects.filter(subscription=subscription)
        .select_related("addon", "subscription")
        .prefetch_related("quantities", "addon__rate_cards", "subscription__phases__items")
    )


def subscription_addon_get(*, subscription_id: str, subscription_addon_id: str) -> SubscriptionAddon:
    subscription = subscription_get(subscription_id=subscription_id)
    found = subscription_addon_list_qs(subscription).filter(pk=subscription_addon_id).first()
    if found is None:
        raise NotFound(f"subscription add-on {subscription_addon_id!r} not found on subscription {subscription_id}")
    return found


def _check_quantity(sa_addon_type: str, quantity: int, plan_addon: PlanAddon | None) -> None:
    if quantity < 0:
        raise InvalidInput("quantity: must not be negative")
    if sa_addon_type == AddonInstanceType.SINGLE and quantity > 1:
        raise InvalidInput("quantity: a single-instance add-on can be bought once (quantity 0 or 1)")
    if plan_addon is not None and plan_addon.max_quantity is not None and quantity > plan_addon.max_quantity:
        raise InvalidInput(f"quantity: at most {plan_addon.max_quantity} of this add-on can be bought on this plan")


def _card_conflicts(card: RateCard, item: SubscriptionItem) -> list[str]:
    """Why an add-on rate card cannot be applied to the item of the same key (OpenMeter's
    `ValidateRateCardsHaveCompatible*`): prices combine only as flat amounts with the same payment term."""
    out = []
    mine, theirs = card.price_json, item.price_json
    if mine and theirs:
        if mine.get("type") != "flat" or theirs.get("type") != "flat":
            out.append("only flat prices can be combined")
        elif mine.get("paymentTerm", "in_advance") != theirs.get("paymentTerm", "in_advance"):
            out.append("the payment terms differ")
    if card.feature_key and item.feature_key and card.feature_key != item.feature_key:
        out.append("the feature keys differ")
    if card.billing_cadence and item.billing_cadence and card.billing_cadence != item.billing_cadence:
        out.append("the billing cadences differ")
    if (card.discounts_json or {}).get("percentage") and (item.discounts_json or {}).get("percentage"):
        out.append("both have a percentage discount")
    return out


def check_addon_compatible(subscription: Subscription, addon: Addon, start: dt.datetime) -> None:
    """Each add-on rate card must fit the subscription items of the same key it will change, from `start` on."""
    problems = []
    items = [s.item for p in phase_spans(subscription) for s in item_spans(p) if s.end is None or s.end > start]
    for card in addon.rate_cards.all():
        for item in (i for i in items if i.key == card.key):
            problems += [f"addon: rate card {card.key!r} cannot be applied to the subscription item {item.key!r} "
                         f"of phase {item.phase.key!r}: {reason}" for reason in _card_conflicts(card, item)]
    if problems:
        raise InvalidInput("; ".join(problems))


def _plan_addon(subscription: Subscription, addon_id: str, start: dt.datetime) -> PlanAddon | None:
    """A plan subscription may buy only the add-ons its plan offers, from the offering phase on."""
    if subscription.plan_id is None:
        return None
    link = PlanAddon.objects.filter(plan_id=subscription.plan_id, addon_id=addon_id, deleted_at__isnull=True).first()
    if link is None:
        raise InvalidInput(f"addon: add-on {addon_id} is not offered by plan {subscription.plan}")
    keys = [s.phase.key for s in phase_spans(subscription)]
    current = phase_at(subscription, start)
    if link.from_plan_phase in keys and current is not None and keys.index(current.phase.key) < keys.index(
        link.from_plan_phase
    ):
        message = f"addon: available from phase {link.from_plan_phase!r}, the subscription is in {current.phase.key!r}"
        raise InvalidInput(message)
    return link


@transaction.atomic
def subscription_addon_create(
    *, subscription_id: str, addon_id: str, quantity: int, timing: str | dt.datetime | None,
    name: str, description: str | None = None, metadata: dict[str, str] | None = None, at: dt.datetime | None = None,
) -> SubscriptionAddon:
    at = at or timezone.now()
    subscription = Subscription.objects.select_for_update().get(pk=subscription_get(subscription_id=subscription_id).pk)
    require_action(subscription, "add_addon", at)
    addon = addon_get(id_or_key=addon_id)
    if addon.status_at(at) != CatalogStatus.ACTIVE:
        raise InvalidInput(f"addon: {addon} is {addon.status_at(at)}; only an active add-on can be bought")
    if addon.currency != subscription.currency:
        message = f"addon: add-on currency {addon.currency} does not match the subscription's {subscription.currency}"
        raise InvalidInput(message)
    if SubscriptionAddon.objects.filter(subscription=subscription, addon=addon).exists():
        raise subscription_conflict(
            f"add-on {addon} is already on subscription {subscription.pk}; update its quantity instead",
            code="addon_already_purchased", field="addon.id")
    start = resolve_timing(timing, subscription, at)
    _check_quantity(addon.instance_type, quantity, _plan_addon(subscription, addon.pk, start))
    check_addon_compatible(subscription, addon, start)
    sa = SubscriptionAddon.objects.create(
        subscription=subscription, addon=addon, name=name, description=description, metadata=metadata
    )
    SubscriptionAddonQuantity.objects.create(subscription_addon=sa, active_from=start, quantity=quantity)
    subscription_changed(subscription.pk, at)
    return subscription_addon_get(subscription_id=subscription.pk, subscription_addon_id=sa.pk)


@transaction.atomic
def subscription_addon_update(
    *, subscription_id: str, subscription_addon_id: str, quantity: int | None = None,
    timing: str | dt.datetime | None = None, name: str | None = None, description: str | None = None,
    metadata: dict[str, str] | None = None, at: dt.datetime | None = None,
) -> SubscriptionAddon:
    """Rename or re-describe, and/or change the quantity from `timing` on (a new timeline segment)."""
    at = at or timezone.now()
    sa = subscription_addon_get(subscription_id=subscription_id, subscription_addon_id=subscription_addon_id)
    subscription = Subscription.objects.select_for_update().get(pk=sa.subscription_id)
    if quantity is not None:
        require_action(subscription, "add_addon", at)
        start = resolve_timing(timing, subscription, at)
        _check_quantity(sa.addon.instance_type, quantity, _plan_addon(subscription, sa.addon_id, start))
        sa.quantities.filter(active_from__gte=start).delete()
        SubscriptionAddonQuantity.objects.create(subscription_addon=sa, active_from=start, quantity=quantity)
        subscription_changed(subscription.pk, at)
    for attr, value in (("name", name), ("description", description), ("metadata", metadata)):
        if value is not None:
            setattr(sa, attr, value)
    sa.save()
    return subscription_addon_get(subscription_id=subscription_id, subscription_addon_id=sa.pk)
