"""Customers: create, replace, soft-delete, and the usage-attribution rule.

A customer's usage is every event whose subject is its key or one of its `usageAttribution.subjectKeys`.
A subject therefore belongs to at most one live customer: neither another customer's subject key nor
another customer's key may be claimed again (409).

Apps above may refuse a customer's deletion (subscriptions refuses it while one is active, as upstream): they
register a guard in their `AppConfig.ready`, so this module never imports them.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from customers.events import customer_deleted
from customers.models import Customer, CustomerSubject
from openmeter_site.core.errors import Conflict, NotFound
from openmeter_site.core.ids import is_ulid

DeleteGuard = Callable[[Customer, dt.datetime], None]
_delete_guards: list[DeleteGuard] = []


def register_delete_guard(guard: DeleteGuard) -> None:
    """`guard(customer, at)` raises a DomainError when the customer must not be deleted at `at`."""
    if guard not in _delete_guards:
        _delete_guards.append(guard)


@dataclass(frozen=True)
class CustomerInput:
    name: str
    key: str | None = None
    description: str | None = None
    primary_email: str | None = None
    currency: str | None = None
    billing_address: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    subject_keys: Sequence[str] = ()


def customer_get(*, id_or_key: str, include_deleted: bool = False) -> Customer:
    """By ULID first, then by key (live customers only for keys)."""
    qs = Customer.objects.prefetch_related("subjects")
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    customer = None
    if is_ulid(id_or_key):
        customer = qs.filter(pk=id_or_key.upper()).first()
    if customer is None:
        customer = qs.filter(key=id_or_key, deleted_at__isnull=True).first()
    if customer is None:
        raise NotFound(f"customer {id_or_key!r} not found")
    return customer


def customer_for_subject(*, subject_key: str) -> Customer | None:
    """The live customer whose usage includes this subject, or None."""
    live = Customer.objects.filter(deleted_at__isnull=True).prefetch_related("subjects")
    return (
        live.filter(subjects__subject_key=subject_key, subjects__deleted_at__isnull=True).first()
        or live.filter(key=subject_key).first()
    )


def customer_check(*, data: CustomerInput, customer: Customer | None = None) -> None:
    """What `customer_create` / `customer_update` refuse before writing (409 on a key or subject claimed by
    another live customer); the back office's form shows it on the field."""
    _check_attribution(key=data.key, subject_keys=data.subject_keys, exclude_id=customer.pk if customer else None)


def _check_attribution(*, key: str | None, subject_keys: Sequence[str], exclude_id: str | None) -> None:
    others = Customer.objects.filter(deleted_at__isnull=True)
    if exclude_id:
        others = others.exclude(pk=exclude_id)
    if key and others.filter(key=key).exists():
        raise Conflict(f"key: a customer with key {key!r} already exists", extensions={"field": "key"})
    claimed = set(subject_keys) | ({key} if key else set())
    taken = CustomerSubject.objects.filter(
        subject_key__in=claimed, deleted_at__isnull=True, customer__deleted_at__isnull=True
    )
    if exclude_id:
        taken = taken.exclude(customer_id=exclude_id)
    clash = taken.select_related("customer").first()
    if clash is not None:
        raise Conflict(
            f"usageAttribution.subjectKeys: subject {clash.subject_key!r} already belongs to customer "
            f"{clash.customer_id}; a subject can belong to one customer only",
            extensions={"field": "usageAttribution.subjectKeys"},
        )
    clash_key = others.filter(key__in=list(subject_keys)).values_list("key", flat=True).first()
    if clash_key:
        raise Conflict(f"usageAttribution.subjectKeys: subject {clash_key!r} is the key of another customer",
                       extensions={"field": "usageAttribution.subjectKeys"})


def _write_subjects(customer: Customer, subject_keys: Sequence[str]) -> None:
    CustomerSubject.objects.filter(customer=customer, deleted_at__isnull=True).exclude(
        subject_key__in=list(subject_keys)
    ).delete()
    existing = set(
        CustomerSubject.objects.filter(customer=customer, deleted_at__isnull=True).values_list("subject_key", flat=True)
    )
    CustomerSubject.objects.bulk_create(
        [CustomerSubject(customer=customer, subject_key=k) for k in dict.fromkeys(subject_keys) if k not in existing]
    )


def _apply(customer: Customer, data: CustomerInput) -> None:
    customer.name = data.name
    customer.key = data.key
    customer.description = data.description
    customer.primary_email = data.primary_email
    customer.currency = data.currency
    customer.billing_address = data.billing_address
    customer.metadata = dict(data.metadata or {})


def customer_create(*, data: CustomerInput) -> Customer:
    _check_attribution(key=data.key, subject_keys=data.subject_keys, exclude_id=None)
    customer = Customer()
    _apply(customer, data)
    try:
        with transaction.atomic():
            customer.save()
            _write_subjects(customer, data.subject_keys)
    except IntegrityError as exc:  # a concurrent create claimed the key or a subject first
        raise Conflict(f"customer key or subject already taken: {exc}") from exc
    return customer_get(id_or_key=customer.pk)


def customer_update(*, customer: Customer, data: CustomerInput) -> Customer:
    """PUT semantics: the body replaces every writable field (absent optional fields are cleared)."""
    _check_attribution(key=data.key, subject_keys=data.subject_keys, exclude_id=customer.pk)
    _apply(customer, data)
    try:
        with transaction.atomic():
            customer.save()
            _write_subjects(customer, data.subject_keys)
    except IntegrityError as exc:
        raise Conflict(f"customer key or subject already taken: {exc}") from exc
    return customer_get(id_or_key=customer.pk)


def customer_delete(*, customer: Customer) -> None:
    """Soft delete, unless a registered guard refuses it. Its subjects are released now; the
    `customers.customer_deleted` event ends its entitlements."""
    now = timezone.now()
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.deleted_at is not None:
            raise NotFound(f"customer {customer.pk} not found")
        for guard in _delete_guards:
            guard(locked, now)
        locked.deleted_at = now
        locked.save(update_fields=["deleted_at", "updated_at"])
        CustomerSubject.objects.filter(customer=locked, deleted_at__isnull=True).update(deleted_at=now)
        customer_deleted(locked.pk, now)


def customer_list_qs() -> QuerySet[Customer]:
    """Every customer, deleted ones too, with their subjects."""
    return Customer.objects.prefetch_related("subjects")
