"""Stripe as an invoicing backend: our invoice becomes a Stripe invoice, its lines Stripe invoice items.

Crash safety (Zulip's pattern): each step records a STARTED marker on `StripeInvoiceSync` before calling Stripe and
DONE after. Every Stripe create carries an idempotency key derived from our ids (`invoice:{id}:create:{customer}`,
`invoice:{id}:item:{line}`, `invoice:{id}:finalize`), so a rerun after a crash anywhere in between repeats the same
requests and Stripe answers them with the objects it already created; and the items are reconciled against the
Stripe invoice's actual lines (tagged with our line ids) before every finalize: nothing is doubled or lost.

This is a remote backend (`billing.plugins`): billing calls it outside any transaction and without row locks, from
its `billing.sync_remote_apps` job (one worker at a time per invoice, under a session advisory lock), so every marker
commits at once and survives a crash; billing commits the result afterwards. The draft invoice is created empty
(`pending_invoice_items_behavior=exclude`) and items are attached to it by id, so the items of two invoices of one
customer never mix.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from billing.models import App
from billing.plugins import SyncResult
from integrations.models import StripeInvoiceSync, SyncState
from integrations.stripe import client
from integrations.stripe.services import ensure_stripe_customer
from openmeter_site.core.money import round_money

if TYPE_CHECKING:
    from billing.models import Invoice


MAX_SPENT_KEYS = 5


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
    """Record progress before the next Stripe call (durable at once when the caller runs outside a transaction)."""
    for name, value in fields.items():
        setattr(row, name, value)
    row.save(update_fields=[*fields, "updated_at"])


def _metadata(app: App, invoice_id: str, **extra: str) -> dict[str, str]:
    return {
        client.METADATA_APP_ID: app.id,
        client.METADATA_NAMESPACE: client.NAMESPACE,
        client.METADATA_INVOICE_ID: invoice_id,
        **extra,
    }


def stripe_dashboard_url(app: App, page: str = "") -> str:
    """A page of the app's account in Stripe's dashboard (its test mode unless the app is live)."""
    return f"https://dashboard.stripe.com/{'' if app.livemode else 'test/'}{page}"


def stripe_invoice_url(app: App, invoice_id: str) -> str:
    return stripe_dashboard_url(app, f"invoices/{invoice_id}")


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
            idempotency_key=f"invoice:{invoice.id}:create:{stripe_customer_id}",
        )
        _mark(row, stripe_customer_id=stripe_customer_id, stripe_invoice_id=stripe_invoice["id"])
        items = self._sync_items(invoice, row, stripe_customer_id)
        _mark(row, line_items=items, draft_state=SyncState.DONE)
        return SyncResult(
            done=True,
            external_id=row.stripe_invoice_id,
            line_external_ids=items,
        )

    def _sync_items(self, invoice: "Invoice", row: StripeInvoiceSync, stripe_customer_id: str) -> dict[str, str]:
        """Make the Stripe invoice's items match our lines, reconciling against what Stripe has now (our stored
        mapping may be stale after a rolled-back transaction): one item per line, tagged with the line id; extra
        or orphaned items are deleted, changed ones updated in place, missing ones created.

        A missing line's item is created with the key `invoice:{id}:item:{line}` the first time, and
        `...:after:{lost item}` when the item we had recorded is gone from Stripe, so a key is never replayed onto
        a deleted item, and a rerun after a crash repeats the same key.
        """
        recorded: dict[str, str] = dict(row.line_items or {})
        wanted = {line.id: line for line in _lines(invoice)}
        kept: dict[str, str] = {}
        for item in client.invoice_items_of(app=self.app, stripe_invoice_id=row.stripe_invoice_id or ""):
            line = wanted.get(item.line_id or "")
            if line is None or line.id in kept:
                client.invoice_item_delete(app=self.app, item_id=item.item_id)
                continue
            if (item.amount, item.description) != (line.amount, line.description):
                client.invoice_item_update(
                    app=self.app, item_id=item.item_id, params={"amount": line.amount, "description": line.description}
                )
            kept[line.id] = item.item_id
        for line in wanted.values():
            if line.id not in kept:
                kept[line.id] = self._create_item(invoice, row, stripe_customer_id, line, lost=recorded.get(line.id))
                _mark(row, line_items={**recorded, **kept})
        return kept

    def _create_item(
        self, invoice: "Invoice", row: StripeInvoiceSync, stripe_customer_id: str, line: LineToSync, lost: str | None
    ) -> str:
        """Create the line's item. A replayed answer naming an item that is no longer on the invoice (it was deleted
        since) means the key is spent: try again with a key chained after that item."""
        params = {
            "customer": stripe_customer_id,
            "invoice": row.stripe_invoice_id,
            "amount": line.amount,
            "currency": invoice.currency.lower(),
            "description": line.description,
            "metadata": _metadata(self.app, invoice.id, **{client.METADATA_LINE_ID: line.id}),
        }
        key = f"invoice:{invoice.id}:item:{line.id}" + (f":after:{lost}" if lost else "")
        for _ in range(MAX_SPENT_KEYS):
            created = client.invoice_item_create(app=self.app, params=params, idempotency_key=key)
            if not created.replayed or self._on_invoice(row, created.id):
                return created.id
            lost = created.id
            key = f"invoice:{invoice.id}:item:{line.id}:after:{lost}"
        raise client.StripeRequestFailed(f"could not create a Stripe invoice item for line {line.id}")

    def _on_invoice(self, row: StripeInvoiceSync, item_id: str) -> bool:
        items = client.invoice_items_of(app=self.app, stripe_invoice_id=row.stripe_invoice_id or "")
        return any(item.item_id == item_id for item in items)

    def finalize(self, invoice: "Invoice") -> SyncResult:
        """Re-check the draft against our lines (cheap, and it heals anything a rolled-back run left behind), then
        finalize the Stripe invoice; its number becomes ours."""
        row = StripeInvoiceSync.objects.filter(invoice_id=invoice.id).first()
        if row is None or row.finalize_state != SyncState.DONE:
            self.sync_draft(invoice)
            row = StripeInvoiceSync.objects.get(invoice_id=invoice.id)
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
