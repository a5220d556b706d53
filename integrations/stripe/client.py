"""The only module that talks to Stripe: per-app clients, error mapping, and Decimal → minor units.

Every call builds a `stripe.StripeClient` with the app's decrypted key (no global `stripe.api_key`), pointed at
`settings.OPENMETER_STRIPE_API_BASE` when set (tests use localstripe). Network errors, rate limits and Stripe 5xx are
retried by the library with exponential backoff (`max_network_retries`; POSTs carry idempotency keys so a retry is
safe) and then surface as `StripeTransientError`; anything else is a `StripeRequestFailed` (permanent: retrying
would fail the same way). Either fails the invoice's sync step (`draft.sync_failed`, `issuing.failed`), which
`integrations.stripe_sync_retry_due` retries with backoff.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import stripe
from django.conf import settings

from billing.models import App
from openmeter_site.core.errors import FailedDependency, InvalidInput, NotFound
from openmeter_site.core.money import ROUNDING, minor_units

if TYPE_CHECKING:  # the library's TypedDicts for request params; the dicts our callers build are cast to them here
    from stripe import RequestOptions
    from stripe.params import (
        CustomerCreateParams,
        CustomerUpdateParams,
        InvoiceCreateParams,
        InvoiceItemCreateParams,
        InvoiceItemUpdateParams,
        WebhookEndpointCreateParams,
    )
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

METADATA_APP_ID = "om_app_id"
METADATA_NAMESPACE = "om_namespace"
METADATA_INVOICE_ID = "om_invoice_id"
METADATA_LINE_ID = "om_line_id"
METADATA_CUSTOMER_ID = "om_customer_id"
NAMESPACE = "default"


class StripeTransientError(FailedDependency):
    """Stripe could not be reached or was overloaded even after the library's own retries: retry later."""


class StripeRequestFailed(FailedDependency):
    """Stripe refused the request; retrying the same request would fail again."""


class StripeKeyRejected(InvalidInput):
    """The API key is not valid for Stripe."""


def client_for_key(api_key: str) -> stripe.StripeClient:
    base = settings.OPENMETER_STRIPE_API_BASE
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base} if base else None,
        max_network_retries=settings.OPENMETER_STRIPE_MAX_NETWORK_RETRIES,
    )


def client_for(app: App) -> stripe.StripeClient:
    key = app.secret_api_key
    if not key:
        raise InvalidInput(f"Stripe app {app.id} has no API key")
    return client_for_key(key)


@contextmanager
def stripe_errors(what: str) -> Iterator[None]:
    """Map Stripe's exceptions onto ours, once, for every call."""
    try:
        yield
    except stripe.AuthenticationError as exc:
        raise StripeKeyRejected(f"Stripe rejected the API key while trying to {what}: {exc.user_message or exc}") from exc
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise StripeTransientError(f"Stripe is unavailable ({what}): {exc}") from exc
    except stripe.StripeError as exc:
        if exc.http_status is not None and exc.http_status >= 500:
            raise StripeTransientError(f"Stripe is unavailable ({what}): {exc}") from exc
        raise StripeRequestFailed(f"Stripe refused to {what}: {exc.user_message or exc}") from exc


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Decimal money → Stripe's integer amount in the currency's minor unit, rounded half up (12.345 USD → 1235)."""
    exponent = minor_units(currency)
    scaled = (amount * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUNDING)
    return int(scaled)


def _options(idempotency_key: str | None) -> "RequestOptions":
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --- account and webhook endpoint -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripeAccount:
    id: str
    livemode: bool


def account_get(api_key: str) -> StripeAccount:
    """Validates the key: Stripe answers the key's own account, or 401."""
    with stripe_errors("retrieve the account"):
        account = client_for_key(api_key).v1.accounts.retrieve_current().to_dict()
    return StripeAccount(id=account["id"], livemode=api_key.startswith("sk_live_") or bool(account.get("livemode")))


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    secret: str


