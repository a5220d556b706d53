"""Subscriptions → gathering invoice lines (OpenMeter's `billing/worker/subscriptionsync`).

Every rate card with a price becomes one line per service period: the item's span (its phase, narrowed by the
item's own start/end, and by the subscription's end) cut at the billing cadence's boundaries from the billing
anchor. Flat fees bill in advance (at the period start) or in arrears (at its end), pro-rated when the period is
shorter than a full billing period (a mid-period start, cancel or plan change) and pro-rating is on; usage bills in
arrears for exactly the period. One-time fees (no cadence) bill once at the item's start.

Sync is a reconciliation and idempotent: each line carries a key (item, period start); lines still gathering are
created, updated or removed to match; lines already on a standard invoice are left alone. Lines are created for
periods that have started by `at`, so a future period never shows up early.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, LineManagedBy
from billing.models import InvoiceStatus as S
from billing.services.invoicing import LineInput, gathering_invoice_get_or_create, line_from_input, refresh_gathering
from billing.services.locks import lock_customer
from billing.services.pricing import prorate
from catalog.periods import billing_period_containing, next_boundary_after, periods_between
from subscriptions.models import Subscription
from subscriptions.services.timeline import ItemSpan, all_item_spans

SYNCED_FIELDS = ("name", "period_start", "period_end", "invoice_at", "price", "feature_key", "rate_card_discounts",
                 "tax_config")


@dataclass(frozen=True)
class SyncResult:
    created: int = 0
    updated: int = 0
    removed: int = 0


def _flat_price(price: dict, amount: Decimal) -> dict:
    return {**price, "amount": format(amount.normalize(), "f")}


def _line(sub: Subscription, span: ItemSpan, start: dt.datetime, end: dt.datetime, full: tuple) -> LineInput:
    item = span.item
    price = dict(item.price_json)
    invoice_at = end
    if price.get("type") == "flat":
        if price.get("paymentTerm", "in_advance") == "in_advance":
            invoice_at = start
        if sub.pro_rating_enabled and (start, end) != full:
            price = _flat_price(price, prorate(Decimal(str(price["amount"])), (start, end), full, sub.currency))
    return LineInput(
        name=item.name, description=item.description, period_start=start, period_end=end, invoice_at=invoice_at,
        price=price, feature_key=item.feature_key if price.get("type") != "flat" else None, tax_config=item.tax_config,
        discounts=item.discounts_json, managed_by=LineManagedBy.SUBSCRIPTION,
        sync_key=f"subscription:{item.pk}:{start.isoformat()}",
        subscription={"subscription_id": sub.pk, "phase_id": span.phase.phase.pk, "item_id": item.pk,
                      "billing_period_start": full[0], "billing_period_end": full[1]},
    )


def desired_lines(sub: Subscription, *, at: dt.datetime) -> Iterator[LineInput]:
    """The lines the subscription should have by `at` (service periods that have started)."""
    for span in all_item_spans(sub):
        if not span.item.price_json or span.start > at:
            continue
        cadence = span.item.billing_cadence
        if cadence is None:  # one-time fee: the billing period it starts in
            full = billing_period_containing(sub.billing_anchor, sub.billing_cadence, span.start)
            end = min(span.end, full.end) if span.end else full.end
            yield _line(sub, span, span.start, end, (span.start, end))
            continue
        horizon = next_boundary_after(sub.billing_anchor, cadence, at)
        stop = min(span.end, horizon) if span.end else horizon
        for period in periods_between(sub.billing_anchor, cadence, span.start, stop):
            full = billing_period_containing(sub.billing_anchor, cadence, period.start)
            yield _line(sub, span, period.start, period.end, (full.start, full.end))


def _apply(line: InvoiceLine, wanted: InvoiceLine) -> bool:
    changed = [f for f in SYNCED_FIELDS if getattr(line, f) != getattr(wanted, f)]
    for f in changed:
        setattr(line, f, getattr(wanted, f))
    if changed:
        line.save(update_fields=[*changed, "updated_at"])
    return bool(changed)


def subscription_sync(*, subscription_id: str, at: dt.datetime | None = None) -> SyncResult:
    at = at or timezone.now()
    sub = Subscription.objects.select_related("customer").get(pk=subscription_id)
    with transaction.atomic():
        lock_customer(sub.customer_id)
        desired = {} if sub.deleted_at else {d.sync_key: d for d in desired_lines(sub, at=at)}
        existing = InvoiceLine.objects.filter(
            subscription_id=sub.pk, parent__isnull=True, deleted_at__isnull=True, sync_key__isnull=False
        ).select_related("invoice")
        created = updated = removed = 0
        touched: set[str] = set()
        for line in existing:
            wanted = desired.pop(line.sync_key, None)
            if line.invoice.status != S.GATHERING:
                continue  # already invoiced: immutable here
            if wanted is None:
                line.deleted_at = at
                line.save(update_fields=["deleted_at", "updated_at"])
                removed += 1
            elif _apply(line, line_from_input(line.invoice, wanted, line.currency)):
                updated += 1
            touched.add(line.invoice_id)
        if desired:
            invoice, _ = gathering_invoice_get_or_create(sub.customer, sub.currency)
            InvoiceLine.objects.bulk_create([line_from_input(invoice, d, sub.currency) for d in desired.values()])
            created = len(desired)
            touched.add(invoice.pk)
        for invoice in Invoice.objects.filter(pk__in=touched):
            refresh_gathering(invoice)
    return SyncResult(created, updated, removed)


# ended (or deleted) subscriptions are still reconciled for a while, so their last period is settled
SETTLE_AFTER_END = dt.timedelta(days=62)


def subscriptions_sync_all(*, at: dt.datetime | None = None) -> int:
    """The periodic sync: every subscription that has started and has not long ended. Idempotent."""
    at = at or timezone.now()
    recent = at - SETTLE_AFTER_END
    ids = (
        Subscription.objects.filter(active_from__lte=at)
        .filter(Q(active_to__isnull=True) | Q(active_to__gte=recent))
        .filter(Q(deleted_at__isnull=True) | Q(deleted_at__gte=recent))
        .order_by("pk").values_list("pk", flat=True)
    )
    count = 0
    for subscription_id in ids.iterator(chunk_size=500):
        subscription_sync(subscription_id=subscription_id, at=at)
        count += 1
    return count
