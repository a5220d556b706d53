"""Entitlements provisioned from subscription items' entitlement templates.

`sync_entitlements` reconciles a subscription with its entitlements and is safe to run any number of
times: an item with a feature and a template gets an entitlement once it has started, ending when the
item ends (its `active_to` set ahead of time when the end is known); an item that ends gets its
entitlement ended; a later end (a continued cancellation, a stretched phase) ends the old entitlement
now and provisions a new one. It runs after every subscription write and from the periodic task
`subscriptions.sync_entitlements_due`, which provisions items whose start time has come.

Usage carries over on a plan change, as in OpenMeter: a metered entitlement resets on the subscription's
billing anchor with the template's usage period (default: the item's billing cadence) and measures usage
from the start of the usage period its item starts in. A change keeps the billing anchor, so the new
plan's entitlement counts the usage already made in the current period.
"""

import datetime as dt
from typing import TypedDict

from django.db import transaction
from django.utils import timezone

from catalog.models import Feature
from catalog.periods import billing_period_containing
from catalog.pricing_models import BooleanTemplate, MeteredTemplate, StaticTemplate
from customers.models import Customer
from entitlements.models import Entitlement
from entitlements.services import UsagePeriodInput, entitlement_create, entitlement_end
from subscriptions.models import Subscription, SubscriptionItem
from subscriptions.services.timeline import ItemSpan, all_item_spans


class _CommonArgs(TypedDict):
    """What every provisioned entitlement gets, whatever its type."""

    customer: Customer
    feature: Feature
    metadata: dict[str, str]
    annotations: dict[str, str]
    active_from: dt.datetime
    active_to: dt.datetime | None
    at: dt.datetime


def _provision(sub: Subscription, span: ItemSpan, start: dt.datetime, at: dt.datetime) -> Entitlement:
    item, template = span.item, span.item.entitlement_template
    assert item.feature is not None  # sync_entitlements provisions only items with a feature
    common: _CommonArgs = {
        "customer": sub.customer,
        "feature": item.feature,
        "metadata": (template.metadata or {}) if template else {},
        "annotations": {"subscription.id": sub.pk, "subscription.item.id": item.pk},
        "active_from": start,
        "active_to": span.end,
        "at": at,
    }
    if isinstance(template, MeteredTemplate):
        interval = template.usage_period or item.billing_cadence or sub.billing_cadence
        return entitlement_create(
            type="metered",
            usage_period=UsagePeriodInput(interval=interval, anchor=sub.billing_anchor),
            measure_usage_from=billing_period_containing(sub.billing_anchor, interval, span.start).start,
            is_soft_limit=template.is_soft_limit,
            preserve_overage_at_reset=template.preserve_overage_at_reset,
            issue_after_reset=template.issue_after_reset,
            issue_after_reset_priority=(
                template.issue_after_reset_priority if template.issue_after_reset is not None else None
            ),
            **common,
        )
    if isinstance(template, StaticTemplate):
        return entitlement_create(type="static", config=template.config, **common)
    assert isinstance(template, BooleanTemplate)
    return entitlement_create(type="boolean", **common)


def _sync_item(sub: Subscription, span: ItemSpan, at: dt.datetime) -> None:
    item = span.item
    current = Entitlement.objects.filter(pk=item.entitlement_id, deleted_at__isnull=True).first()
    if sub.deleted_at is not None or span.start > at:
        if current is not None:  # not started (any more): nothing to entitle
            entitlement_end(entitlement=current, at=at)
            _link(item, None)
        return
    if span.end is not None and span.end <= at:
        if current is not None and (current.active_to is None or current.active_to > span.end):
            entitlement_end(entitlement=current, at=span.end)
        return
    if current is None:
        _link(item, _provision(sub, span, span.start if item.entitlement_id is None else at, at))
    elif current.active_to != span.end:
        if span.end is not None and (current.active_to is None or current.active_to > span.end):
            entitlement_end(entitlement=current, at=span.end)  # ends earlier: scheduled on the same entitlement
        else:
            entitlement_end(entitlement=current, at=at)  # runs longer: a new entitlement from now on
            _link(item, _provision(sub, span, at, at))


def _link(item: SubscriptionItem, entitlement: Entitlement | None) -> None:
    item.entitlement_id = entitlement.pk if entitlement else None
    item.save(update_fields=["entitlement_id", "updated_at"])


@transaction.atomic
def sync_entitlements(*, subscription: Subscription, at: dt.datetime | None = None) -> None:
    at = at or timezone.now()
    for span in all_item_spans(subscription):
        if span.item.feature_id is not None and span.item.entitlement_template_json is not None:
            _sync_item(subscription, span, at)


def sync_entitlements_due(*, at: dt.datetime | None = None, limit: int = 500) -> int:
    """Reconcile the subscriptions that are running or about to (the periodic task's body)."""
    at = at or timezone.now()
    synced = 0
    due = Subscription.objects.filter(deleted_at__isnull=True, active_from__lte=at, active_to__isnull=True)
    due = due | Subscription.objects.filter(deleted_at__isnull=True, active_from__lte=at, active_to__gt=at)
    for sub_id in due.order_by("pk").values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update(skip_locked=True).filter(pk=sub_id).first()
            if subscription is not None:
                sync_entitlements(subscription=subscription, at=at)
                synced += 1
    return synced
