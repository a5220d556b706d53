"""Editing invoices: replace a gathering or draft invoice's lines and settings (PUT), and simulate an invoice
without saving anything."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, LineStatus
from billing.models import InvoiceStatus as S
from billing.services import calculation, state
from billing.services.actions import locked_invoice
from billing.services.gathering import (
    LineInput,
    customer_get,
    customer_party,
    line_from_input,
    refresh_gathering,
    validate_lines,
    validate_price,
)
from billing.services.issuing import advance_until_stable, fire
from billing.services.numbering import customer_prefix
from billing.services.pricing import sum_totals
from billing.services.profiles import profile_for_customer
from billing.services.state import Trigger
from billing.services.workflow import workflow_validate
from openmeter_site.core.errors import InvalidInput

ZERO = Decimal(0)
PARTY_FIELDS = ("name", "taxId", "addresses")


@dataclass(frozen=True)
class InvoiceChanges:
    supplier: dict[str, Any]
    customer: dict[str, Any]
    lines: Sequence[LineInput]
    workflow: dict[str, Any]
    metadata: dict[str, str] | None = None
    description: str | None = None


def _merge_party(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in current.items() if k not in PARTY_FIELDS}
    out.update({k: v for k, v in given.items() if k in PARTY_FIELDS and v is not None})
    return out


# what an invoice's own workflow lets an edit change (the spec's InvoiceWorkflowSettingsReplaceUpdate)
EDITABLE_WORKFLOW = {"invoicing": ("autoAdvance", "draftPeriod", "dueAfter"), "payment": ("collectionMethod",)}


def _merge_workflow(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = dict(current) if isinstance(current, dict) else {}
    for section, names in EDITABLE_WORKFLOW.items():
        values = given.get(section) or {}
        if not isinstance(values, dict):
            raise InvalidInput(f"workflow.workflow.{section}: must be an object")
        merged = dict(out[section]) if isinstance(out.get(section), dict) else {}
        merged.update({k: v for k, v in values.items() if k in names and v is not None})
        out[section] = merged
    return workflow_validate(out, field="workflow.workflow")


def _replace_lines(invoice: Invoice, lines: Sequence[LineInput], at: dt.datetime) -> None:
    existing = {line.pk: line for line in invoice.all_lines.filter(parent__isnull=True, deleted_at__isnull=True)}
    unknown = [line.line_id for line in lines if line.line_id and line.line_id not in existing]
    if unknown:
        raise InvalidInput(f"lines: {', '.join(unknown)} are not lines of invoice {invoice.pk}")
    keep = {line.line_id for line in lines if line.line_id}
    InvoiceLine.objects.filter(pk__in=set(existing) - keep).update(deleted_at=at, updated_at=at)
    InvoiceLine.objects.filter(parent_id__in=set(existing) - keep).update(deleted_at=at, updated_at=at)
    for data in lines:
        fresh = line_from_input(invoice, data, invoice.currency)
        if data.line_id:
            old = existing[data.line_id]
            for f in ("name", "description", "metadata", "period_start", "period_end", "invoice_at", "price",
                      "feature_key", "tax_config", "rate_card_discounts"):
                setattr(old, f, getattr(fresh, f))
            old.save()
        else:
            fresh.save()


def invoice_update(
    *, invoice_id: str, changes: InvoiceChanges, at: dt.datetime | None = None, actor: str = "api"
) -> Invoice:
    """PUT: only gathering invoices and mutable drafts; a draft is recalculated and re-validated."""
    at = at or timezone.now()
    validate_lines(changes.lines)
    with transaction.atomic():
        invoice = locked_invoice(invoice_id)
        gathering = invoice.status == S.GATHERING
        if invoice.deleted_at is not None or (not gathering and state.is_immutable(invoice)):
            raise InvalidInput(
                f"invoice {invoice_id} cannot be updated in status {invoice.status} (only gathering and draft invoices)",
                extensions={"status": invoice.status},
            )
        invoice.supplier = _merge_party(invoice.supplier, changes.supplier)
        invoice.customer_snapshot = _merge_party(invoice.customer_snapshot, changes.customer)
        invoice.workflow = _merge_workflow(invoice.workflow, changes.workflow)
        invoice.metadata = changes.metadata or {}
        invoice.description = changes.description
        invoice.save()
        _replace_lines(invoice, changes.lines, at)
        if gathering:
            refresh_gathering(invoice)
            return invoice
        fire(invoice, Trigger.UPDATED, at=at, actor=actor)
        return advance_until_stable(invoice, at=at, actor=actor)


@dataclass(frozen=True)
class SimulatedLine:
    line: LineInput
    quantity: Decimal
    pre_line_period_quantity: Decimal = ZERO


@dataclass(frozen=True)
class Simulation:
    invoice: Invoice
    lines: list[InvoiceLine]  # top-level and detailed, unsaved


def invoice_simulate(
    *, customer_id: str, currency: str, lines: Sequence[SimulatedLine], number: str | None = None
) -> Simulation:
    """Price lines with the given quantities as an invoice of the customer would; nothing is written."""
    for i, sim in enumerate(lines):
        validate_price(sim.line, f"lines[{i}]")
    customer = customer_get(customer_id)
    profile = profile_for_customer(customer)
    now = timezone.now()
    invoice = Invoice(
        customer=customer, billing_profile=profile, status=S.DRAFT_CREATED, currency=currency,
        number=number or f"DRAFT-{customer_prefix(customer.name)}-SIMULATED", supplier=profile.supplier,
        customer_snapshot=customer_party(customer), workflow=profile.workflow, tax_app=profile.tax_app,
        invoicing_app=profile.invoicing_app, payment_app=profile.payment_app, created_at=now, updated_at=now,
    )
    rows = []
    for sim in lines:
        row = line_from_input(invoice, sim.line, currency)
        row.status = LineStatus.VALID
        row.created_at = row.updated_at = now
        if sim.pre_line_period_quantity:  # the period started on an earlier line
            row.split_group_start = row.period_start - dt.timedelta(seconds=1)
        rows.append(row)
    calcs = [calculation.calculate_line(row, (sim.quantity, sim.pre_line_period_quantity))
             for row, sim in zip(rows, lines, strict=True)]
    children = calculation.apply_line_calculations(calcs, now)
    for child in children:
        child.updated_at = now
    calculation.set_totals(invoice, sum_totals(c.totals for c in calcs))
    invoice.period_start = min((r.period_start for r in rows), default=None)
    invoice.period_end = max((r.period_end for r in rows), default=None)
    return Simulation(invoice, [*rows, *children])


def gathering_preview(invoice: Invoice, lines: Sequence[InvoiceLine]) -> list[InvoiceLine]:
    """A gathering invoice as it would be invoiced now: usage to date, totals and detailed lines, computed on the
    fly and not saved (`invoice` and `lines` are updated in memory only)."""
    top = [line for line in lines if line.parent_id is None and line.deleted_at is None]
    customer = invoice.customer
    usage = calculation.usage_for_lines(
        top, customer_by_invoice={invoice.pk: customer.pk}, subjects_by_customer={customer.pk: customer.subject_keys()}
    )
    calcs = calculation.calculate_lines(top, usage)
    now = timezone.now()
    children = calculation.apply_line_calculations(calcs, now)
    for child in children:
        child.updated_at = now
    calculation.set_totals(invoice, sum_totals(c.totals for c in calcs))
    return [*top, *children]
