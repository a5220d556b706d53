"""Wire shapes of the apps, marketplace, customer app data and Stripe endpoints (In serializers, Out functions)."""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from billing.models import App
from customers.models import Customer
from integrations.marketplace import listing_get, listing_to_api
from integrations.models import AppType, CustomerAppData
from integrations.services import CustomerAppDataView
from openmeter_site.api.fields import MetadataField
from openmeter_site.core.ids import ULID_RE
from openmeter_site.core.lengths import DESCRIPTION_LENGTH, column_length
from openmeter_site.core.time import format_rfc3339

APP_TYPES = [t.value for t in AppType]


# --- out --------------------------------------------------------------------------------------------------------


def app_to_api(app: App) -> dict[str, Any]:
    """`App` (oneOf by type). The Stripe secret key never leaves the server: only `maskedAPIKey`."""
    body: dict[str, Any] = {
        "id": app.id,
        "type": app.type,
        "name": app.name,
        "metadata": app.metadata or {},
        "createdAt": format_rfc3339(app.created_at),
        "updatedAt": format_rfc3339(app.updated_at),
        "listing": listing_to_api(listing_get(app.type)),
        "status": app.status,
    }
    if app.description:
        body["description"] = app.description
    if app.deleted_at:
        body["deletedAt"] = format_rfc3339(app.deleted_at)
    if app.type == AppType.STRIPE:
        body["stripeAccountId"] = app.stripe_account_id or ""
        body["livemode"] = app.livemode
        body["maskedAPIKey"] = app.masked_api_key or ""
    elif app.type == AppType.CUSTOM_INVOICING:
        body["enableDraftSyncHook"] = app.enable_draft_sync_hook
        body["enableIssuingSyncHook"] = app.enable_issuing_sync_hook
    return body


def stripe_customer_data_to_api(row: CustomerAppData) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": AppType.STRIPE.value,
        "id": row.app_id,
        "app": app_to_api(row.app),
        "stripeCustomerId": row.stripe_customer_id or "",
    }
    if row.stripe_default_payment_method_id:
        body["stripeDefaultPaymentMethodId"] = row.stripe_default_payment_method_id
    return body


def customer_app_data_to_api(view: CustomerAppDataView) -> dict[str, Any]:
    if view.app.type == AppType.STRIPE and view.row is not None:
        return stripe_customer_data_to_api(view.row)
    body: dict[str, Any] = {"type": view.app.type, "id": view.app.id, "app": app_to_api(view.app)}
    if view.app.type == AppType.CUSTOM_INVOICING:
        body["metadata"] = (view.row.metadata if view.row is not None else None) or {}
    return body


def _epoch(value: Any) -> str | None:
    if value is None:
        return None
    return format_rfc3339(dt.datetime.fromtimestamp(int(value), tz=dt.UTC))


def portal_session_to_api(session: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": session.get("id"),
        "stripeCustomerId": session.get("customer"),
        "configurationId": session.get("configuration") or "",
        "livemode": bool(session.get("livemode")),
        "createdAt": _epoch(session.get("created")),
        "returnUrl": session.get("return_url") or "",
        "locale": session.get("locale") or "auto",
        "url": session.get("url"),
    }


def checkout_session_to_api(customer_id: str, stripe_customer_id: str, session: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customerId": customer_id,
        "stripeCustomerId": stripe_customer_id,
        "sessionId": session.get("id"),
        "setupIntentId": _stripe_id(session.get("setup_intent")),
        "createdAt": _epoch(session.get("created")),
        "mode": session.get("mode") or "setup",
    }
    optional = {
        "clientSecret": session.get("client_secret"),
        "clientReferenceId": session.get("client_reference_id"),
        "customerEmail": session.get("customer_email"),
        "currency": session["currency"].upper() if session.get("currency") else None,
        "expiresAt": _epoch(session.get("expires_at")),
        "metadata": session.get("metadata"),
        "status": session.get("status"),
        "url": session.get("url"),
        "cancelURL": session.get("cancel_url"),
        "successURL": session.get("success_url"),
        "returnURL": session.get("return_url"),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _stripe_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


# --- in ---------------------------------------------------------------------------------------------------------


# Stripe object ids as stored (CustomerAppData's columns)
STRIPE_ID_LENGTH = column_length(CustomerAppData, "stripe_customer_id")


class UlidField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ULID_RE, error_messages={"invalid": "must be a ULID"}, **kwargs)


class AppReplaceUpdateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=APP_TYPES)
    name = serializers.CharField(min_length=1, max_length=column_length(App, "name"))
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    secretAPIKey = serializers.CharField(required=False, allow_blank=False, trim_whitespace=True)
    enableDraftSyncHook = serializers.BooleanField(required=False)
    enableIssuingSyncHook = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == AppType.CUSTOM_INVOICING:
            missing = [f for f in ("enableDraftSyncHook", "enableIssuingSyncHook") if f not in attrs]
            if missing:
                raise serializers.ValidationError({f: ["required for a custom_invoicing app"] for f in missing})
        return attrs


class StripeAPIKeyInputSerializer(serializers.Serializer):
    secretAPIKey = serializers.CharField(trim_whitespace=True)


class InstallSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, min_length=1, max_length=column_length(App, "name"))
    createBillingProfile = serializers.BooleanField(required=False, default=True)


class ApiKeyInstallSerializer(InstallSerializer):
    apiKey = serializers.CharField(trim_whitespace=True)


class CustomerAppDataItemSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=APP_TYPES)
    id = UlidField(required=False)
    stripeCustomerId = serializers.CharField(required=False, max_length=STRIPE_ID_LENGTH)
    stripeDefaultPaymentMethodId = serializers.CharField(required=False, max_length=STRIPE_ID_LENGTH)
    metadata = MetadataField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == AppType.STRIPE and not attrs.get("stripeCustomerId"):
            raise serializers.ValidationError({"stripeCustomerId": ["required for stripe app data"]})
        return attrs


class StripeCustomerAppDataBaseSerializer(serializers.Serializer):
    stripeCustomerId = serializers.CharField(max_length=STRIPE_ID_LENGTH)
    stripeDefaultPaymentMethodId = serializers.CharField(required=False, max_length=STRIPE_ID_LENGTH)


class PortalSessionParamsSerializer(serializers.Serializer):
    configurationId = serializers.CharField(required=False)
    locale = serializers.CharField(required=False)
    returnUrl = serializers.URLField(required=False)


class CheckoutOptionsSerializer(serializers.Serializer):
    billingAddressCollection = serializers.ChoiceField(choices=["auto", "required"], required=False)
    cancelURL = serializers.URLField(required=False)
    clientReferenceID = serializers.CharField(required=False)
    customerUpdate = serializers.DictField(required=False)
    consentCollection = serializers.DictField(required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    customText = serializers.DictField(required=False)
    expiresAt = serializers.IntegerField(required=False)
    locale = serializers.CharField(required=False)
    metadata = MetadataField()
    returnURL = serializers.URLField(required=False)
    successURL = serializers.URLField(required=False)
    uiMode = serializers.ChoiceField(choices=["embedded", "hosted"], required=False)
    paymentMethodTypes = serializers.ListField(child=serializers.CharField(), required=False)
    redirectOnCompletion = serializers.ChoiceField(choices=["always", "if_required", "never"], required=False)
    taxIdCollection = serializers.DictField(required=False)


class CheckoutCustomerSerializer(serializers.Serializer):
    """`CustomerId` | `CustomerKey` | `CustomerCreate` (the last one creates the customer)."""

    id = UlidField(required=False)
    key = serializers.CharField(required=False, min_length=1, max_length=column_length(Customer, "key"))
    name = serializers.CharField(required=False, min_length=1, max_length=column_length(Customer, "name"))
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_blank=True)
    primaryEmail = serializers.EmailField(required=False)
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False)
    metadata = MetadataField()
    usageAttribution = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not any(k in attrs for k in ("id", "key", "name")):
            raise serializers.ValidationError("customer: give {id}, {key} or a customer to create (name required)")
        return attrs


class CheckoutSessionRequestSerializer(serializers.Serializer):
    appId = UlidField(required=False)
    customer = CheckoutCustomerSerializer()
    stripeCustomerId = serializers.CharField(required=False, max_length=STRIPE_ID_LENGTH)
    options = CheckoutOptionsSerializer()
