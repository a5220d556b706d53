"""Line quantities from the meters and line/invoice totals from `pricing`, stored with a fixed number of queries
per invoice (bulk writes), so an invoice costs the same however many lines or events it has.

Usage comes in as a mapping line id → (quantity, pre-line-period quantity); `usage_for_lines` fetches it with one
batched query per feature and period for many customers at once (what period close uses), narrowed by the
feature's filters as entitlements are: `advancedMeterGroupByFilters` when it has any, else `meterGroupByFilters`.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Field
from django.utils import timezone
from psycopg.types.json import Jsonb

from billing.models import Invoice, InvoiceLine, InvoiceStatus, LineStatus
from billing.services.pricing import (
    COMMITMENT,
    TOTAL_FIELDS,
    Charge,
    Rating,
    RatingInput,
    Totals,
    charge_totals,
    parse_discounts,
    parse_price,
    rate_line,
    sum_totals,
)
from catalog.features import feature_usage_filters
from catalog.models import Feature
from metering.event_store import event_store
from openmeter_site.core.bulk import copy_insert
from openmeter_site.core.ids import new_id

ZERO = Decimal(0)
ONE = Decimal(1)

Usage = tuple[Decimal, Decimal]  # (quantity, pre-line-period quantity)


@dataclass(frozen=True)
class LineCalculation:
    line: InvoiceLine
    metered_quantity: Decimal
    metered_pre_line_period_quantity: Decimal
    rating: Rating  # the detailed charges and the quantities billed after the usage discount
    totals: Totals

    @property
    def charges(self) -> list[Charge]:
        return self.rating.charges


def is_flat(line: InvoiceLine) -> bool:
    return line.price is not None and line.price.get("type") == "flat"


def is_first_in_period(line: InvoiceLine) -> bool:
    return line.split_group_start is None or line.period_start <= line.split_group_start


def is_last_in_period(line: InvoiceLine) -> bool:
    return line.split_group_end is None or line.period_end >= line.split_group_end


def features_by_key(keys: Iterable[str | None]) -> dict[str, Feature]:
    wanted = {k for k in keys if k}
    if not wanted:
        return {}
    return {f.key: f for f in Feature.objects.filter(key__in=wanted, archived_at__isnull=True).select_related("meter")}


def usage_for_lines(
    lines: Sequence[InvoiceLine],
    *,
    customer_by_invoice: Mapping[str, str],
    subjects_by_customer: Mapping[str, Sequence[str]],
) -> dict[str, Usage]:
    """Quantities for many lines of many customers: one meter query per (feature, period) group."""
    features = features_by_key(line.feature_key for line in lines if not is_flat(line))
    subject_owner = {s: c for c, subjects in subjects_by_customer.items() for s in subjects}
    groups: dict[tuple, list[tuple[InvoiceLine, Feature]]] = defaultdict(list)
    out: dict[str, Usage] = {}
    for line in lines:
        if is_flat(line):
            out[line.pk] = (ONE, ZERO)
            continue
        feature = features.get(line.feature_key or "")
        if feature is None or feature.meter is None:
            out[line.pk] = (ZERO, ZERO)
            continue
        groups[(feature.pk, line.period_start, line.period_end, "q")].append((line, feature))
        if not is_first_in_period(line):
            groups[(feature.pk, line.split_group_start, line.period_start, "pre")].append((line, feature))
        out[line.pk] = (ZERO, ZERO)
    for (_, start, end, kind), members in groups.items():
        feature = members[0][1]
        assert feature.meter is not None  # lines whose feature has no meter are not grouped
        customers = {customer_by_invoice[line.invoice_id] for line, _ in members}
        subjects = {s: c for s, c in subject_owner.items() if c in customers}
        filters = feature_usage_filters(feature)
        totals = event_store().usage_by_customer(
            meter=feature.meter, subject_customers=subjects, start=start, end=end,
            group_filters=filters.group_filters, advanced_filters=filters.advanced_filters,
        )
        for line, _ in members:
            value = totals.get(customer_by_invoice[line.invoice_id], ZERO)
            qty, pre = out[line.pk]
            out[line.pk] = (value, pre) if kind == "q" else (qty, value)
    return out


def previously_billed(lines: Sequence[InvoiceLine]) -> dict[str, Decimal]:
    """For progressively billed lines: what earlier parts of the same split group billed on standard invoices that
    are not deleted, as their `amount` (before discounts and commitments; upstream's `SumNetAmount`)."""
    split = [line for line in lines if line.split_group_id and not is_first_in_period(line)]
    if not split:
        return {}
    earlier = InvoiceLine.objects.filter(
        split_group_id__in={line.split_group_id for line in split}, parent__isnull=True, deleted_at__isnull=True,
        invoice__deleted_at__isnull=True,
    ).exclude(invoice__status__in=(InvoiceStatus.GATHERING, InvoiceStatus.DELETED)).values_list(
        "split_group_id", "period_end", "amount")
    out: dict[str, Decimal] = {}
    for line in split:
        out[line.pk] = sum(
            (total for gid, end, total in earlier if gid == line.split_group_id and end <= line.period_start), ZERO
        )
    return out


def calculate_line(line: InvoiceLine, usage: Usage, billed_before: Decimal = ZERO) -> LineCalculation:
    qty, pre = usage
    rating = Rating([], qty, pre)
    if line.price:
        rating = rate_line(
            RatingInput(
                name=line.name,
                currency=line.currency,
                price=parse_price(line.price),
                quantity=qty,
                pre_line_period_quantity=pre,
                discounts=parse_discounts(line.rate_card_discounts),
                is_first_in_period=is_first_in_period(line),
                is_last_in_period=is_last_in_period(line),
                previously_billed_amount=billed_before,
            )
        )
    return LineCalculation(line, qty, pre, rating, sum_totals(charge_totals(c) for c in rating.charges))


def calculate_lines(lines: Sequence[InvoiceLine], usage: Mapping[str, Usage]) -> list[LineCalculation]:
    billed = previously_billed(lines)
    return [calculate_line(line, usage.get(line.pk, (ZERO, ZERO)), billed.get(line.pk, ZERO)) for line in lines]


def set_totals(obj: Invoice | InvoiceLine, totals: Totals) -> None:
    for f in TOTAL_FIELDS:
        setattr(obj, f, getattr(totals, f))


def detailed_lines(calc: LineCalculation, now: dt.datetime) -> list[InvoiceLine]:
    line = calc.line
    out = []
    for index, c in enumerate(calc.charges):
        # a minimum spend is for the whole period, also when the line is its last progressively billed part
        whole = c.category == COMMITMENT and line.split_group_id is not None
        start, end = (line.split_group_start, line.split_group_end) if whole else (line.period_start, line.period_end)
        assert start is not None and end is not None  # a split group always has its period (progressive.split_at)
        child = InvoiceLine(
            invoice_id=line.invoice_id, parent_id=line.pk, managed_by=line.managed_by, status=LineStatus.DETAILED,
            name=c.name, currency=line.currency, period_start=start, period_end=end,
            invoice_at=line.invoice_at, quantity=c.quantity, per_unit_amount=c.per_unit_amount,
            payment_term=c.payment_term, category=c.category, child_key=c.key, index=index,
            amount_discounts=[
                {"id": new_id(), "reason": d.reason, "amount": str(d.amount), "description": d.description}
                for d in c.discounts
            ],
            created_at=now,
        )
        set_totals(child, charge_totals(c))
        out.append(child)
    return out


LINE_FIELDS = ["quantity", "metered_quantity", "pre_line_period_quantity", "metered_pre_line_period_quantity",
               "usage_discounts", *TOTAL_FIELDS]


def usage_discounts(line: InvoiceLine, rating: Rating, now: dt.datetime) -> list[dict[str, Any]]:
    """The line's usage discount as the API lists it (`discounts.usage`); its id survives recalculation."""
    if not rating.usage_discount:
        return []
    kept = (line.usage_discounts or [{}])[0]
    entry: dict[str, Any] = {"id": kept.get("id") or new_id(), "quantity": str(rating.usage_discount),
                             "createdAt": kept.get("createdAt") or now.isoformat()}
    if rating.usage_discount_pre_line_period:
        entry["preLinePeriodQuantity"] = str(rating.usage_discount_pre_line_period)
    return [entry]


def apply_line_calculations(calcs: Sequence[LineCalculation], now: dt.datetime) -> list[InvoiceLine]:
    """Put each calculation's quantities and totals on its line (in memory); return the new detailed lines.
    `quantity` is what is billed after the usage discount, `meteredQuantity` what was metered (as upstream)."""
    children: list[InvoiceLine] = []
    for c in calcs:
        c.line.metered_quantity = c.metered_quantity
        c.line.metered_pre_line_period_quantity = c.metered_pre_line_period_quantity
        c.line.quantity = c.rating.quantity
        c.line.pre_line_period_quantity = c.rating.pre_line_period_quantity
        c.line.usage_discounts = usage_discounts(c.line, c.rating, now)
        set_totals(c.line, c.totals)
        children += detailed_lines(c, now)
    return children


UPDATE_BATCH = 2000  # lines per statement (PostgreSQL takes at most 65,535 parameters)


def _update_lines(lines: Sequence[InvoiceLine], *, moved: bool = False) -> None:
    """One `UPDATE … FROM (VALUES …)` per 2,000 lines (Django's bulk_update builds a CASE per field, slowly);
    `moved`: the lines also move to the invoice they now point at."""
    fields = [*LINE_FIELDS, "updated_at", *(["invoice_id"] if moved else [])]
    casts = {"updated_at": "timestamptz", "invoice_id": "varchar", "usage_discounts": "jsonb"}
    # numbers go through their fields, as in a save: a value a column cannot hold is an InvalidInput naming it
    numbers = {f: field for f in fields if f not in casts and isinstance(field := InvoiceLine._meta.get_field(f), Field)}
    row = "(%s, " + ", ".join(f"%s::{casts.get(f, 'numeric')}" for f in fields) + ")"
    sets = ", ".join(f"{f} = v.{f}" for f in fields)
    for i in range(0, len(lines), UPDATE_BATCH):
        batch = lines[i : i + UPDATE_BATCH]
        params: list = []
        for line in batch:
            params.append(line.pk)
            for f in fields:
                value = getattr(line, f)
                if f in numbers:
                    value = numbers[f].get_db_prep_save(value, connection)
                params.append(Jsonb(value) if f == "usage_discounts" else value)
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {InvoiceLine._meta.db_table} AS t SET {sets} FROM (VALUES {', '.join([row] * len(batch))}) "
                f"AS v(id, {', '.join(fields)}) WHERE t.id = v.id",
                params,
            )


