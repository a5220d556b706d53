"""Billing profiles and customer overrides: which profile (supplier, workflow, apps) bills a customer."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import plugins
from billing.models import App, BillingProfile, CustomerOverride, Invoice, InvoiceStatus
from billing.services.locks import advisory_lock
from billing.services.workflow import workflow_validate
from customers.models import Customer
from openmeter_site.core.errors import InvalidInput, NotFound

DEFAULT_PROFILE_NAME = "Default Billing Profile"
# invoices in these states are finished: a profile with only these may be deleted
FINAL_STATUSES = {InvoiceStatus.PAID, InvoiceStatus.VOIDED, InvoiceStatus.DELETED, InvoiceStatus.UNCOLLECTIBLE}


@dataclass(frozen=True)
class ProfileApps:
    tax: str
    invoicing: str
    payment: str


def live_profiles() -> QuerySet[BillingProfile]:
    return BillingProfile.objects.filter(deleted_at__isnull=True).select_related("tax_app", "invoicing_app", "payment_app")


def billing_profile_get(*, profile_id: str) -> BillingProfile:
    billing_profile_default_ensure()
    profile = BillingProfile.objects.select_related("tax_app", "invoicing_app", "payment_app").filter(pk=profile_id).first()
    if profile is None:
        raise NotFound(f"billing profile {profile_id} not found")
    return profile


def billing_profile_default_ensure() -> BillingProfile:
    """The default profile, created on first use with the registered default app (the sandbox), as OpenMeter
    provisions at start-up."""
    profile = live_profiles().filter(is_default=True).first()
    if profile is not None:
        return profile
    with transaction.atomic():
        advisory_lock("billing:default-profile")
        profile = live_profiles().filter(is_default=True).first()
        if profile is not None:
            return profile
        app = plugins.default_app()
        return BillingProfile.objects.create(
            name=DEFAULT_PROFILE_NAME,
            is_default=True,
            supplier={"name": "Default Supplier"},
            workflow=workflow_validate(None),
            tax_app=app,
            invoicing_app=app,
            payment_app=app,
        )


PARTY_TEXT = ("key", "name")
ADDRESS_TEXT = ("postalCode", "state", "city", "line1", "line2", "phoneNumber")


def _party_problems(party: Any, field: str) -> list[dict[str, str]]:
    def problem(where: str, message: str) -> dict[str, str]:
        return {"field": where, "code": "invalid", "message": message}

    if not isinstance(party, dict):
        return [problem(field, "must be an object")]
    out = [problem(f"{field}.{k}", "must be a string") for k in PARTY_TEXT if k in party and not isinstance(party[k], str)]
    tax_id = party.get("taxId")
    if tax_id is not None and not (isinstance(tax_id, dict) and isinstance(tax_id.get("code", ""), str)):
        out.append(problem(f"{field}.taxId", "must be an object with a code"))
    addresses = party.get("addresses")
    if addresses is None:
        return out
    if not isinstance(addresses, list) or len(addresses) > 1:
        return [*out, problem(f"{field}.addresses", "must be a list of at most one address")]
    for i, address in enumerate(addresses):
        where = f"{field}.addresses[{i}]"
        if not isinstance(address, dict):
            out.append(problem(where, "must be an object"))
            continue
        out += [problem(f"{where}.{k}", "must be a string") for k in ADDRESS_TEXT
                if k in address and not isinstance(address[k], str)]
        country = address.get("country")
        if country is not None and not (isinstance(country, str) and len(country) == 2 and country.isupper()):
            out.append(problem(f"{where}.country", "must be a two-letter ISO 3166 country code"))
    return out


def supplier_validate(supplier: Any, *, field: str = "supplier") -> dict[str, Any]:
    """The supplier (`BillingParty`) of a profile; an `InvalidInput` naming each bad field otherwise."""
    problems = _party_problems(supplier, field)
    if problems:
        raise InvalidInput("; ".join(f"{p['field']}: {p['message']}" for p in problems),
                           extensions={"validationErrors": problems})
    return supplier


def _app(app_id: str, role: str) -> App:
    app = App.objects.filter(pk=app_id, deleted_at__isnull=True).first()
    if app is None:
        raise InvalidInput(f"apps.{role}: app {app_id} not found", extensions={"field": f"apps.{role}"})
    return app


def _unset_other_defaults(keep: BillingProfile) -> None:
    BillingProfile.objects.filter(is_default=True, deleted_at__isnull=True).exclude(pk=keep.pk).update(
        is_default=False, updated_at=timezone.now()
    )


@transaction.atomic
def billing_profile_create(
    *,
    name: str,
    supplier: dict[str, Any],
    default: bool,
    workflow: dict[str, Any] | None,
    apps: ProfileApps,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> BillingProfile:
    workflow = workflow_validate(workflow)
    supplier = supplier_validate(supplier)
    advisory_lock("billing:default-profile")
    tax, invoicing, payment = _app(apps.tax, "tax"), _app(apps.invoicing, "invoicing"), _app(apps.payment, "payment")
    if default:
        # the new default replaces the old one: clear the flag first (one default is a unique constraint)
        BillingProfile.objects.filter(is_default=True, deleted_at__isnull=True).update(is_default=False)
    profile = BillingProfile.objects.create(
        name=name,
        description=description,
        metadata=metadata or {},
        is_default=default,
        supplier=supplier,
        workflow=workflow,
        tax_app=tax,
        invoicing_app=invoicing,
        payment_app=payment,
    )
    return profile


@transaction.atomic
def billing_profile_update(
    *,
    profile_id: str,
    name: str,
    supplier: dict[str, Any],
    default: bool,
    workflow: dict[str, Any] | None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> BillingProfile:
    workflow = workflow_validate(workflow)
    supplier = supplier_validate(supplier)
    advisory_lock("billing:default-profile")
    profile = BillingProfile.objects.select_for_update().filter(pk=profile_id).first()
    if profile is None:
        raise NotFound(f"billing profile {profile_id} not found")
    if profile.deleted_at is not None:
        raise InvalidInput(f"billing profile {profile_id} is deleted and cannot be updated")
    if profile.is_default and not default:
        raise InvalidInput("default: the default profile cannot be unset; make another profile the default instead")
    if default and not profile.is_default:
        _unset_other_defaults(profile)
    profile.name = name
    profile.description = description
    profile.metadata = metadata or {}
    profile.supplier = supplier
    profile.workflow = workflow
    profile.is_default = default
    profile.save()
    return billing_profile_get(profile_id=profile.pk)


@transaction.atomic
def billing_profile_delete(*, profile_id: str) -> None:
    profile = BillingProfile.objects.select_for_update().filter(pk=profile_id).first()
    if profile is None:
        raise NotFound(f"billing profile {profile_id} not found")
    if profile.deleted_at is not None:
        raise InvalidInput(f"billing profile {profile_id} is already deleted")
    if profile.is_default:
        raise InvalidInput("the default billing profile cannot be deleted")
    if CustomerOverride.objects.filter(billing_profile=profile).exists():
        raise InvalidInput("the billing profile is pinned by customer overrides; delete those first")
    if Invoice.objects.filter(billing_profile=profile, deleted_at__isnull=True).exclude(status__in=FINAL_STATUSES).exists():
        raise InvalidInput("the billing profile has invoices that are not finalized")
    profile.deleted_at = timezone.now()
    profile.save(update_fields=["deleted_at", "updated_at"])


def billing_profile_list_qs(*, include_archived: bool = False) -> QuerySet[BillingProfile]:
    billing_profile_default_ensure()
    qs = BillingProfile.objects.select_related("tax_app", "invoicing_app", "payment_app")
    return qs if include_archived else qs.filter(deleted_at__isnull=True)


# --- customer overrides -----------------------------------------------------------------------------------

def _customer(customer_id: str) -> Customer:
    customer = Customer.objects.filter(pk=customer_id, deleted_at__isnull=True).first()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def profile_for_customer(customer: Customer) -> BillingProfile:
    """The profile that bills a customer: its pinned profile, else the default one."""
    override = (
        CustomerOverride.objects.filter(customer=customer, billing_profile__deleted_at__isnull=True)
        .select_related("billing_profile__tax_app", "billing_profile__invoicing_app", "billing_profile__payment_app")
        .first()
    )
    if override is not None and override.billing_profile is not None:
        return override.billing_profile
    return billing_profile_default_ensure()


def profiles_for_customers(customer_ids: Iterable[str]) -> dict[str, BillingProfile]:
    """`profile_for_customer` for many customers: one query (two when some are billed by the default profile)."""
    wanted = set(customer_ids)
    out = {
        o.customer_id: o.billing_profile
        for o in CustomerOverride.objects.filter(customer_id__in=wanted, billing_profile__deleted_at__isnull=True)
        .select_related("billing_profile__tax_app", "billing_profile__invoicing_app", "billing_profile__payment_app")
        if o.billing_profile is not None
    }
    if wanted - out.keys():
        default = billing_profile_default_ensure()
        out.update(dict.fromkeys(wanted - out.keys(), default))
    return out


@dataclass(frozen=True)
class OverrideDetails:
    customer: Customer
    override: CustomerOverride | None
    profile: BillingProfile


def customer_override_upsert(*, customer_id: str, billing_profile_id: str | None) -> OverrideDetails:
    customer = _customer(customer_id)
    if billing_profile_id is not None:
        profile = live_profiles().filter(pk=billing_profile_id).first()
        if profile is None:
            raise InvalidInput(f"billingProfileId: billing profile {billing_profile_id} not found")
    with transaction.atomic():
        CustomerOverride.objects.update_or_create(
            customer=customer, defaults={"billing_profile_id": billing_profile_id}
        )
    return customer_override_get(customer_id=customer_id)


def customer_override_get(*, customer_id: str) -> OverrideDetails:
    customer = _customer(customer_id)
    override = CustomerOverride.objects.filter(customer=customer).first()
    return OverrideDetails(customer, override, profile_for_customer(customer))


def customer_override_delete(*, customer_id: str) -> None:
    customer = _customer(customer_id)
    deleted, _ = CustomerOverride.objects.filter(customer=customer).delete()
    if not deleted:
        raise NotFound(f"customer {customer_id} has no billing profile override")


def customer_override_list_qs() -> QuerySet[Customer]:
    """Live customers with their override (if any)."""
    billing_profile_default_ensure()
    return Customer.objects.filter(deleted_at__isnull=True).select_related("billing_override")


def billed_by_q(profile_ids: Iterable[str]) -> Q:
    """Customers billed by one of these profiles: pinned to it, or, for the default profile, pinned to none."""
    profile_ids = list(profile_ids)
    pinned = Q(billing_override__billing_profile_id__in=profile_ids)
    if billing_profile_default_ensure().pk in profile_ids:
        pinned |= Q(billing_override__isnull=True) | Q(billing_override__billing_profile__isnull=True)
    return pinned
