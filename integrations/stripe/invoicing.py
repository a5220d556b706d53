"""Stripe as an invoicing backend: our invoice becomes a Stripe invoice, its lines Stripe invoice items.

Crash safety (Zulip's pattern): each step commits a STARTED marker on `StripeInvoiceSync` before calling Stripe and
DONE after. Every Stripe write carries an idempotency key derived from our ids (`invoice:{id}:create`,
`invoice:{id}:item:{line}:{amount}`, `invoice:{id}:finalize`), so a rerun after a crash anywhere in between repeats
the same requests and Stripe answers them with the objects it already created: nothing is doubled.

Billing calls these methods inside its invoice transaction while holding the customer's lock, so one worker at a time
syncs a customer; if that transaction rolls back, the markers roll back with it and the rerun still repeats the same
idempotent requests. The draft invoice is created empty (`pending_invoice_items_behavior=exclude`) and items are
attached to it by id, so the items of two invoices of one customer never mix.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction

from integrations.backends import SyncResult
from integrations.models import App, StripeInvoiceSync, SyncState
from integrations.stripe import client
from integrations.stripe.services import ensure_stripe_customer
from openmeter_site.core.money import round_money

if TYPE_CHECKING:
    from billing.models import Invoice


@dataclass(frozen=True)
class LineToSync:
    id: str
    description: str
    amount: int  # minor units


def _lines(invoice: "Invoice") -> list[LineToSync]:
    """One Stripe item per top-level line: its total (charges - discounts - credits + exclusive taxes, already
    rounded to the currency's minor unit), so the Stripe invoice total equals ours to the cent."""
    currency = invoice.currency
    lines = invoice.all_lines.filter(parent__isnull=True, deleted_at__isnull=True).order_by("index", "created_at", "id")
    return [
        LineToSync(
            id=line.id,
            description=line.name,
            amount=client.to_minor_units(round_money(Decimal(line.total), currency), currency),
        )
        for line in lines
    ]


def _sync_row(app: App, invoice_id: str) -> StripeInvoiceSync:
    row, _ = StripeInvoiceSync.objects.get_or_create(invoice_id=invoice_id, defaults={"app": app})
    return row


def _mark(row: StripeInvoiceSync, **fields: Any) -> None:
    """Commit progress now (autocommit), so a crash right after still finds it."""
    for name, value in fields.items():
        setattr(row, name, value)
    with transaction.atomic():
        row.save(update_fields=[*fields, "updated_at"])


def _metadata(app: App, invoice_id: str, **extra: str) -> dict[str, str]:
    return {
        client.METADATA_APP_ID: app.id,
        client.METADATA_NAMESPACE: client.NAMESPACE,
        client.METADATA_INVOICE_ID: invoice_id,
        **extra,
    }


class StripeInvoicingBackend:
    def __init__(self, app: App) -> None:
        self.app = app

    def sync_draft(self, invoice: "Invoice") -> SyncResult:
        """Ensure the Stripe customer, the draft Stripe invoice, and one invoice item per line (added, updated or
        removed to match our lines)."""
        row = _sync_row(self.app, invoice.id)
        _mark(row, draft_state=SyncState.STARTED)
        customer = ensure_stripe_customer(app=self.app, customer=invoice.customer)
        stripe_customer_id = customer.stripe_customer_id or ""
        stripe_invoice = client.invoice_create(
            app=self.app,
            params={
                "customer": stripe_customer_id,
                "currency": invoice.currency.lower(),
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "metadata": _metadata(self.app, invoice.id),
            },
            idempotency_key=f"invoice:{invoice.id}:create",
        )
        _mark(row, stripe_customer_id=stripe_customer_id, stripe_invoice_id=stripe_invoice["id"])
        items = self._sync_items(invoice, row, stripe_customer_id)
        _mark(row, line_items=items, draft_state=SyncState.DONE)
        return SyncResult(
            done=True,
            external_id=row.stripe_invoice_id,
            line_external_ids={line_id: item["id"] for line_id, item in items.items()},
        )

    def _sync_items(self, invoice: "Invoice", row: StripeInvoiceSync, stripe_customer_id: str) -> dict[str, dict]:
        """Make the Stripe items match our lines: create missing ones, replace changed ones, delete removed ones.

        The stored mapping is line id → {id, amount, rev}. A replacement bumps `rev` (persisted before the call), so
        its idempotency key is new; a rerun finds the entry without an id and repeats the same key.
        """
        synced: dict[str, dict] = {k: dict(v) for k, v in (row.line_items or {}).items()}
        wanted = {line.id: line for line in _lines(invoice)}
        for line_id in sorted(set(synced) - set(wanted)):
            if synced[line_id]["id"]:
                client.invoice_item_delete(app=self.app, item_id=synced[line_id]["id"])
            del synced[line_id]
            _mark(row, line_items=synced)
        for line in wanted.values():
            entry = synced.get(line.id)
            if entry is not None and entry["id"] and entry["amount"] == line.amount:
                continue
            if entry is None:
                entry = {"id": None, "amount": None, "rev": 0}
            elif entry["id"]:
                client.invoice_item_delete(app=self.app, item_id=entry["id"])
                entry = {"id": None, "amount": None, "rev": entry["rev"] + 1}
            synced[line.id] = entry
            _mark(row, line_items=synced)
            entry["id"] = client.invoice_item_create(
                app=self.app,
                params={
                    "customer": stripe_customer_id,
                    "invoice": row.stripe_invoice_id,
                    "amount": line.amount,
                    "currency": invoice.currency.lower(),
                    "description": line.description,
                    "metadata": _metadata(self.app, invoice.id, **{client.METADATA_LINE_ID: line.id}),
                },
                idempotency_key=f"invoice:{invoice.id}:item:{line.id}:{entry['rev']}",
            )
            entry["amount"] = line.amount
            _mark(row, line_items=synced)
        return synced

    def finalize(self, invoice: "Invoice") -> SyncResult:
        """Finalize the Stripe invoice; its number becomes ours."""
        row = StripeInvoiceSync.objects.filter(invoice_id=invoice.id).first()
        if row is None or row.draft_state != SyncState.DONE:
            self.sync_draft(invoice)
            row = StripeInvoiceSync.objects.get(invoice_id=invoice.id)
        if row.finalize_state != SyncState.DONE:
            _mark(row, finalize_state=SyncState.STARTED)
            finalized = client.invoice_finalize(
                app=self.app,
                stripe_invoice_id=row.stripe_invoice_id or "",
                idempotency_key=f"invoice:{invoice.id}:finalize",
            )
            _mark(row, stripe_invoice_number=finalized.get("number"), finalize_state=SyncState.DONE)
        return SyncResult(done=True, invoice_number=row.stripe_invoice_number, external_id=row.stripe_invoice_id)

    def delete(self, invoice: "Invoice") -> None:
        """Our invoice was deleted or voided: delete the Stripe draft, or void the finalized Stripe invoice."""
        row = StripeInvoiceSync.objects.filter(invoice_id=invoice.id).first()
        if row is None or not row.stripe_invoice_id or row.deleted_in_stripe:
            return
        client.invoice_delete_or_void(app=self.app, stripe_invoice_id=row.stripe_invoice_id)
        _mark(row, deleted_in_stripe=True)

    def after_issued(self, invoice: "Invoice") -> None:
        """Stripe collects the payment; its webhooks move our invoice to paid or failed."""
