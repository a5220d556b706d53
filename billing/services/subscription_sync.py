"""Subscriptions → invoice lines (OpenMeter's `billing/worker/subscriptionsync`).

What is billed comes from `subscriptions.services.billables`: each item with the add-ons bought on it applied,
and the rate cards of add-ons that match no item, cut where an add-on's quantity changes. Every such span with a
price becomes one line per service period: the span narrowed by the subscription's end, cut at the billing
cadence's boundaries from the billing anchor. Flat fees bill in advance (at the period start) or in arrears (at its
end), pro-rated when the period is shorter than a full billing period (a mid-period start, cancel, plan change or
add-on change) and pro-rating is on; a period cut short by the subscription's end is billed in full when the
billing profile's `subscriptionEndProrationMode` is `bill_full_period`. Usage bills in arrears for exactly the
period. One-time fees (no cadence) bill once. As upstream (`targetstate/phaseiterator.go`): periods are cut to
whole seconds (the meters' resolution); a one-time fee's service period runs from its start to the end of its
phase (or of the item in an open-ended phase; else it is an instant, and a fee in arrears waits for an end); a
line's billing period is the subscription's billing period holding its start, within its phase
(`GetAlignedBillingPeriodAt`); a fee in advance is invoiced at the billing period's start and anything else at the
later of the service and billing period ends; and a flat fee that comes to zero (free, or pro-rated to nothing)
makes no line.

Sync is a reconciliation and idempotent: each line carries a key (item or add-on rate card, period start). Missing
lines are created on the gathering invoice; lines that differ or are no longer wanted are changed or removed
through `line_patches`: in place on the gathering invoice and on drafts that can still be edited, as a warning on
immutable invoices. A line split by progressive billing keeps its key on its first part, and the parts are
shortened, lengthened or removed together. Lines are created for periods that have started by `at`, so a future
period never shows up early.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import InvoiceLine, LineManagedBy
from billing.models import InvoiceStatus as S
from billing.services.gathering import LineInput, gathering_invoice_get_or_create, line_from_input
from billing.services.line_patches import LinePatches
from billing.services.locks import lock_customer
from billing.services.pricing import prorate
from billing.services.profiles import profile_for_customer
from catalog.periods import billing_period_containing, next_boundary_after, periods_between
from openmeter_site.core.fields import normalized
from openmeter_site.core.money import round_money
from subscriptions.models import Subscription
from subscriptions.services.billables import BillableSpan, billable_spans

SYNCED_FIELDS = ("name", "period_start", "period_end", "invoice_at", "price", "feature_key", "rate_card_discounts",
                 "tax_config")
RATE_CARD_FIELDS = ("name", "price", "feature_key", "rate_card_discounts", "tax_config")


@dataclass(frozen=True)
class SyncResult:
    created: int = 0
    updated: int = 0
    removed: int = 0


@dataclass(frozen=True)
class _Context:
    sub: Subscription
    bill_full_period: bool


def _flat_price(price: dict, amount: Decimal) -> dict:
    return {**price, "amount": format(normalized(amount), "f")}


def _prorates(ctx: _Context, start: dt.datetime, end: dt.datetime, full: tuple) -> bool:
    if not ctx.sub.pro_rating_enabled or (start, end) == full:
        return False
    cut_by_the_end = ctx.sub.active_to is not None and _to_second(ctx.sub.active_to) <= end
    return not (ctx.bill_full_period and cut_by_the_end)


def _sync_key(sub: Subscription, span: BillableSpan, start: dt.datetime) -> str:
    if span.item is not None:
        return f"subscription:{span.item.pk}:{start.isoformat()}"
    return f"subscription:{sub.pk}:{span.phase.phase.pk}:{span.key}:{start.isoformat()}"


def _to_second(at: dt.datetime) -> dt.datetime:
    return at.replace(microsecond=0)


def _billing_period(sub: Subscription, span: BillableSpan, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The subscription's billing period holding `at`, narrowed to the span's phase."""
    period = billing_period_containing(sub.billing_anchor, sub.billing_cadence, at)
    end = period.end if span.phase.end is None else min(period.end, span.phase.end)
    return max(period.start, span.phase.start), end


def _line(
    ctx: _Context, span: BillableSpan, service: tuple[dt.datetime, dt.datetime], full: tuple
) -> LineInput | None:
    """The line of one service period; `full` is the item's whole cadence period (for pro-rating)."""
    terms = span.terms
    price = dict(terms.price or {})
    flat = price.get("type") == "flat"
    billing = tuple(map(_to_second, _billing_period(ctx.sub, span, service[0])))
    start, end = map(_to_second, service)
    full = tuple(map(_to_second, full))
    if start == end and not flat:
        return None
    in_advance = flat and price.get("paymentTerm", "in_advance") == "in_advance"
    if full[0] == full[1] and not in_advance:  # billed at its end, which an open-ended phase does not have yet
        return None
    invoice_at = max(end, billing[1])
    if flat:
        if in_advance:
            invoice_at = billing[0]
        amount = Decimal(str(price["amount"]))  # rounded to the currency, pro-rated or not (as upstream)
        if _prorates(ctx, start, end, full):
            amount = prorate(amount, (start, end), full, ctx.sub.currency)
        else:
            amount = round_money(amount, ctx.sub.currency)
        if not amount:
            return None
        price = _flat_price(price, amount)
    # an add-on rate card that matches no item refers to the add-on purchase as its item
    item_id = span.item.pk if span.item is not None else span.addon.pk if span.addon is not None else None
    return LineInput(
        name=terms.name, description=terms.description, period_start=start, period_end=end, invoice_at=invoice_at,
        price=price, feature_key=None if flat else terms.feature_key, tax_config=terms.tax_config,
        discounts=terms.discounts, managed_by=LineManagedBy.SUBSCRIPTION, sync_key=_sync_key(ctx.sub, span, service[0]),
        subscription={"subscription_id": ctx.sub.pk, "phase_id": span.phase.phase.pk, "item_id": item_id,
                      "billing_period_start": billing[0], "billing_period_end": billing[1]},
    )


