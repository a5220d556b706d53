"""Entitlements: create, override, end, reset, grants, and the value read (via entitlements.balance).

Other apps call these functions: subscriptions provision with `entitlement_create` / `entitlement_end`,
notifications evaluate thresholds with `entitlement_value` (a frozen `EntitlementValue`).
"""

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import Feature
from customers.models import Customer
from customers.services import customer_get
from entitlements import balance, value_read
from entitlements.balance import EntitlementValue
from entitlements.engine import Recurrence, floor_minute, parse_interval
from entitlements.models import Entitlement, EntitlementType, Grant, UsageReset
from openmeter_site.core.errors import Conflict, InvalidInput, NotFound
from openmeter_site.core.ids import is_ulid

EXPIRATION_DURATIONS = {
    "HOUR": "hours",
    "DAY": "days",
    "WEEK": "weeks",
    "MONTH": "months",
    "YEAR": "years",
}
MAX_PRIORITY = 255
# As upstream: usage is summed over burn-down phases (UNIQUE_COUNT per phase); LATEST meters report a level,
# so their grants are limits (see entitlements.engine). AVG, MIN and MAX cannot back an entitlement.
METERED_AGGREGATIONS = ("SUM", "COUNT", "UNIQUE_COUNT", "LATEST")


@dataclass(frozen=True)
class UsagePeriodInput:
    interval: str
    anchor: dt.datetime | None = None


@dataclass(frozen=True)
class GrantInput:
    amount: Decimal
    effective_at: dt.datetime
    priority: int = 1
    expiration_duration: str | None = None
    expiration_count: int | None = None
    min_rollover_amount: Decimal = Decimal(0)
    max_rollover_amount: Decimal | None = None  # None: V2 default (= amount)
    recurrence: UsagePeriodInput | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- lookups


def entitlement_get(*, entitlement_id: str) -> Entitlement:
    found = Entitlement.objects.select_related("customer", "feature__meter").filter(pk=entitlement_id.upper()).first()
    if found is None or not is_ulid(entitlement_id):
        raise NotFound(f"entitlement {entitlement_id!r} not found")
    return found


class EntitlementNotFound(NotFound):
    """The customer exists but has no such entitlement (at the time asked)."""


def entitlement_for_customer(
    *, customer: Customer, id_or_feature_key: str, at: dt.datetime | None = None, only_active: bool = False
) -> Entitlement:
    """By id, else the customer's entitlement of that feature active at `at` (default now), else (unless
    `only_active`, as value reads ask: upstream's GetEntitlementOfCustomerAt) its latest live one of that feature."""
    qs = Entitlement.objects.select_related("feature__meter").filter(customer=customer)
    if is_ulid(id_or_feature_key):
        found = qs.filter(pk=id_or_feature_key.upper()).first()
        if found is not None:
            found.customer = customer
            return found
    found = active_at(qs.filter(feature_key=id_or_feature_key), at or timezone.now()).order_by("-active_from").first()
    if found is None and not only_active:
        found = qs.filter(feature_key=id_or_feature_key, deleted_at__isnull=True).order_by("-created_at").first()
    if found is None:
        when = f" active at {at.isoformat()}" if at is not None and only_active else ""
        raise EntitlementNotFound(f"no entitlement {id_or_feature_key!r}{when} for customer {customer.pk}")
    found.customer = customer  # keeps the caller's prefetched subjects
    return found


def entitlement_value_of(
    *, customer_id_or_key: str, id_or_feature_key: str, at: dt.datetime | None = None
) -> EntitlementValue:
    """HOT PATH for value reads: the live customer's entitlement (by id, else of that feature active at `at`)
    with everything its value needs in one statement (`value_read`). Anything unusual (unknown customer, no
    active entitlement) falls back to the precise lookups, which raise the right 404."""
    at = at or timezone.now()
    found = value_read.entitlement_with_inputs(
        customer_id_or_key=customer_id_or_key, id_or_feature_key=id_or_feature_key, at=at
    )
    if found is not None:
        entitlement, inputs = found
        return balance.value(entitlement=entitlement, at=at, inputs=inputs)
    customer = customer_get(id_or_key=customer_id_or_key)
    entitlement = entitlement_for_customer(customer=customer, id_or_feature_key=id_or_feature_key, at=at,
                                           only_active=True)
    return balance.value(entitlement=entitlement, at=at)


