"""Shared builders for billing tests."""

import datetime as dt
from typing import Any

from billing.models import App, BillingProfile
from billing.services.profiles import ProfileApps, billing_profile_create, billing_profile_default_ensure
from integrations.models import AppType
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FEB = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def profile(*, app: App | None = None, default: bool = True, **invoicing: Any) -> BillingProfile:
    """A profile on the sandbox app (or `app`), made the default, with invoicing settings overridden."""
    app = app or billing_profile_default_ensure().invoicing_app
    return billing_profile_create(
        name="Test profile", supplier={"name": "Supplier Inc"}, default=default,
        workflow={"invoicing": invoicing} if invoicing else None,
        apps=ProfileApps(tax=app.pk, invoicing=app.pk, payment=app.pk),
    )


def custom_invoicing_app(*, draft_hook: bool = True, issuing_hook: bool = True) -> App:
    return App.objects.create(type=AppType.CUSTOM_INVOICING, name="ERP", enable_draft_sync_hook=draft_hook,
                              enable_issuing_sync_hook=issuing_hook)


def metered_feature(key: str = "tokens", group_by: dict | None = None, filters: dict | None = None):
    meter = MeterFactory(slug=f"{key}_meter", event_type=key, value_property="$.tokens", group_by=group_by or {})
    return FeatureFactory(key=key, meter=meter, meter_group_by_filters=filters)


def customer(name: str = "Acme Corp", subjects: tuple[str, ...] = ("acme",)):
    return CustomerFactory(name=name, subjects=list(subjects))


def flat_line(name: str = "Platform fee", amount: str = "10", *, start: dt.datetime = T0, end: dt.datetime = FEB,
              term: str = "in_advance") -> dict:
    return {"name": name, "period": {"from": iso(start), "to": iso(end)},
            "invoiceAt": iso(start if term == "in_advance" else end),
            "rateCard": {"price": {"type": "flat", "amount": amount, "paymentTerm": term}}}


def usage_line(feature_key: str, price: dict, *, name: str = "Tokens", start: dt.datetime = T0,
               end: dt.datetime = FEB, discounts: dict | None = None) -> dict:
    rate_card: dict = {"featureKey": feature_key, "price": price}
    if discounts:
        rate_card["discounts"] = discounts
    return {"name": name, "period": {"from": iso(start), "to": iso(end)}, "invoiceAt": iso(end), "rateCard": rate_card}
