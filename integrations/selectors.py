"""Read queries over installed apps and customers' app data."""

from django.db.models import QuerySet

from billing.models import App
from customers.models import Customer
from integrations.models import AppType, CustomerAppData
from openmeter_site.core.errors import InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid


def app_list_qs(*, app_type: str | None = None) -> QuerySet[App]:
    qs = App.objects.filter(deleted_at__isnull=True).order_by("created_at", "id")
    return qs.filter(type=app_type) if app_type else qs


def app_get(*, app_id: str, app_type: str | None = None) -> App:
    app = App.objects.filter(pk=app_id.upper() if is_ulid(app_id) else app_id, deleted_at__isnull=True).first()
    if app is None:
        raise NotFound(f"app {app_id} not found")
    if app_type is not None and app.type != app_type:
        raise InvalidInput(f"app {app_id} is a {app.type} app, not a {app_type} app")
    return app


def default_app(*, app_type: str) -> App:
    """The app of a type used when a request names none: the first one installed."""
    app = app_list_qs(app_type=app_type).first()
    if app is None:
        raise NotFound(f"no {app_type} app is installed")
    return app


def customer_app_data_qs(*, customer: Customer) -> QuerySet[CustomerAppData]:
    return CustomerAppData.objects.filter(customer=customer, app__deleted_at__isnull=True).select_related("app")


def customer_stripe_app(*, customer: Customer) -> App:
    """The Stripe app that bills the customer: its billing profile's invoicing app when that is Stripe, else the
    first Stripe app installed."""
    from billing.services import profile_for_customer

    invoicing_app = profile_for_customer(customer).invoicing_app
    if invoicing_app.type == AppType.STRIPE and invoicing_app.deleted_at is None:
        return invoicing_app
    return default_app(app_type=AppType.STRIPE)


def customer_stripe_data(*, customer: Customer) -> CustomerAppData | None:
    """The customer's data in its Stripe app (None when it has none, or no Stripe app is installed)."""
    if not app_list_qs(app_type=AppType.STRIPE).exists():
        return None
    app = customer_stripe_app(customer=customer)
    return customer_app_data_qs(customer=customer).filter(app=app).first()