def entitlement_value_or_no_access(
    *, customer_id_or_key: str, id_or_feature_key: str, at: dt.datetime | None = None
) -> EntitlementValue:
    """The customer-scoped value reads (V1 by feature key, V2): no entitlement at that time is no access, as
    upstream answers `{"hasAccess": false}` (an unknown customer stays a 404)."""
    at = at or timezone.now()
    try:
        return entitlement_value_of(customer_id_or_key=customer_id_or_key, id_or_feature_key=id_or_feature_key, at=at)
    except EntitlementNotFound:
        return balance.no_access(at)


def active_at(qs: QuerySet[Entitlement], at: dt.datetime) -> QuerySet[Entitlement]:
    """The entitlements of `qs` in effect at `at`."""
    return qs.filter(Q(deleted_at__isnull=True) | Q(deleted_at__gt=at), active_from__lte=at).filter(
        Q(active_to__isnull=True) | Q(active_to__gt=at)
    )


def entitlement_list_qs(*, include_deleted: bool = False) -> QuerySet[Entitlement]:
    qs = Entitlement.objects.select_related("customer", "feature").prefetch_related("customer__subjects", "resets")
    return qs if include_deleted else qs.filter(deleted_at__isnull=True)


def grant_get(*, grant_id: str) -> Grant:
    found = Grant.objects.select_related("entitlement__customer", "entitlement__feature__meter").filter(
        pk=grant_id.upper()
    ).first()
    if found is None or not is_ulid(grant_id):
        raise NotFound(f"grant {grant_id!r} not found")
    return found


def grant_list_qs(*, entitlement: Entitlement | None = None, include_deleted: bool = False) -> QuerySet[Grant]:
    qs = Grant.objects.select_related("entitlement__customer", "entitlement__feature")
    if entitlement is not None:
        qs = qs.filter(entitlement=entitlement)
    return qs if include_deleted else qs.filter(deleted_at__isnull=True)


# ---------------------------------------------------------------- entitlements


def _check_feature(feature: Feature, type: str) -> None:
    if feature.archived_at is not None:
        raise InvalidInput(f"feature {feature.key!r} is archived: it cannot get new entitlements")
    if type not in EntitlementType.values:
        raise InvalidInput(f"type: must be one of {', '.join(EntitlementType.values)}")
    if type != EntitlementType.METERED:
        return
    if feature.meter is None:
        raise InvalidInput(f"feature {feature.key!r} has no meter: a metered entitlement needs one")
    if feature.meter.aggregation not in METERED_AGGREGATIONS:
        raise InvalidInput(
            f"feature {feature.key!r}: meters aggregated with {feature.meter.aggregation} cannot back a metered "
            f"entitlement (use {', '.join(METERED_AGGREGATIONS)})"
        )


def _check_config(type: str, config: str | None) -> None:
    if type == EntitlementType.STATIC:
        if config is None:
            raise InvalidInput("config: required for a static entitlement")
        try:
            parsed = json.loads(config)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("config: must be a JSON string encoding an object") from exc
        if not isinstance(parsed, dict):
            raise InvalidInput("config: must be a JSON string encoding an object")
    elif config is not None:
        raise InvalidInput(f"config: not allowed on a {type} entitlement")


def _measure_from(value: str | dt.datetime | None, period: Recurrence, now: dt.datetime) -> dt.datetime:
    if value is None or value == "NOW":
        return floor_minute(now)
    if value == "CURRENT_PERIOD_START":
        return period.period_containing(now)[0]
    if isinstance(value, dt.datetime):
        return floor_minute(value)
    raise InvalidInput("measureUsageFrom: must be CURRENT_PERIOD_START, NOW or a date-time")


def _check_no_overlap(customer: Customer, feature: Feature, start: dt.datetime, end: dt.datetime | None) -> None:
    qs = Entitlement.objects.filter(customer=customer, feature_key=feature.key, deleted_at__isnull=True)
    qs = qs.filter(Q(active_to__isnull=True) | Q(active_to__gt=start))
    if end is not None:
        qs = qs.filter(active_from__lt=end)
    existing = qs.first()
    if existing is not None:
        raise Conflict(
            f"customer {customer.pk} already has an active entitlement {existing.pk} for feature {feature.key!r}",
            extensions={"conflictingEntityId": existing.pk},
        )