def webhook_endpoint_create(*, api_key: str, app_id: str, base_url: str) -> WebhookEndpoint:
    url = f"{base_url.rstrip('/')}/api/v1/apps/{app_id}/stripe/webhook"
    params: WebhookEndpointCreateParams = {
        "url": url,
        "enabled_events": [
            "setup_intent.succeeded",
            "setup_intent.setup_failed",
            "setup_intent.requires_action",
            "invoice.paid",
            "invoice.payment_failed",
            "invoice.payment_action_required",
            "invoice.marked_uncollectible",
            "invoice.voided",
            "invoice.overdue",
            "invoice.finalization_failed",
            "invoice.sent",
        ],
        "description": "OpenMeter-compatible billing webhook, do not delete or modify manually",
        "metadata": {METADATA_APP_ID: app_id, METADATA_NAMESPACE: NAMESPACE},
    }
    with stripe_errors("create the webhook endpoint"):
        endpoint = client_for_key(api_key).v1.webhook_endpoints.create(params, _options(f"app:{app_id}:webhook"))
    if not endpoint.secret:  # Stripe shows the signing secret once, in this answer; without it no webhook verifies
        raise StripeRequestFailed(f"Stripe returned no signing secret for the new webhook endpoint {endpoint.id}")
    return WebhookEndpoint(id=endpoint.id, secret=endpoint.secret)


def webhook_endpoint_delete(*, app: App) -> None:
    if not app.stripe_webhook_endpoint_id:
        return
    try:
        with stripe_errors("delete the webhook endpoint"):
            client_for(app).v1.webhook_endpoints.delete(app.stripe_webhook_endpoint_id)
    except StripeRequestFailed:
        pass  # already gone in Stripe: nothing to clean up


