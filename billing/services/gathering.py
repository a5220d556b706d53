"""Gathering invoices and their pending lines: the lines a customer will be invoiced for, collected on one
gathering invoice per currency until they are due (added by hand, by `pending_lines_create`, or by the subscription
sync).

Every public function takes the customer lock, then the invoice row lock, in that order (no deadlocks), and runs
in one transaction: a crash half-way leaves nothing behind, a rerun gives the same invoices.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from billing.models import BillingProfile, Invoice, InvoiceLine, LineManagedBy
from billing.models import InvoiceStatus as S
from billing.services import numbering
from billing.services.calculation import features_by_key
from billing.services.locks import lock_customer
from billing.services.pricing import Price, PriceError, parse_price
from billing.services.profiles import profile_for_customer
from billing.services.workflow import next_collection_at, stored_workflow_check
from customers.models import Customer
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import new_id
from openmeter_site.core.money import is_currency


def customer_party(customer: Customer) -> dict[str, Any]:
    party: dict[str, Any] = {
        "id": customer.pk,
        "name": customer.name,
        "usageAttribution": {"subjectKeys": customer.subject_keys()},
    }
    if customer.key:
        party["key"] = customer.key
    if customer.billing_address:
        party["addresses"] = [customer.billing_address]
    return party


def new_invoice(customer: Customer, profile: BillingProfile, *, currency: str, status: S, number: str) -> Invoice:
    """An unsaved invoice with the profile's snapshots (apps attached, so the state machine needs no lookups)."""
    stored_workflow_check(profile.workflow, owner=f"billing profile {profile.pk}")
    return Invoice(
        customer=customer,
        billing_profile=profile,
        status=status,
        number=number,
        currency=currency,
        supplier=profile.supplier,
        customer_snapshot=customer_party(customer),
        workflow=profile.workflow,
        tax_app=profile.tax_app,
        invoicing_app=profile.invoicing_app,
        payment_app=profile.payment_app,
    )


def customer_get(customer_id: str) -> Customer:
    customer = Customer.objects.filter(pk=customer_id, deleted_at__isnull=True).first()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def gathering_invoice_get_or_create(customer: Customer, currency: str) -> tuple[Invoice, bool]:
    """The customer's gathering invoice for a currency (caller holds the customer lock)."""
    existing = Invoice.objects.filter(
        customer=customer, currency=currency, status=S.GATHERING, deleted_at__isnull=True
    ).first()
    if existing is not None:
        return existing, False
    profile = profile_for_customer(customer)
    number = numbering.gathering_number(profile_id=profile.pk, customer_name=customer.name, currency=currency)
    invoice = new_invoice(customer, profile, currency=currency, status=S.GATHERING, number=number)
    invoice.save(force_insert=True)
    return invoice, True


GATHERING_REFRESH_FIELDS = ["period_start", "period_end", "collection_at", "updated_at"]
GatheringRow = tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime | None]  # start, end, invoice_at, deleted_at


def _gathering_refreshed(invoice: Invoice, rows: Sequence[GatheringRow]) -> bool:
    """Put the period and next collection time from the remaining top-level lines on the invoice (in memory);
    False when no line is left at all: the invoice is to be removed (it is a staging area with no history of its
    own: its lines moved to standard invoices)."""
    lines = [(s, e, a) for s, e, a, deleted in rows if deleted is None]
    if not lines:
        invoice.collection_at = None  # only deleted lines left: kept for history, nothing to collect
        return bool(rows)
    invoice.period_start = min(s for s, _, _ in lines)
    invoice.period_end = max(e for _, e, _ in lines)
    # collect once the earliest line is due and the grace period for late events has passed
    invoice.collection_at = next_collection_at(invoice.workflow, min(a for _, _, a in lines))
    return True


def _delete_empty_gathering(invoice_ids: Sequence[str]) -> None:
    """Nothing refers to an empty gathering invoice (no lines, no events): one plain DELETE."""
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Invoice._meta.db_table} WHERE id = ANY(%s)", [list(invoice_ids)])


def refresh_gathering(invoice: Invoice) -> None:
    """Period and next collection time from the remaining lines; an emptied gathering invoice is removed."""
    rows = list(invoice.all_lines.filter(parent__isnull=True).values_list("period_start", "period_end", "invoice_at",
                                                                          "deleted_at"))
    if not _gathering_refreshed(invoice, rows):
        _delete_empty_gathering([invoice.pk])
        return
    invoice.save(update_fields=GATHERING_REFRESH_FIELDS)


