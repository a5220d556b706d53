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

from billing.models import App
from integrations.models import CustomerAppData, StripeInvoiceSync
from integrations.stripe import client
from openmeter_site.core.errors import DomainError


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


def call_stripe_first(*, app: App, event: Mapping[str, Any]) -> None:
    """The Stripe calls an event asks for, made before the transaction that records the event, never inside it:
    Stripe redelivers an event whose handling failed, and repeating these calls is harmless."""
    if str(event.get("type")) != "setup_intent.succeeded":
        return
    target = _setup_intent_target(app, (event.get("data") or {}).get("object") or {})
    if isinstance(target, SetupIntentTarget):
        client.customer_set_default_payment_method(
            app=app, stripe_customer_id=target.stripe_customer_id, payment_method_id=target.payment_method_id
        )


def handle_event(*, app: App, event: Mapping[str, Any]) -> EventResult:
    """Our side of the event, inside the transaction that records it (no call to Stripe)."""
    event_type = str(event.get("type"))
    obj = (event.get("data") or {}).get("object") or {}
    if event_type == "setup_intent.succeeded":
        return _setup_intent_succeeded(app, obj)
    if event_type in INVOICE_TRIGGERS:
        return _invoice_event(app, event_type, obj)
    return EventResult(message=f"ignored event type {event_type}")


@dataclass(frozen=True)
class SetupIntentTarget:
    row: CustomerAppData
    stripe_customer_id: str
    payment_method_id: str


def _setup_intent_target(app: App, intent: Mapping[str, Any]) -> SetupIntentTarget | EventResult:
    """The customer whose default payment method one of our checkout sessions set up, or why there is none."""
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
    return SetupIntentTarget(row, stripe_customer_id, payment_method_id)


def _setup_intent_succeeded(app: App, intent: Mapping[str, Any]) -> EventResult:
    target = _setup_intent_target(app, intent)
    if isinstance(target, EventResult):
        return target
    target.row.stripe_default_payment_method_id = target.payment_method_id
    target.row.save(update_fields=["stripe_default_payment_method_id", "updated_at"])
    return EventResult(message="customer default payment method set", customer_id=target.row.customer_id)


def _invoice_event(app: App, event_type: str, stripe_invoice: Mapping[str, Any]) -> EventResult:
    trigger, confirming = INVOICE_TRIGGERS[event_type]
    invoice_id = _our_invoice_id(app, stripe_invoice)
    if invoice_id is None:
        return EventResult(message="ignoring event for an invoice not issued by this app")
    if stripe_invoice.get("status") not in confirming:
        return EventResult(message=f"ignoring {event_type}: the Stripe invoice is {stripe_invoice.get('status')}")
    from billing.services import invoice_trigger_payment

    try:
        invoice = invoice_trigger_payment(invoice_id=invoice_id, trigger=trigger, actor=f"stripe:{app.id}")
    except DomainError as exc:
        # the news does not fit our invoice's status (e.g. a late payment_failed after paid): acknowledge it, or
        # Stripe would redeliver it for days
        return EventResult(message=f"invoice {invoice_id}: {trigger} not applied: {exc.detail}")
    return EventResult(message=f"invoice {invoice_id}: {trigger}", customer_id=invoice.customer_id)


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