def entitlement_create(
    *,
    customer: Customer,
    feature: Feature,
    type: str,
    usage_period: UsagePeriodInput | None = None,
    measure_usage_from: str | dt.datetime | None = None,
    is_soft_limit: bool = False,
    preserve_overage_at_reset: bool = False,
    issue_after_reset: Decimal | None = None,
    issue_after_reset_priority: int | None = None,
    config: str | None = None,
    metadata: Mapping[str, str] | None = None,
    annotations: Mapping[str, Any] | None = None,
    active_from: dt.datetime | None = None,
    active_to: dt.datetime | None = None,
    grants: Sequence[GrantInput] = (),
    at: dt.datetime | None = None,
) -> Entitlement:
    """Create an entitlement; one active per (customer, feature) at any time (409 otherwise).

    Metered: `usage_period` is required; issueAfterReset becomes a grant with amount = min = max rollover
    (annotated `issueAfterReset`), effective from the start of measurement, never expiring.
    """
    now = at or timezone.now()
    _check_feature(feature, type)
    _check_config(type, config)
    if customer.deleted_at is not None:
        raise NotFound(f"customer {customer.pk} not found")
    start = active_from or now
    if active_to is not None and active_to <= start:
        raise InvalidInput("activeTo: must be after activeFrom")
    period = None
    if usage_period is not None:
        parse_interval(usage_period.interval)
        period = Recurrence(usage_period.interval, floor_minute(usage_period.anchor or start))
    metered = type == EntitlementType.METERED
    if metered and period is None:
        raise InvalidInput("usagePeriod: required for a metered entitlement")
    if not metered and (issue_after_reset is not None or grants):
        raise InvalidInput("issueAfterReset/grants: only metered entitlements have grants")
    if issue_after_reset_priority is not None and issue_after_reset is None:
        raise InvalidInput("issueAfterResetPriority: requires issueAfterReset")
    if issue_after_reset is not None and issue_after_reset < 0:
        raise InvalidInput("issueAfterReset: must be at least 0")
    _check_priority(issue_after_reset_priority or 1, "issueAfterResetPriority")
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).first()  # serialise creates per customer
        _check_no_overlap(customer, feature, start, active_to)
        entitlement = Entitlement.objects.create(
            customer=customer,
            feature=feature,
            feature_key=feature.key,
            type=type,
            metadata=dict(metadata or {}),
            annotations=dict(annotations or {}),
            active_from=start,
            active_to=active_to,
            config=config,
            usage_period_interval=period.interval if period else None,
            usage_period_anchor=period.anchor if period else None,
            measure_usage_from=_measure_from(measure_usage_from, period, now) if metered and period else None,
            is_soft_limit=is_soft_limit if metered else False,
            preserve_overage_at_reset=preserve_overage_at_reset if metered else False,
            issue_after_reset=issue_after_reset,
            issue_after_reset_priority=(issue_after_reset_priority or 1) if issue_after_reset is not None else None,
        )
        if issue_after_reset is not None:
            _create_grant_row(
                entitlement,
                GrantInput(
                    amount=issue_after_reset,
                    effective_at=entitlement.measure_usage_from or start,
                    priority=entitlement.issue_after_reset_priority or 1,
                    min_rollover_amount=issue_after_reset,
                    max_rollover_amount=issue_after_reset,
                    annotations={"issueAfterReset": True},
                ),
                now,
            )
        for grant in grants:
            grant_create(entitlement=entitlement, data=grant, at=now)
    return entitlement


def entitlement_end(*, entitlement: Entitlement, at: dt.datetime | None = None) -> Entitlement:
    """End an entitlement at `at` (activeTo); ending it now or in the past also soft-deletes it."""
    now = timezone.now()
    at = at or now
    with transaction.atomic():
        locked = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
        if locked.deleted_at is not None:
            raise NotFound(f"entitlement {entitlement.pk} not found")
        if locked.active_to is None or locked.active_to > at:
            locked.active_to = max(at, locked.active_from)
        if at <= now:
            locked.deleted_at = now
        locked.save(update_fields=["active_to", "deleted_at", "updated_at"])
    return locked


def entitlement_delete(*, entitlement: Entitlement) -> None:
    entitlement_end(entitlement=entitlement)


def entitlements_end_for_customer(*, customer: Customer, at: dt.datetime) -> int:
    ended = 0
    for entitlement in Entitlement.objects.filter(customer=customer, deleted_at__isnull=True):
        entitlement_end(entitlement=entitlement, at=at)
        ended += 1
    return ended


def entitlement_override(*, entitlement: Entitlement, feature: Feature, type: str, **create: Any) -> Entitlement:
    """Replace an active entitlement: the old one ends now (soft-deleted), the new one starts now."""
    if entitlement.deleted_at is not None:
        raise NotFound(f"entitlement {entitlement.pk} not found")
    if feature.key != entitlement.feature_key:
        raise InvalidInput(f"feature: override must keep feature {entitlement.feature_key!r}")
    now = timezone.now()
    with transaction.atomic():
        entitlement_end(entitlement=entitlement, at=now)
        return entitlement_create(customer=entitlement.customer, feature=feature, type=type, at=now, **create)