def store_moved_lines(lines: Sequence[InvoiceLine], children: Sequence[InvoiceLine]) -> None:
    """Lines moved onto new invoices (already inserted with their totals), with the quantities and totals that
    `apply_line_calculations` put on them, and their detailed lines: two statements per 1,000 or so lines."""
    now = timezone.now()
    for line in lines:
        line.updated_at = now
    if lines:
        _update_lines(lines, moved=True)
    copy_insert(children)


def store_calculation(invoice: Invoice, calcs: Sequence[LineCalculation], *, snapshot_at: dt.datetime | None) -> None:
    """Replace the detailed lines, update line and invoice totals: four statements whatever the line count."""
    now = timezone.now()
    lines = [c.line for c in calcs]
    with connection.cursor() as cur:
        cur.execute(
            f"DELETE FROM {InvoiceLine._meta.db_table} WHERE invoice_id = %s AND parent_id IS NOT NULL", [invoice.pk]
        )
    children = apply_line_calculations(calcs, now)
    if children:
        InvoiceLine.objects.bulk_create(children, batch_size=1000)
    for line in lines:
        line.updated_at = now
    if lines:
        _update_lines(lines)
    set_totals(invoice, sum_totals(c.totals for c in calcs))
    fields = [*TOTAL_FIELDS, "updated_at"]
    if snapshot_at is not None:
        invoice.quantity_snapshotted_at = snapshot_at
        fields.append("quantity_snapshotted_at")
    Invoice.objects.filter(pk=invoice.pk).update(**{f: getattr(invoice, f) for f in fields if f != "updated_at"},
                                                 updated_at=now)