def construct_event(*, payload: bytes, signature: str, secret: str) -> Mapping[str, Any]:
    """Verify the `Stripe-Signature` header (HMAC-SHA256 of `t.payload`, 5 minutes tolerance) and parse the event."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidInput(f"invalid Stripe-Signature: {exc.user_message or exc}") from exc
    except ValueError as exc:
        raise InvalidInput(f"malformed Stripe event: {exc}") from exc
    return event.to_dict()


# --- customers and payment methods ------------------------------------------------------------------------------


def customer_get(*, app: App, stripe_customer_id: str) -> Mapping[str, Any]:
    try:
        with stripe_errors("retrieve the customer"):
            customer = client_for(app).v1.customers.retrieve(stripe_customer_id).to_dict()
    except StripeRequestFailed as exc:
        raise InvalidInput(f"stripeCustomerId: Stripe customer {stripe_customer_id!r} not found ({exc.detail})") from exc
    if customer.get("deleted"):
        raise InvalidInput(f"stripeCustomerId: Stripe customer {stripe_customer_id!r} is deleted")
    return customer


def customer_create(
    *, app: App, customer_id: str, name: str, email: str | None, idempotency_key: str
) -> str:
    params: CustomerCreateParams = {
        "name": name,
        "metadata": {METADATA_APP_ID: app.id, METADATA_NAMESPACE: NAMESPACE, METADATA_CUSTOMER_ID: customer_id},
    }
    if email:
        params["email"] = email
    with stripe_errors("create the customer"):
        created = client_for(app).v1.customers.create(params, _options(idempotency_key))
    return created.id


def payment_method_check(*, app: App, stripe_customer_id: str, payment_method_id: str) -> None:
    try:
        with stripe_errors("retrieve the payment method"):
            method = client_for(app).v1.payment_methods.retrieve(payment_method_id).to_dict()
    except StripeRequestFailed as exc:
        raise InvalidInput(f"stripeDefaultPaymentMethodId: payment method {payment_method_id!r} not found") from exc
    owner = method.get("customer")
    if owner is not None and owner != stripe_customer_id:
        raise InvalidInput(
            f"stripeDefaultPaymentMethodId: payment method {payment_method_id!r} belongs to another Stripe customer"
        )


def customer_set_default_payment_method(*, app: App, stripe_customer_id: str, payment_method_id: str) -> None:
    params: CustomerUpdateParams = {"invoice_settings": {"default_payment_method": payment_method_id}}
    with stripe_errors("set the default payment method"):
        client_for(app).v1.customers.update(stripe_customer_id, params)


# --- checkout and portal sessions -------------------------------------------------------------------------------


def checkout_session_create(*, app: App, params: dict[str, Any]) -> Mapping[str, Any]:
    with stripe_errors("create the checkout session"):
        session = client_for(app).v1.checkout.sessions.create(cast("CheckoutSessionCreateParams", params))
    return session.to_dict()


def portal_session_create(*, app: App, params: dict[str, Any]) -> Mapping[str, Any]:
    with stripe_errors("create the customer portal session"):
        session = client_for(app).v1.billing_portal.sessions.create(cast("PortalSessionCreateParams", params))
    return session.to_dict()


# --- invoices ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    id: str
    replayed: bool  # Stripe answered from its idempotency cache (`Idempotent-Replayed: true`)


def invoice_item_create(*, app: App, params: dict[str, Any], idempotency_key: str) -> Created:
    with stripe_errors("create an invoice item"):
        item = client_for(app).v1.invoice_items.create(cast("InvoiceItemCreateParams", params), _options(idempotency_key))
    headers = item.last_response.headers if item.last_response is not None else {}
    return Created(id=item.id, replayed=str(headers.get("Idempotent-Replayed", "")).lower() == "true")


def invoice_item_update(*, app: App, item_id: str, params: dict[str, Any]) -> None:
    with stripe_errors("update an invoice item"):
        client_for(app).v1.invoice_items.update(item_id, cast("InvoiceItemUpdateParams", params))


@dataclass(frozen=True)
class StripeLine:
    item_id: str
    line_id: str | None  # our line id, from the item's metadata
    amount: int
    description: str | None


def invoice_items_of(*, app: App, stripe_invoice_id: str) -> list[StripeLine]:
    """The invoice items on a Stripe invoice as Stripe has them now (the truth our stored mapping may lag)."""
    with stripe_errors("list the invoice lines"):
        lines = client_for(app).v1.invoices.line_items.list(stripe_invoice_id, {"limit": 100})
        found = [line.to_dict() for line in lines.auto_paging_iter()]
    out = []
    for line in found:
        details = (line.get("parent") or {}).get("invoice_item_details") or {}
        item_id = line.get("invoice_item") or details.get("invoice_item")
        if item_id:
            metadata = line.get("metadata") or {}
            out.append(StripeLine(item_id, metadata.get(METADATA_LINE_ID), line["amount"], line.get("description")))
    return out


def invoice_item_delete(*, app: App, item_id: str) -> None:
    """Idempotent: an item that is already gone is fine (a rerun after a crash repeats the delete)."""
    try:
        with stripe_errors("delete an invoice item"):
            client_for(app).v1.invoice_items.delete(item_id)
    except StripeRequestFailed as exc:
        if not isinstance(exc.__cause__, stripe.InvalidRequestError) or exc.__cause__.http_status != 404:
            raise


def invoice_create(*, app: App, params: dict[str, Any], idempotency_key: str) -> Mapping[str, Any]:
    with stripe_errors("create the invoice"):
        invoice = client_for(app).v1.invoices.create(cast("InvoiceCreateParams", params), _options(idempotency_key))
    return invoice.to_dict()


def invoice_get(*, app: App, stripe_invoice_id: str) -> Mapping[str, Any]:
    with stripe_errors("retrieve the invoice"):
        return client_for(app).v1.invoices.retrieve(stripe_invoice_id).to_dict()


def invoice_finalize(*, app: App, stripe_invoice_id: str, idempotency_key: str) -> Mapping[str, Any]:
    with stripe_errors("finalize the invoice"):
        invoice = client_for(app).v1.invoices.finalize_invoice(
            stripe_invoice_id, {"auto_advance": True}, _options(idempotency_key)
        )
    return invoice.to_dict()


def invoice_delete_or_void(*, app: App, stripe_invoice_id: str) -> None:
    """Stripe deletes draft invoices and voids finalized ones."""
    try:
        current = invoice_get(app=app, stripe_invoice_id=stripe_invoice_id)
    except StripeRequestFailed as exc:
        raise NotFound(f"Stripe invoice {stripe_invoice_id} not found") from exc
    with stripe_errors("delete the invoice"):
        if current.get("status") == "draft":
            client_for(app).v1.invoices.delete(stripe_invoice_id)
        elif current.get("status") == "open":
            client_for(app).v1.invoices.void_invoice(stripe_invoice_id)
