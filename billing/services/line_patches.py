"""Changing or removing lines that are already on an invoice, by what that invoice allows (OpenMeter's
subscription-sync invoice updater):
- gathering lines, and lines of drafts that can still be edited, change in place; a changed draft is recalculated
  (quantities snapshotted again, totals, timing) and a draft left without lines is deleted;
- an immutable invoice is never rewritten: the difference is recorded on it as a warning validation issue (the
  same warning is not added twice); deleted and voided invoices are left alone.

The caller holds the customer lock; `apply` runs once at the end, so a draft is recalculated once however many of
its lines changed.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing.models import Invoice, InvoiceLine
from billing.models import InvoiceStatus as S
from billing.services import state
from billing.services.gathering import refresh_gathering
from billing.services.issuing import advance_until_stable, fire
from billing.services.state import Trigger
from openmeter_site.core.fields import normalized
from openmeter_site.core.ids import new_id

COMPONENT = "subscription-sync"
CODE = "immutable_invoice_handling_not_supported"
ACTOR = "subscription-sync"

GATHERING, DRAFT, IMMUTABLE, GONE = "gathering", "draft", "immutable", "gone"


def editability(invoice: Invoice) -> str:
    if invoice.deleted_at is not None or invoice.status_prefix in ("delete", "deleted") or invoice.status == S.VOIDED:
        return GONE
    if invoice.status == S.GATHERING:
        return GATHERING
    return IMMUTABLE if state.is_immutable(invoice) else DRAFT


def _amount(price: dict[str, Any] | None) -> Decimal | None:
    if not price or price.get("type") != "flat":
        return None
    return Decimal(str(price["amount"]))


def _drift(line: InvoiceLine, values: dict[str, Any]) -> list[str]:
    """What an immutable invoice cannot follow: a flat fee's amount (else its service period), a usage line's
    service period."""
    new_amount = _amount(values.get("price", line.price))
    if new_amount is not None and new_amount != _amount(line.price):
        return [f"flat fee line's per unit amount cannot be changed on immutable invoice "
                f"(new per unit amount: {format(normalized(new_amount), 'f')})"]
    start, end = values.get("period_start", line.period_start), values.get("period_end", line.period_end)
    if (start, end) != (line.period_start, line.period_end):
        kind = "flat fee" if _amount(line.price) is not None else "usage based"
        return [f"{kind} line's service period cannot be changed on immutable invoice "
                f"(new period: {start.isoformat()} - {end.isoformat()})"]
    return []


@dataclass
class LinePatches:
    at: dt.datetime
    updated: int = 0
    removed: int = 0
    gathering: set[str] = field(default_factory=set)
    drafts: set[str] = field(default_factory=set)
    warnings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def _touch(self, line: InvoiceLine) -> None:
        (self.gathering if line.invoice.status == S.GATHERING else self.drafts).add(line.invoice_id)

    def _warn(self, line: InvoiceLine, message: str) -> None:
        self.warnings.setdefault(line.invoice_id, []).append((f"lines/{line.pk}", message))

    def change(self, line: InvoiceLine, values: dict[str, Any]) -> bool:
        """Set `values` on the line where its invoice allows it; True when something changed (or would)."""
        changed = [f for f, v in values.items() if getattr(line, f) != v]
        if not changed:
            return False
        where = editability(line.invoice)
        if where == IMMUTABLE:
            for message in _drift(line, values):
                self._warn(line, message)
        elif where != GONE:
            for f in changed:
                setattr(line, f, values[f])
            line.save(update_fields=[*changed, "updated_at"])
            self.updated += 1
            self._touch(line)
        return where != GONE

    def remove(self, line: InvoiceLine) -> None:
        where = editability(line.invoice)
        if where == IMMUTABLE:
            self._warn(line, "line should be deleted, but the invoice is immutable")
        elif where != GONE:
            line.deleted_at = self.at
            line.save(update_fields=["deleted_at", "updated_at"])
            self.removed += 1
            self._touch(line)

    def added_to_gathering(self, invoice_id: str) -> None:
        self.gathering.add(invoice_id)

    def apply(self) -> None:
        for invoice in Invoice.objects.filter(pk__in=self.gathering):
            refresh_gathering(invoice)
        for invoice_id, issues in self.warnings.items():
            _add_warnings(invoice_id, issues)
        for invoice_id in sorted(self.drafts):
            self._recalculate_draft(invoice_id)

    def _recalculate_draft(self, invoice_id: str) -> None:
        invoice = Invoice.objects.select_for_update().select_related("invoicing_app").get(pk=invoice_id)
        emptied = not invoice.all_lines.filter(parent__isnull=True, deleted_at__isnull=True).exists()
        if fire(invoice, Trigger.DELETE if emptied else Trigger.UPDATED, at=self.at, actor=ACTOR):
            advance_until_stable(invoice, at=self.at, actor=ACTOR)


def _add_warnings(invoice_id: str, issues: list[tuple[str, str]]) -> None:
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    have = {(i.get("component"), i.get("field"), i.get("message")) for i in invoice.validation_issues or ()}
    now = timezone.now().isoformat()
    fresh = [
        {"id": new_id(), "severity": "warning", "field": f, "code": CODE, "component": COMPONENT, "message": m,
         "createdAt": now, "updatedAt": now}
        for f, m in dict.fromkeys(issues) if (COMPONENT, f, m) not in have
    ]
    if fresh:
        invoice.validation_issues = [*(invoice.validation_issues or []), *fresh]
        invoice.save(update_fields=["validation_issues", "updated_at"])