def entitlement_value(*, entitlement: Entitlement, at: dt.datetime | None = None) -> EntitlementValue:
    return balance.value(entitlement=entitlement, at=at or timezone.now())


def customer_access(*, customer: Customer, at: dt.datetime | None = None) -> dict[str, EntitlementValue]:
    """Every feature the customer has at `at`, with its value."""
    at = at or timezone.now()
    qs = active_at(Entitlement.objects.filter(customer=customer), at).select_related("customer", "feature__meter")
    return {e.feature_key: balance.value(entitlement=e, at=at) for e in qs.order_by("feature_key")}


# ---------------------------------------------------------------- resets


def entitlement_reset(
    *,
    entitlement: Entitlement,
    effective_at: dt.datetime | None = None,
    retain_anchor: bool = False,
    preserve_overage: bool | None = None,
) -> UsageReset:
    """Manual reset: a new usage period starts at `effective_at` (default now, truncated to the minute)."""
    now = timezone.now()
    at = floor_minute(effective_at or now)
    _require_metered(entitlement)
    if at > now:
        raise InvalidInput("effectiveAt: a reset cannot be in the future")
    if at < floor_minute(entitlement.measure_usage_from or entitlement.active_from):
        raise InvalidInput("effectiveAt: before the entitlement started measuring usage")
    with transaction.atomic():
        Entitlement.objects.select_for_update().filter(pk=entitlement.pk).first()
        period_start, _ = balance.current_period(entitlement=entitlement, at=now)
        if at < period_start:  # upstream: a validation error (400)
            raise InvalidInput(f"effectiveAt: must not be before the current usage period ({period_start.isoformat()})")
        last = _last_reset(entitlement)
        if at <= last:
            raise InvalidInput(f"effectiveAt: must be after the last reset ({last.isoformat()})")
        reset, _ = UsageReset.objects.update_or_create(
            entitlement=entitlement,
            reset_at=at,
            defaults={
                "retain_anchor": retain_anchor,
                "preserve_overage": entitlement.preserve_overage_at_reset if preserve_overage is None else preserve_overage,
                "automatic": False,
            },
        )
        balance.invalidate_snapshots(entitlement=entitlement, since=at)
    return reset


def _last_reset(entitlement: Entitlement) -> dt.datetime:
    """Upstream's `LastReset`: the latest recorded reset, else when usage measuring started."""
    latest = entitlement.resets.order_by("-reset_at").values_list("reset_at", flat=True).first()
    return latest or floor_minute(entitlement.measure_usage_from or entitlement.active_from)


def entitlement_reset_due(*, at: dt.datetime | None = None) -> int:
    """Beat job: record the automatic reset at the start of each metered entitlement's current usage period,
    and make sure the balance snapshot at that boundary exists once it is past the grace window.

    Idempotent and safe under two workers: resets are unique per (entitlement, minute) and snapshots per
    (entitlement, instant), both written with conflict-ignoring inserts. Values never depend on this job:
    reads compute the same boundaries from the usage period.
    """
    now = at or timezone.now()
    recorded = 0
    qs = active_at(Entitlement.objects.filter(type=EntitlementType.METERED), now).select_related(
        "customer", "feature__meter"
    ).prefetch_related("resets", "customer__subjects")
    for entitlement in qs.order_by("pk").iterator(chunk_size=200):
        start, _ = balance.current_period(entitlement=entitlement, at=now)
        if entitlement.measure_usage_from is None or start <= entitlement.measure_usage_from:
            continue
        _, created = UsageReset.objects.get_or_create(
            entitlement=entitlement,
            reset_at=start,
            defaults={"retain_anchor": True, "preserve_overage": entitlement.preserve_overage_at_reset, "automatic": True},
        )
        recorded += int(created)
        if start <= now - balance.GRACE and not entitlement.snapshots.filter(at=start).exists():
            balance.compute(entitlement, now)
    return recorded


# ---------------------------------------------------------------- grants


def _check_priority(priority: int, name: str = "priority") -> None:
    if not 1 <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"{name}: must be between 1 and {MAX_PRIORITY}")


def _require_metered(entitlement: Entitlement) -> None:
    if entitlement.type != EntitlementType.METERED:
        raise InvalidInput(f"entitlement {entitlement.pk} is {entitlement.type}: only metered entitlements have grants")


