"""The Stripe app: install with an API key, key rotation, customer data, checkout and portal sessions, webhooks."""

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.models import App, AppStatus
from customers.models import Customer
from customers.services import CustomerInput, customer_create, customer_get
from integrations.marketplace import listing_get
from integrations.models import AppType, CustomerAppData, StripeWebhookEvent
from integrations.selectors import app_get, customer_stripe_app, customer_stripe_data, default_app
from integrations.services import InstallResult
from integrations.stripe import client
from integrations.stripe.webhooks import call_stripe_first, handle_event
from openmeter_site.core.crypto import mask_secret
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.lengths import check_length, column_length

logger = logging.getLogger(__name__)


def _check_key_shape(api_key: str, field: str = "apiKey") -> None:
    if not api_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        raise InvalidInput(f"{field}: a Stripe secret key starts with sk_test_, sk_live_, rk_test_ or rk_live_")


def stripe_app_install(*, api_key: str, name: str | None = None, create_billing_profile: bool = True) -> InstallResult:
    """Validate the key against Stripe, store it encrypted, and register our webhook endpoint with Stripe.

    The webhook endpoint is created only when `OPENMETER_STRIPE_WEBHOOK_BASE_URL` says where Stripe can reach us;
    otherwise the app stores a random secret of its own (replace it in the admin with the signing secret of an
    endpoint registered in Stripe by hand); webhooks are accepted only if signed with the app's secret.
    """
    _check_key_shape(api_key)
    account = client.account_get(api_key)
    app = App(
        type=AppType.STRIPE,
        name=name or listing_get(AppType.STRIPE).name,
        status=AppStatus.READY,
        stripe_account_id=account.id,
        livemode=account.livemode,
        masked_api_key=mask_secret(api_key),
    )
    app.secret_api_key = api_key
    base_url = settings.OPENMETER_STRIPE_WEBHOOK_BASE_URL
    if base_url:
        endpoint = client.webhook_endpoint_create(api_key=api_key, app_id=app.id, base_url=base_url)
        app.stripe_webhook_endpoint_id = endpoint.id
        app.webhook_secret = endpoint.secret
    else:
        app.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        app.save()
        defaults = _make_default_for_billing(app) if create_billing_profile else []
    return InstallResult(app=app, default_for_capability_types=defaults)


def _make_default_for_billing(app: App) -> list[str]:
    """`createBillingProfile`: a billing profile on the new app, made the default when the default is a sandbox
    profile (OpenMeter's rule); the answer lists the capabilities the app became the default for."""
    from billing.services import billing_profile_create, billing_profile_default_ensure
    from billing.services.profiles import ProfileApps

    current = billing_profile_default_ensure()
    make_default = current.invoicing_app.type == AppType.SANDBOX
    billing_profile_create(
        name=f"{app.name} Billing Profile",
        supplier=current.supplier,
        default=make_default,
        workflow=None,
        apps=ProfileApps(tax=app.id, invoicing=app.id, payment=app.id),
    )
    return [c.type for c in listing_get(AppType.STRIPE).capabilities] if make_default else []


def stripe_app_update_api_key(*, app_id: str, api_key: str) -> App:
    """Rotate the key; the new key must belong to the same Stripe account (asked before the row lock is taken)."""
    _check_key_shape(api_key, "secretAPIKey")
    account = client.account_get(api_key)
    with transaction.atomic():
        app = App.objects.select_for_update().get(pk=app_get(app_id=app_id, app_type=AppType.STRIPE).pk)
        if app.stripe_account_id and account.id != app.stripe_account_id:
            raise InvalidInput(
                f"secretAPIKey: the key belongs to Stripe account {account.id}, the app to {app.stripe_account_id}"
            )
        app.secret_api_key = api_key
        app.masked_api_key = mask_secret(api_key)
        app.livemode = account.livemode
        app.status = AppStatus.READY
        app.save(update_fields=["secret_api_key_encrypted", "masked_api_key", "livemode", "status", "updated_at"])
    return app


WEBHOOK_SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9_\-+/=]{8,200}$")


def stripe_app_webhook_secret_replace(*, app_id: str, webhook_secret: str) -> App:
    """The signing secret of a webhook endpoint the operator registered in Stripe by hand (…/stripe/webhook): from
    now on only events signed with it are accepted."""
    if not WEBHOOK_SECRET_RE.match(webhook_secret):
        raise InvalidInput("webhookSecret: a Stripe webhook signing secret is whsec_ followed by its characters")
    with transaction.atomic():
        app = App.objects.select_for_update().get(pk=app_get(app_id=app_id, app_type=AppType.STRIPE).pk)
        app.webhook_secret = webhook_secret
        app.save(update_fields=["webhook_secret_encrypted", "updated_at"])
    return app


