"""Subscription resources → the spec's JSON (Subscription, SubscriptionExpanded, SubscriptionAddon)."""

import datetime as dt
from typing import Any

from catalog.api.ratecards import discounts_to_api, omit_none, rate_card_to_api
from catalog.models import Feature
from entitlements.api.render import entitlement_to_api
from entitlements.models import Entitlement
from openmeter_site.core.time import format_rfc3339
from subscriptions.models import Subscription, SubscriptionAddon
from subscriptions.services.addons import addon_quantity_timeline
from subscriptions.services.timeline import ItemSpan, PhaseSpan, billing_period_at, item_spans, phase_spans


def subscription_to_api(sub: Subscription, at: dt.datetime) -> dict[str, Any]:
    return omit_none({
        "id": sub.id,
        "name": sub.name,
        "description": sub.description,
        "metadata": sub.metadata,
        "annotations": sub.annotations or {},
        "customerId": sub.customer_id,
        "plan": {"id": sub.plan.id, "key": sub.plan.key, "version": sub.plan.version} if sub.plan else None,
        "currency": sub.currency,
        "activeFrom": format_rfc3339(sub.active_from),
        "activeTo": format_rfc3339(sub.active_to),
        "status": sub.status_at(at),
        "billingCadence": sub.billing_cadence,
        "billingAnchor": format_rfc3339(sub.billing_anchor),
        "proRatingConfig": {"enabled": sub.pro_rating_enabled, "mode": sub.pro_rating_mode},
        "settlementMode": sub.settlement_mode,
        "costBasisMode": sub.cost_basis_mode,
        "costBasisPins": [],
        "alignment": {"billablesMustAlign": sub.billables_must_align},
        "createdAt": format_rfc3339(sub.created_at),
        "updatedAt": format_rfc3339(sub.updated_at),
        "deletedAt": format_rfc3339(sub.deleted_at),
    })


def subscription_expanded_to_api(sub: Subscription, at: dt.datetime) -> dict[str, Any]:
    out = subscription_to_api(sub, at)
    period_at = max(at, sub.active_from)
    if sub.active_to is None or period_at < sub.active_to:
        period = billing_period_at(sub, period_at)
        out["alignment"]["currentAlignedBillingPeriod"] = {
            "from": format_rfc3339(period.start), "to": format_rfc3339(period.end),
        }
    spans = phase_spans(sub)
    ids = [i.entitlement_id for s in spans for i in s.phase.items.all() if i.entitlement_id]
    entitlements = {e.pk: e for e in Entitlement.objects.filter(pk__in=ids).select_related("customer")}
    out["phases"] = [phase_to_api(span, at, entitlements) for span in spans]
    return out


def feature_to_api(feature: Feature) -> dict[str, Any]:
    return omit_none({
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "metadata": feature.metadata,
        "meterSlug": feature.meter_slug,
        "meterGroupByFilters": feature.meter_group_by_filters,
        "createdAt": format_rfc3339(feature.created_at),
        "updatedAt": format_rfc3339(feature.updated_at),
        "archivedAt": format_rfc3339(feature.archived_at),
    })


def item_to_api(span: ItemSpan, entitlements: dict[str, Entitlement]) -> dict[str, Any]:
    item = span.item
    card = rate_card_to_api(item)
    out: dict[str, Any] = omit_none({
        "id": item.id,
        "key": item.key,
        "name": item.name,
        "description": item.description,
        "metadata": item.metadata,
        "annotations": item.annotations or {},
        "activeFrom": format_rfc3339(span.start),
        "activeTo": format_rfc3339(span.end),
        "featureKey": item.feature_key,
        "billingCadence": item.billing_cadence,
        "price": item.price_json,
        "discounts": card.get("discounts"),
        "taxConfig": item.tax_config,
        "createdAt": format_rfc3339(item.created_at),
        "updatedAt": format_rfc3339(item.updated_at),
    }, keep=("price", "billingCadence"))
    if item.feature is not None:
        included: dict[str, Any] = {"feature": feature_to_api(item.feature)}
        if item.entitlement_id in entitlements:
            included["entitlement"] = entitlement_to_api(entitlements[item.entitlement_id], v2=False)
        out["included"] = included
    return out


def _current_items(spans: list[ItemSpan], phase: PhaseSpan, at: dt.datetime) -> list[ItemSpan]:
    """Per key, the item in effect at `at` (in a future phase the first one, in a past phase the last one)."""
    by_key: dict[str, list[ItemSpan]] = {}
    for span in spans:
        by_key.setdefault(span.item.key, []).append(span)
    out = []
    for versions in by_key.values():
        if phase.contains(at):
            chosen = next((v for v in versions if v.contains(at)), None)
        elif phase.start > at:
            chosen = versions[0]
        else:
            chosen = versions[-1]
        if chosen is not None:
            out.append(chosen)
    return out


def phase_to_api(phase: PhaseSpan, at: dt.datetime, entitlements: dict[str, Entitlement]) -> dict[str, Any]:
    spans = item_spans(phase)
    timelines: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        timelines.setdefault(span.item.key, []).append(item_to_api(span, entitlements))
    p = phase.phase
    return omit_none({
        "id": p.id,
        "key": p.key,
        "name": p.name,
        "description": p.description,
        "metadata": p.metadata,
        "discounts": discounts_to_api(p.discounts_json),
        "activeFrom": format_rfc3339(phase.start),
        "activeTo": format_rfc3339(phase.end),
        "items": [item_to_api(s, entitlements) for s in _current_items(spans, phase, at)],
        "itemTimelines": timelines,
        "createdAt": format_rfc3339(p.created_at),
        "updatedAt": format_rfc3339(p.updated_at),
    })


def subscription_addon_to_api(sa: SubscriptionAddon, at: dt.datetime) -> dict[str, Any]:
    timeline = addon_quantity_timeline(sa)
    current = next((s for s in timeline if s.contains(at)), None)
    items = [item for phase in sa.subscription.phases.all() for item in phase.items.all()]
    return omit_none({
        "id": sa.id,
        "name": sa.name,
        "description": sa.description,
        "metadata": sa.metadata,
        "addon": {
            "id": sa.addon.id, "key": sa.addon.key, "version": sa.addon.version, "instanceType": sa.addon.instance_type,
        },
        "quantity": current.quantity if current else 0,
        "quantityAt": format_rfc3339(at),
        "timeline": [
            omit_none({"activeFrom": format_rfc3339(s.start), "activeTo": format_rfc3339(s.end), "quantity": s.quantity})
            for s in timeline
        ],
        "activeFrom": format_rfc3339(timeline[0].start) if timeline else None,
        "activeTo": format_rfc3339(timeline[-1].end) if timeline else None,
        "subscriptionId": sa.subscription_id,
        "rateCards": [
            {"rateCard": rate_card_to_api(c), "affectedSubscriptionItemIds": [i.id for i in items if i.key == c.key]}
            for c in sa.addon.rate_cards.all()
        ],
        "createdAt": format_rfc3339(sa.created_at),
        "updatedAt": format_rfc3339(sa.updated_at),
    })