def _validate_grant(data: GrantInput) -> None:
    if data.amount < 0:
        raise InvalidInput("amount: must be at least 0")
    _check_priority(data.priority)
    if data.min_rollover_amount < 0:
        raise InvalidInput("minRolloverAmount: must be at least 0")
    if data.max_rollover_amount is not None:
        if data.max_rollover_amount < 0:
            raise InvalidInput("maxRolloverAmount: must be at least 0")
        if data.min_rollover_amount > data.max_rollover_amount:
            raise InvalidInput("minRolloverAmount: must not exceed maxRolloverAmount")
    if (data.expiration_duration is None) != (data.expiration_count is None):
        raise InvalidInput("expiration: needs both duration and count")
    if data.expiration_duration is not None and data.expiration_duration not in EXPIRATION_DURATIONS:
        raise InvalidInput(f"expiration.duration: must be one of {', '.join(EXPIRATION_DURATIONS)}")
    if data.expiration_count is not None and not 1 <= data.expiration_count <= 1000:
        raise InvalidInput("expiration.count: must be between 1 and 1000")
    if data.recurrence is not None:
        parse_interval(data.recurrence.interval)


def _expires_at(effective_at: dt.datetime, duration: str | None, count: int | None) -> dt.datetime | None:
    if duration is None or count is None:
        return None
    from dateutil.relativedelta import relativedelta

    return effective_at + relativedelta(**{EXPIRATION_DURATIONS[duration]: count})


def _create_grant_row(entitlement: Entitlement, data: GrantInput, now: dt.datetime) -> Grant:
    effective_at = floor_minute(data.effective_at)  # upstream truncates to the minute (credit/grant.go)
    recurrence_anchor = None
    if data.recurrence is not None:
        recurrence_anchor = floor_minute(data.recurrence.anchor or effective_at)
    return Grant.objects.create(
        entitlement=entitlement,
        amount=data.amount,
        priority=data.priority,
        effective_at=effective_at,
        expiration_duration=data.expiration_duration,
        expiration_count=data.expiration_count,
        expires_at=_expires_at(effective_at, data.expiration_duration, data.expiration_count),
        min_rollover_amount=data.min_rollover_amount,
        max_rollover_amount=data.amount if data.max_rollover_amount is None else data.max_rollover_amount,
        recurrence_interval=data.recurrence.interval if data.recurrence else None,
        recurrence_anchor=recurrence_anchor,
        metadata=dict(data.metadata or {}),
        annotations=dict(data.annotations or {}),
        created_at=now,
    )


def grant_create(*, entitlement: Entitlement, data: GrantInput, at: dt.datetime | None = None) -> Grant:
    """Add a grant to a metered entitlement. `max_rollover_amount=None` means the V2 default (= amount)."""
    _require_metered(entitlement)
    _validate_grant(data)
    if entitlement.deleted_at is not None:
        raise NotFound(f"entitlement {entitlement.pk} not found")
    now = at or timezone.now()
    period_start, _ = balance.current_period(entitlement=entitlement, at=now)
    if floor_minute(data.effective_at) < period_start:  # it would rewrite a closed period and its rollover
        raise InvalidInput(
            f"effectiveAt: {data.effective_at.isoformat()} is before the current usage period ({period_start.isoformat()})")
    with transaction.atomic():
        grant = _create_grant_row(entitlement, data, now)
        balance.invalidate_snapshots(entitlement=entitlement, since=grant.effective_at)
    return grant


def grant_void(*, grant: Grant, at: dt.datetime | None = None) -> Grant:
    """Void a grant from `at` (default now) on: usage it already covered stays covered. 409 if not voidable."""
    now = timezone.now()
    void_at = floor_minute(at or now)
    if void_at > now:
        raise InvalidInput("at: cannot void a grant in the future")
    with transaction.atomic():
        locked = Grant.objects.select_for_update().select_related("entitlement").get(pk=grant.pk)
        if locked.voided_at is not None or locked.deleted_at is not None:
            raise Conflict(f"grant {grant.pk} is already voided")
        if locked.expires_at is not None and locked.expires_at <= void_at:
            raise Conflict(f"grant {grant.pk} has already expired")
        period_start, _ = balance.current_period(entitlement=locked.entitlement, at=now)
        if void_at < period_start:
            raise Conflict("at: must be within the current usage period")
        locked.voided_at = void_at
        locked.save(update_fields=["voided_at", "updated_at"])
        balance.invalidate_snapshots(entitlement=locked.entitlement, since=void_at)
    return locked