def refresh_gathering_many(rows_by_invoice: Sequence[tuple[Invoice, Sequence[GatheringRow]]]) -> None:
    """`refresh_gathering` for many invoices whose remaining lines the caller has read: two statements."""
    now = timezone.now()
    kept, emptied = [], []
    for invoice, rows in rows_by_invoice:
        if _gathering_refreshed(invoice, rows):
            invoice.updated_at = now
            kept.append(invoice)
        else:
            emptied.append(invoice.pk)
    if emptied:
        _delete_empty_gathering(emptied)
    if kept:
        Invoice.objects.bulk_update(kept, GATHERING_REFRESH_FIELDS)


# --- pending lines ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineInput:
    name: str
    period_start: dt.datetime
    period_end: dt.datetime
    invoice_at: dt.datetime
    price: dict[str, Any]
    feature_key: str | None = None
    tax_config: dict[str, Any] | None = None
    discounts: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    managed_by: str = LineManagedBy.MANUAL
    line_id: str | None = None
    sync_key: str | None = None
    subscription: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        """A line's times are whole seconds, the meters' resolution (upstream's `NormalizeValues`)."""
        for name in ("period_start", "period_end", "invoice_at"):
            object.__setattr__(self, name, getattr(self, name).replace(microsecond=0))


def validate_price(line: LineInput, where: str) -> Price:
    """The line's price, parsed; a usage discount on a flat price is refused (upstream's
    `ErrUsageDiscountWithFlatPrice`: a flat fee has no usage to take free units from)."""
    try:
        price = parse_price(line.price)
    except (PriceError, KeyError, ArithmeticError) as exc:
        raise InvalidInput(f"{where}.price: {exc}") from exc
    if price.type == "flat" and (line.discounts or {}).get("usage"):
        raise InvalidInput(f"{where}.rateCard.discounts.usage: usage discount is not supported for flat price")
    return price


def validate_lines(lines: Sequence[LineInput], *, field: str = "lines") -> None:
    """Reject lines that could not be rated: a 400 naming the line, before anything is written."""
    features = features_by_key(line.feature_key for line in lines if line.feature_key)
    for i, line in enumerate(lines):
        where = f"{field}[{i}]"
        if line.period_start >= line.period_end:
            raise InvalidInput(f"{where}.period: from must be before to")
        price = validate_price(line, where)
        if price.type != "flat":
            if not line.feature_key:
                raise InvalidInput(f"{where}.featureKey: required for a {price.type} price (usage is metered)")
            feature = features.get(line.feature_key)
            if feature is None or feature.meter is None:
                raise InvalidInput(f"{where}.featureKey: feature {line.feature_key!r} not found or has no meter")


def line_from_input(invoice: Invoice, line: LineInput, currency: str) -> InvoiceLine:
    sub = line.subscription or {}
    return InvoiceLine(
        id=line.line_id or new_id(),
        invoice=invoice,
        managed_by=line.managed_by,
        name=line.name,
        description=line.description,
        metadata=line.metadata or {},
        currency=currency,
        period_start=line.period_start,
        period_end=line.period_end,
        invoice_at=line.invoice_at,
        price=line.price,
        feature_key=line.feature_key,
        tax_config=line.tax_config,
        rate_card_discounts=line.discounts,
        quantity=Decimal(1) if line.price.get("type") == "flat" else None,
        sync_key=line.sync_key,
        subscription_id=sub.get("subscription_id"),
        subscription_phase_id=sub.get("phase_id"),
        subscription_item_id=sub.get("item_id"),
        subscription_billing_period_start=sub.get("billing_period_start"),
        subscription_billing_period_end=sub.get("billing_period_end"),
    )


@dataclass(frozen=True)
class PendingLinesResult:
    lines: list[InvoiceLine]
    invoice: Invoice
    is_invoice_new: bool


def pending_lines_create(*, customer_id: str, currency: str, lines: Sequence[LineInput]) -> PendingLinesResult:
    """`createLineItems`: add lines to the customer's gathering invoice for the currency."""
    if not is_currency(currency):
        raise InvalidInput(f"currency: unknown currency {currency!r}")
    if not lines:
        raise InvalidInput("lines: at least one line is required")
    customer = customer_get(customer_id)
    validate_lines(lines)
    with transaction.atomic():
        lock_customer(customer.pk)
        invoice, is_new = gathering_invoice_get_or_create(customer, currency)
        rows = InvoiceLine.objects.bulk_create([line_from_input(invoice, line, currency) for line in lines])
        refresh_gathering(invoice)
    return PendingLinesResult(rows, invoice, is_new)