def stripe_app_before_uninstall(*, app: App) -> None:
    client.webhook_endpoint_delete(app=app)


# --- customer data ----------------------------------------------------------------------------------------------


def stripe_customer_data_validate(*, app: App, stripe_customer_id: str, payment_method_id: str | None) -> None:
    if not stripe_customer_id:
        raise InvalidInput("stripeCustomerId: required")
    client.customer_get(app=app, stripe_customer_id=stripe_customer_id)
    if payment_method_id:
        client.payment_method_check(app=app, stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id)


def customer_stripe_get(*, customer: Customer) -> CustomerAppData:
    row = customer_stripe_data(customer=customer)
    if row is None:
        raise NotFound(f"customer {customer.id} has no Stripe app data")
    return row


def customer_stripe_upsert(
    *, customer: Customer, stripe_customer_id: str, payment_method_id: str | None = None
) -> CustomerAppData:
    app = customer_stripe_app(customer=customer)
    stripe_customer_data_validate(app=app, stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id)
    row, _ = CustomerAppData.objects.update_or_create(
        customer=customer,
        app=app,
        defaults={"stripe_customer_id": stripe_customer_id, "stripe_default_payment_method_id": payment_method_id},
    )
    return row


def ensure_stripe_customer(*, app: App, customer: Customer) -> CustomerAppData:
    """The customer's Stripe customer in this app, created in Stripe on first use.

    The idempotency key is derived from our ids, so two concurrent callers (or a rerun after a crash between the
    Stripe call and our insert) get the same Stripe customer; the unique (customer, app) row settles the race.
    """
    row = CustomerAppData.objects.filter(customer=customer, app=app).first()
    if row is not None and row.stripe_customer_id:
        return row
    stripe_customer_id = client.customer_create(
        app=app,
        customer_id=customer.id,
        name=customer.name,
        email=customer.primary_email,
        idempotency_key=f"customer:{customer.id}:app:{app.id}:create",
    )
    try:
        with transaction.atomic():
            row, _ = CustomerAppData.objects.update_or_create(
                customer=customer, app=app, defaults={"stripe_customer_id": stripe_customer_id}
            )
    except IntegrityError:
        row = CustomerAppData.objects.get(customer=customer, app=app)
    return row


# --- sessions ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalSessionInput:
    configuration_id: str | None = None
    locale: str | None = None
    return_url: str | None = None


def stripe_portal_session_create(*, customer: Customer, data: PortalSessionInput) -> Mapping[str, Any]:
    row = customer_stripe_data(customer=customer)
    if row is None or not row.stripe_customer_id:
        raise InvalidInput(f"customer {customer.id} has no Stripe customer: set one with PUT .../stripe first")
    params: dict[str, Any] = {"customer": row.stripe_customer_id}
    if data.configuration_id:
        params["configuration"] = data.configuration_id
    if data.locale:
        params["locale"] = data.locale
    if data.return_url:
        params["return_url"] = data.return_url
    return client.portal_session_create(app=row.app, params=params)


def checkout_customer(ref: Mapping[str, Any]) -> Customer:
    """The request's `customer`: `{id}`, `{key}`, or a `CustomerCreate` (has a `name`) to create."""
    if "id" in ref:
        return customer_get(id_or_key=ref["id"])
    if "name" not in ref:
        return customer_get(id_or_key=ref["key"])
    return _customer_create(ref)


def _customer_create(data: Mapping[str, Any]) -> Customer:
    return customer_create(
        data=CustomerInput(
            name=data["name"],
            key=data.get("key"),
            description=data.get("description"),
            primary_email=data.get("primaryEmail"),
            currency=data.get("currency"),
            metadata=data.get("metadata") or {},
            subject_keys=list((data.get("usageAttribution") or {}).get("subjectKeys") or []),
        )
    )


@dataclass(frozen=True)
class CheckoutSessionInput:
    customer: Customer
    options: Mapping[str, Any]
    app_id: str | None = None
    stripe_customer_id: str | None = None


@dataclass(frozen=True)
class CheckoutSession:
    customer: Customer
    stripe_customer_id: str
    session: Mapping[str, Any]


# The request's `options` → Stripe's checkout session parameters (the nested ones keep Stripe's own shapes).
_CHECKOUT_OPTIONS = {
    "billingAddressCollection": "billing_address_collection",
    "cancelURL": "cancel_url",
    "clientReferenceID": "client_reference_id",
    "currency": "currency",
    "expiresAt": "expires_at",
    "locale": "locale",
    "returnURL": "return_url",
    "successURL": "success_url",
    "uiMode": "ui_mode",
    "paymentMethodTypes": "payment_method_types",
    "redirectOnCompletion": "redirect_on_completion",
}


