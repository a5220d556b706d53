"""Installed apps and customers' app data: install, update, uninstall, upsert, delete.

Stripe specifics (API-key install, sessions, webhooks, invoice sync) live in `integrations.stripe`.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import App, AppStatus
from customers.models import Customer
from integrations.marketplace import InstallMethod, listing_get
from integrations.models import AppType, CustomerAppData
from integrations.selectors import app_get, app_list_qs, default_app
from openmeter_site.core.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class AppUpdateInput:
    type: str
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    secret_api_key: str | None = None
    enable_draft_sync_hook: bool | None = None
    enable_issuing_sync_hook: bool | None = None


@dataclass(frozen=True)
class InstallResult:
    app: App
    default_for_capability_types: list[str] = field(default_factory=list)


def app_install(*, app_type: str, name: str | None = None) -> InstallResult:
    """Install an app that needs no credentials (sandbox, custom invoicing)."""
    listing = listing_get(app_type)
    if InstallMethod.NO_CREDENTIALS not in listing.install_methods:
        raise InvalidInput(
            f"the {app_type} app cannot be installed without credentials: "
            f"use POST /api/v1/marketplace/listings/{app_type}/install/apikey"
        )
    app = App.objects.create(type=app_type, name=name or listing.name, status=AppStatus.READY)
    return InstallResult(app=app)


@transaction.atomic
def app_update(*, app_id: str, data: AppUpdateInput) -> App:
    app = App.objects.select_for_update().filter(pk=app_get(app_id=app_id).pk).get()
    if data.type != app.type:
        raise InvalidInput(f"type: app {app.id} is a {app.type} app; the body's type is {data.type}")
    app.name = data.name
    app.description = data.description or None
    app.metadata = data.metadata or {}
    if app.type == AppType.CUSTOM_INVOICING:
        app.enable_draft_sync_hook = bool(data.enable_draft_sync_hook)
        app.enable_issuing_sync_hook = bool(data.enable_issuing_sync_hook)
    app.save(update_fields=["name", "description", "metadata", "enable_draft_sync_hook", "enable_issuing_sync_hook",
                            "updated_at"])
    if app.type == AppType.STRIPE and data.secret_api_key:
        from integrations.stripe.services import stripe_app_update_api_key

        app = stripe_app_update_api_key(app_id=app.id, api_key=data.secret_api_key)
    return app


def app_uninstall(*, app_id: str) -> None:
    """Soft-delete the app, drop its customer data, and remove its webhook endpoint from Stripe.

    An app that a live billing profile uses cannot be uninstalled (409): move the profile to another app first."""
    from billing.models import BillingProfile

    app = app_get(app_id=app_id)
    in_use = BillingProfile.objects.filter(deleted_at__isnull=True).filter(
        Q(tax_app=app) | Q(invoicing_app=app) | Q(payment_app=app)
    )
    profile = in_use.first()
    if profile is not None:
        raise Conflict(f"app {app.id} is used by billing profile {profile.id} ({profile.name})")
    if app.type == AppType.STRIPE:
        from integrations.stripe.services import stripe_app_before_uninstall

        stripe_app_before_uninstall(app=app)
    with transaction.atomic():
        CustomerAppData.objects.filter(app=app).delete()
        App.objects.filter(pk=app.pk).update(deleted_at=timezone.now(), updated_at=timezone.now())


# --- customer app data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerAppDataInput:
    type: str
    app_id: str | None = None
    stripe_customer_id: str | None = None
    stripe_default_payment_method_id: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class CustomerAppDataView:
    """One entry of a customer's app data; sandbox and custom invoicing apps have an entry without a row."""

    app: App
    row: CustomerAppData | None


def customer_app_data_list(*, customer: Customer, app_type: str | None = None) -> list[CustomerAppDataView]:
    rows = {row.app_id: row for row in CustomerAppData.objects.filter(customer=customer)}
    views = []
    for app in app_list_qs(app_type=app_type):
        row = rows.get(app.id)
        if app.type == AppType.STRIPE and row is None:
            continue
        views.append(CustomerAppDataView(app=app, row=row))
    return views


def _resolve_app(item: CustomerAppDataInput) -> App:
    if item.app_id:
        app = app_get(app_id=item.app_id)
        if app.type != item.type:
            raise InvalidInput(f"id: app {app.id} is a {app.type} app, not {item.type}")
        return app
    return default_app(app_type=item.type)


def customer_app_data_upsert(*, customer: Customer, items: Sequence[CustomerAppDataInput]) -> list[CustomerAppDataView]:
    """Validate every item first (Stripe ids against Stripe), then write all of them in one transaction."""
    resolved = [(item, _resolve_app(item)) for item in items]
    for item, app in resolved:
        if app.type == AppType.STRIPE:
            from integrations.stripe.services import stripe_customer_data_validate

            stripe_customer_data_validate(
                app=app,
                stripe_customer_id=item.stripe_customer_id or "",
                payment_method_id=item.stripe_default_payment_method_id,
            )
    with transaction.atomic():
        return [CustomerAppDataView(app=app, row=_write(customer, app, item)) for item, app in resolved]


def _write(customer: Customer, app: App, item: CustomerAppDataInput) -> CustomerAppData:
    defaults: dict[str, object] = {}
    if app.type == AppType.STRIPE:
        defaults = {
            "stripe_customer_id": item.stripe_customer_id,
            "stripe_default_payment_method_id": item.stripe_default_payment_method_id,
        }
    elif app.type == AppType.CUSTOM_INVOICING:
        defaults = {"metadata": item.metadata or {}}
    row, _ = CustomerAppData.objects.update_or_create(customer=customer, app=app, defaults=defaults)
    return row


def customer_app_data_delete(*, customer: Customer, app_id: str) -> None:
    app = app_get(app_id=app_id)
    CustomerAppData.objects.filter(customer=customer, app=app).delete()
