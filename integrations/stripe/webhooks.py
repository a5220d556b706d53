"""What a verified Stripe event does to our state (OpenMeter's `appStripeWebhook` table).

- `setup_intent.succeeded` from one of our checkout sessions: the payment method becomes the customer's default
  (in our customer app data and in Stripe's `invoice_settings`).
- invoice events: the invoice we synced moves through billing's payment triggers
  (`invoice.paid` → paid, `invoice.payment_failed` → payment_failed, `invoice.marked_uncollectible` →
  payment_uncollectible, `invoice.payment_action_required` → action_required, `invoice.overdue` → payment_overdue,
  `invoice.voided` → void), only when the Stripe invoice's status confirms it (events can arrive out of order).
- anything else is acknowledged and ignored.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.models import App, CustomerAppData, StripeInvoiceSync
from integrations.stripe import client


@dataclass(frozen=True)
class EventResult:
    message: str | None = None
    customer_id: str | None = None


# Stripe event type → (billing payment trigger, the Stripe invoice statuses that confirm it).
INVOICE_TRIGGERS: dict[str, tuple[str, frozenset[str]]] = {
    "invoice.paid": ("paid", frozenset({"paid"})),
    "invoice.payment_failed": ("payment_failed", frozenset({"open"})),
    "invoice.marked_uncollectible": ("payment_uncollectible", frozenset({"uncollectible"})),
    "invoice.payment_action_required": ("action_required", frozenset({"open"})),
    "invoice.overdue": ("payment_overdue", frozenset({"open"})),
    "invoice.voided": ("void", frozenset({"void"})),
}


def handle_event(*, app: App, event: Mapping[str, Any]) -> EventResult:
    event_type = str(event.get("type"))
    obj = (event.get("data") or {}).get("object") or {}
    if event_type == "setup_intent.succeeded":
        return _setup_intent_succeeded(app, obj)
    if event_type in INVOICE_TRIGGERS:
        return _invoice_event(app, event_type, obj)
    return EventResult(message=f"ignored event type {event_type}")


def _setup_intent_succeeded(app: App, intent: Mapping[str, Any]) -> EventResult:
    metadata = intent.get("metadata") or {}
    owner = metadata.get(client.METADATA_APP_ID)
    if owner is None:
        return EventResult(message="ignoring event as it was not initiated by the openmeter app")
    if owner != app.id:
        return EventResult(message="ignoring event as it was initiated by a different openmeter app")
    stripe_customer_id = _id_of(intent.get("customer"))
    payment_method_id = _id_of(intent.get("payment_method"))
    if not stripe_customer_id or not payment_method_id:
        return EventResult(message="setup intent without customer or payment method")
    row = CustomerAppData.objects.filter(app=app, stripe_customer_id=stripe_customer_id).first()
    if row is None:
        return EventResult(message=f"no customer with Stripe customer {stripe_customer_id}")
    client.customer_set_default_payment_method(
        app=app, stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id
    )
    row.stripe_default_payment_method_id = payment_method_id
    row.save(update_fields=["stripe_default_payment_method_id", "updated_at"])
    return EventResult(message="customer default payment method set", customer_id=row.customer_id)


def _invoice_event(app: App, event_type: str, stripe_invoice: Mapping[str, Any]) -> EventResult:
    trigger, confirming = INVOICE_TRIGGERS[event_type]
    invoice_id = _our_invoice_id(app, stripe_invoice)
    if invoice_id is None:
        return EventResult(message="ignoring event for an invoice not issued by this app")
    if stripe_invoice.get("status") not in confirming:
        return EventResult(message=f"ignoring {event_type}: the Stripe invoice is {stripe_invoice.get('status')}")
    from billing.services import invoice_trigger_payment  # type: ignore[attr-defined]

    invoice_trigger_payment(invoice_id=invoice_id, trigger=trigger)
    return EventResult(message=f"invoice {invoice_id}: {trigger}")


def _our_invoice_id(app: App, stripe_invoice: Mapping[str, Any]) -> str | None:
    sync = StripeInvoiceSync.objects.filter(app=app, stripe_invoice_id=stripe_invoice.get("id")).first()
    if sync is not None:
        return sync.invoice_id
    metadata = stripe_invoice.get("metadata") or {}
    if metadata.get(client.METADATA_APP_ID) == app.id:
        return metadata.get(client.METADATA_INVOICE_ID)
    return None


def _id_of(value: Any) -> str | None:
    """Stripe sends either an id or an expanded object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value