def _checkout_params(app: App, stripe_customer_id: str, customer: Customer, options: Mapping[str, Any]) -> dict:
    params: dict[str, Any] = {
        "mode": "setup",
        "customer": stripe_customer_id,
        "metadata": {
            **(options.get("metadata") or {}),
            client.METADATA_APP_ID: app.id,
            client.METADATA_NAMESPACE: client.NAMESPACE,
            client.METADATA_CUSTOMER_ID: customer.id,
        },
        "setup_intent_data": {
            "metadata": {
                client.METADATA_APP_ID: app.id,
                client.METADATA_NAMESPACE: client.NAMESPACE,
                client.METADATA_CUSTOMER_ID: customer.id,
            }
        },
    }
    for ours, theirs in _CHECKOUT_OPTIONS.items():
        if options.get(ours) is not None:
            params[theirs] = options[ours]
    if "currency" in params:
        params["currency"] = str(params["currency"]).lower()
    for ours, theirs in _CHECKOUT_NESTED_OPTIONS.items():
        if options.get(ours):
            params[theirs] = _snake_keys(options[ours])
    return params


_CHECKOUT_NESTED_OPTIONS = {
    "customerUpdate": "customer_update",
    "consentCollection": "consent_collection",
    "taxIdCollection": "tax_id_collection",
    "customText": "custom_text",
}


def _snake_keys(value: Any) -> Any:
    """`{"afterSubmit": {"message": ...}}` → `{"after_submit": {"message": ...}}` (the spec camel-cases Stripe's keys)."""
    if isinstance(value, Mapping):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): _snake_keys(v) for k, v in value.items()}
    return value


def stripe_checkout_session_create(*, data: CheckoutSessionInput) -> CheckoutSession:
    """A setup-mode Checkout session: the customer saves a payment method, which `setup_intent.succeeded` stores."""
    app = app_get(app_id=data.app_id, app_type=AppType.STRIPE) if data.app_id else default_app(app_type=AppType.STRIPE)
    if data.stripe_customer_id:
        client.customer_get(app=app, stripe_customer_id=data.stripe_customer_id)
        CustomerAppData.objects.update_or_create(
            customer=data.customer, app=app, defaults={"stripe_customer_id": data.stripe_customer_id}
        )
        stripe_customer_id = data.stripe_customer_id
    else:
        stripe_customer_id = ensure_stripe_customer(app=app, customer=data.customer).stripe_customer_id or ""
    session = client.checkout_session_create(
        app=app, params=_checkout_params(app, stripe_customer_id, data.customer, data.options)
    )
    return CheckoutSession(customer=data.customer, stripe_customer_id=stripe_customer_id, session=session)


# --- webhooks ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOutcome:
    app_id: str
    customer_id: str | None = None
    message: str | None = None


def stripe_webhook_receive(*, app_id: str, payload: bytes, signature: str | None) -> WebhookOutcome:
    """Verify the signature with the app's secret, then handle the event once (Stripe redelivers)."""
    app = app_get(app_id=app_id, app_type=AppType.STRIPE)
    secret = app.webhook_secret
    if not secret:
        raise InvalidInput(f"app {app.id} has no webhook secret")
    if not signature:
        raise InvalidInput("missing Stripe-Signature header")
    event = client.construct_event(payload=payload, signature=signature, secret=secret)
    event_id, event_type = str(event.get("id")), str(event.get("type"))
    obj = (event.get("data") or {}).get("object") or {}
    object_id = None if obj.get("id") is None else str(obj["id"])
    check_length(event_id, model=StripeWebhookEvent, field="event_id", name="id")
    check_length(event_type, model=StripeWebhookEvent, field="type", name="type")
    check_length(object_id, model=StripeWebhookEvent, field="stripe_object_id", name="data.object.id")
    if StripeWebhookEvent.objects.filter(app=app, event_id=event_id).exists():
        return WebhookOutcome(app_id=app.id, message="event already processed")
    call_stripe_first(app=app, event=event)
    with transaction.atomic():
        _, created = StripeWebhookEvent.objects.get_or_create(
            app=app, event_id=event_id, defaults={"type": event_type, "stripe_object_id": object_id},
        )
        if not created:
            return WebhookOutcome(app_id=app.id, message="event already processed")
        result = handle_event(app=app, event=event)
        outcome = (result.message or "")[: column_length(StripeWebhookEvent, "outcome")]
        StripeWebhookEvent.objects.filter(app=app, event_id=event_id).update(outcome=outcome)
    return WebhookOutcome(app_id=app.id, customer_id=result.customer_id, message=result.message)