def _service_periods(sub: Subscription, span: BillableSpan, at: dt.datetime) -> Iterator[tuple[tuple, tuple]]:
    """(service period, the item's whole cadence period) for each period of the span that has started by `at`."""
    cadence = span.terms.billing_cadence
    if cadence is None:  # one-time: from its start to the end of its phase, else of the item, else an instant
        full_end = span.phase.end or span.end or span.start
        yield (span.start, min(full_end, span.end) if span.end else full_end), (span.start, full_end)
        return
    horizon = next_boundary_after(sub.billing_anchor, cadence, at)
    stop = min(span.end, horizon) if span.end else horizon
    for period in periods_between(sub.billing_anchor, cadence, span.start, stop):
        full = billing_period_containing(sub.billing_anchor, cadence, period.start)
        yield (period.start, period.end), (full.start, full.end)


def desired_lines(sub: Subscription, *, at: dt.datetime, bill_full_period: bool = False) -> Iterator[LineInput]:
    """The lines the subscription should have by `at` (service periods that have started)."""
    ctx = _Context(sub, bill_full_period)
    for span in billable_spans(sub):
        if not span.terms.price or span.start > at:
            continue
        for service, full in _service_periods(sub, span, at):
            line = _line(ctx, span, service, full)
            if line is not None:
                yield line


def _bills_full_period(sub: Subscription) -> bool:
    workflow = profile_for_customer(sub.customer).workflow
    return workflow["invoicing"].get("subscriptionEndProrationMode") == "bill_full_period"


def _reconcile_split(patches: LinePatches, parts: Sequence[InvoiceLine], wanted: InvoiceLine | None) -> None:
    """A progressively billed line: its parts follow the wanted period's end (OpenMeter's split line group
    shrink/extend); the rate card fields follow on every part."""
    parts = sorted(parts, key=lambda p: p.period_start)
    if wanted is None:
        for part in parts:
            patches.remove(part)
        return
    end = wanted.period_end
    common = {f: getattr(wanted, f) for f in RATE_CARD_FIELDS}
    for i, part in enumerate(parts):
        if part.period_start >= end:
            patches.remove(part)
            continue
        values: dict[str, Any] = {**common, "split_group_end": end}
        if part.period_end > end or (i == len(parts) - 1 and part.period_end < end):
            values["period_end"] = end
            if part.invoice.status == S.GATHERING:
                values["invoice_at"] = wanted.invoice_at
        patches.change(part, values)


def subscription_sync(*, subscription_id: str, at: dt.datetime | None = None) -> SyncResult:
    at = at or timezone.now()
    sub = Subscription.objects.select_related("customer").prefetch_related(
        "phases__items", "addons__quantities", "addons__addon__rate_cards").get(pk=subscription_id)
    with transaction.atomic():
        lock_customer(sub.customer_id)
        wanted_lines = [] if sub.deleted_at else desired_lines(sub, at=at, bill_full_period=_bills_full_period(sub))
        desired = {d.sync_key: d for d in wanted_lines}
        lines = list(InvoiceLine.objects.filter(subscription_id=sub.pk, parent__isnull=True, deleted_at__isnull=True)
                     .select_related("invoice").order_by("period_start", "id"))
        split_parts: dict[str, list[InvoiceLine]] = defaultdict(list)
        for line in lines:
            if line.split_group_id:
                split_parts[line.split_group_id].append(line)
        patches = LinePatches(at)
        for line in lines:
            if line.sync_key is None:
                continue  # a later part of a split line: reconciled with its first part
            wanted_input = desired.pop(line.sync_key, None)
            wanted = line_from_input(line.invoice, wanted_input, line.currency) if wanted_input else None
            if line.split_group_id:
                _reconcile_split(patches, split_parts[line.split_group_id], wanted)
            elif wanted is None:
                patches.remove(line)
            else:
                patches.change(line, {f: getattr(wanted, f) for f in SYNCED_FIELDS})
        if desired:
            invoice, _ = gathering_invoice_get_or_create(sub.customer, sub.currency)
            InvoiceLine.objects.bulk_create([line_from_input(invoice, d, sub.currency) for d in desired.values()])
            patches.added_to_gathering(invoice.pk)
        patches.apply()
    return SyncResult(len(desired), patches.updated, patches.removed)


# ended (or deleted) subscriptions are still reconciled for a while, so their last period is settled
SETTLE_AFTER_END = dt.timedelta(days=62)


def subscriptions_sync_all(*, at: dt.datetime | None = None) -> int:
    """The periodic sync (the safety net behind the sync on every subscription change): every subscription that
    has started and has not long ended. Idempotent."""
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
