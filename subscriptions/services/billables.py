"""What a subscription bills over time: its items with the rate cards of purchased add-ons applied.

OpenMeter applies an add-on to the subscription (`subscription/addon/diff`): while an add-on is bought with
quantity q, each of its rate cards changes the item of the same key (or adds one when the phase has none):
- a flat price adds q times the add-on's amount to the item's flat amount (an item without a price takes the
  add-on's price; an add-on rate card with no matching item bills q times its own amount);
- a usage discount adds q times the add-on's free units.
Prices are otherwise left alone: a usage-based price can only come from a single-instance add-on onto an item
without a price (or with no item), which `check_addon_compatible` enforces when the add-on is bought.

A span is a piece of time in one phase during which one rate card key bills the same terms; an item is cut where
an add-on's quantity changes. Pure functions over prefetched rows: no queries, no clock.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import pairwise
from typing import Any

from catalog.models import RateCard
from openmeter_site.core.fields import normalized
from subscriptions.models import Subscription, SubscriptionAddon, SubscriptionItem
from subscriptions.services.addons import addon_quantity_timeline
from subscriptions.services.timeline import PhaseSpan, item_spans, phase_spans

FOREVER = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Terms:
    """The billing part of a rate card, in the wire shape."""

    name: str
    description: str | None
    feature_key: str | None
    billing_cadence: str | None
    price: dict[str, Any] | None
    discounts: dict[str, Any] | None
    tax_config: dict[str, Any] | None

    @classmethod
    def of(cls, card: SubscriptionItem | RateCard) -> "Terms":
        return cls(card.name, card.description, card.feature_key, card.billing_cadence, card.price_json,
                   card.discounts_json, card.tax_config)


@dataclass(frozen=True)
class BillableSpan:
    key: str
    phase: PhaseSpan
    start: dt.datetime
    end: dt.datetime | None
    terms: Terms
    item: SubscriptionItem | None  # None: the rate card of an add-on that matches no item
    addon: SubscriptionAddon | None  # the first add-on that changes these terms


@dataclass(frozen=True)
class _Overlay:
    addon: SubscriptionAddon
    card: RateCard
    start: dt.datetime
    end: dt.datetime
    quantity: int

    def covers(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


def _amount(value: Any) -> Decimal:
    return Decimal(str(value))


def _number(value: Decimal) -> str:
    return format(normalized(value), "f")


def extend(terms: Terms, card: RateCard, times: int) -> Terms:
    """`terms` with the add-on rate card applied `times` times (OpenMeter's `SubscriptionAddonRateCard.Apply`)."""
    if times <= 0:
        return terms
    price, added = terms.price, card.price_json
    if added:
        if price is None:
            price, times = dict(added), times - 1
        if times and price.get("type") == "flat" and added.get("type") == "flat":
            price = {**price, "amount": _number(_amount(price["amount"]) + times * _amount(added["amount"]))}
    discounts = terms.discounts
    free = ((card.discounts_json or {}).get("usage") or {}).get("quantity")
    if free is not None:
        have = ((discounts or {}).get("usage") or {}).get("quantity") or 0
        discounts = {**(discounts or {}), "usage": {"quantity": _number(_amount(have) + times * _amount(free))}}
    return replace(terms, price=price, discounts=discounts, feature_key=terms.feature_key or card.feature_key)


def _overlays(addons: Iterable[SubscriptionAddon], phase: PhaseSpan) -> dict[str, list[_Overlay]]:
    """Add-on rate cards by key, each clipped to the phase, for the segments with a quantity."""
    phase_end = phase.end or FOREVER
    out: dict[str, list[_Overlay]] = {}
    for sa in sorted(addons, key=lambda a: (a.created_at, a.pk)):
        for segment in addon_quantity_timeline(sa):
            start, end = max(segment.start, phase.start), min(segment.end or FOREVER, phase_end)
            if segment.quantity <= 0 or start >= end:
                continue
            for card in sa.addon.rate_cards.all():
                out.setdefault(card.key, []).append(_Overlay(sa, card, start, end, segment.quantity))
    return out


def _pieces(key: str, phase: PhaseSpan, items: Sequence, overlays: Sequence[_Overlay]) -> list[BillableSpan]:
    """Cut the phase at every item and add-on boundary of this key; each piece gets its item plus the add-ons."""
    phase_end = phase.end or FOREVER
    cuts = {phase.start, phase_end}
    for span in items:
        cuts |= {span.start, span.end or FOREVER}
    for overlay in overlays:
        cuts |= {overlay.start, overlay.end}
    bounds = sorted(c for c in cuts if phase.start <= c <= phase_end)
    out: list[BillableSpan] = []
    for start, end in pairwise(bounds):
        item = next((s.item for s in items if s.start <= start and (s.end or FOREVER) > start), None)
        terms, first_addon = (Terms.of(item) if item else None), None
        for overlay in (o for o in overlays if o.covers(start)):
            first_addon = first_addon or overlay.addon
            if terms is None:  # no item: the add-on's own rate card, applied quantity times in all
                terms = extend(Terms.of(overlay.card), overlay.card, overlay.quantity - 1)
            else:
                terms = extend(terms, overlay.card, overlay.quantity)
        if terms is None:
            continue
        piece = BillableSpan(key, phase, start, None if end == FOREVER else end, terms, item, first_addon)
        last = out[-1] if out else None
        if last and last.end == start and (last.item, last.terms, last.addon) == (item, terms, first_addon):
            out[-1] = replace(last, end=piece.end)
        else:
            out.append(piece)
    return out


def billable_spans(subscription: Subscription) -> list[BillableSpan]:
    """Every rate card key of every phase, cut into pieces of constant terms, ordered by key and start."""
    addons = list(subscription.addons.all())
    out: list[BillableSpan] = []
    for phase in phase_spans(subscription):
        items: dict[str, list] = {}
        for span in item_spans(phase):
            items.setdefault(span.item.key, []).append(span)
        overlays = _overlays(addons, phase)
        for key in sorted(set(items) | set(overlays)):
            out += _pieces(key, phase, items.get(key, []), overlays.get(key, []))
    return out
