"""Where evaluation inputs come from: entitlement values (after ingest, on a schedule) and usage resets.

The only notifications module that reads the entitlements app. Everything here is idempotent: events carry
dedup keys, so evaluating the same entitlement twice never notifies twice.
"""

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.api.features import feature_to_api
from customers.api.serializers import customer_to_api
from customers.models import Customer
from entitlements.api.render import entitlement_to_api, subject_key_of, value_to_api
from entitlements.models import Entitlement, EntitlementType, UsageReset
from entitlements.services import entitlement_value
from metering.event_store import event_store
from metering.selectors import customers_of_subjects
from notifications.models import EvaluationCursor, EventType, NotificationEvent, NotificationRule
from notifications.services.evaluation import EntitlementSnapshot, emit_entitlement_reset, evaluate_balance_thresholds
from openmeter_site.core.time import format_rfc3339

THRESHOLD_CURSOR = "balance_thresholds"
RESET_LOOKBACK = dt.timedelta(hours=1)
ZERO = Decimal(0)


def _subject(key: str, customer: Customer) -> dict:
    """The spec's `Subject` for the payload; subjects are customers' usage-attribution keys here."""
    return {
        "id": customer.pk,
        "key": key,
        "displayName": customer.name,
        "createdAt": format_rfc3339(customer.created_at),
        "updatedAt": format_rfc3339(customer.updated_at),
    }


def entitlement_snapshot(*, entitlement: Entitlement, at: dt.datetime | None = None) -> EntitlementSnapshot | None:
    """The value of a metered entitlement, with the payload objects rendered as the API renders them."""
    if entitlement.type != EntitlementType.METERED:
        return None
    now = at or timezone.now()
    value = entitlement_value(entitlement=entitlement, at=now)
    if value.period_start is None or value.usage is None or value.balance is None:
        return None
    subject_key = subject_key_of(entitlement)
    return EntitlementSnapshot(
        entitlement_id=entitlement.pk,
        feature_id=entitlement.feature_id,
        feature_key=entitlement.feature_key,
        subject_key=subject_key,
        usage_period_start=value.period_start,
        balance=value.balance,
        usage=value.usage,
        total_available_grant_amount=value.total_available_grant_amount or ZERO,
        data={
            "entitlement": entitlement_to_api(entitlement, v2=False, at=now),
            "feature": feature_to_api(entitlement.feature),
            "subject": _subject(subject_key, entitlement.customer),
            "customer": customer_to_api(entitlement.customer),
            "value": value_to_api(value, v2=False),
        },
    )


def _live_rules_exist(event_type: str) -> bool:
    return NotificationRule.objects.filter(type=event_type, deleted_at__isnull=True, disabled=False).exists()


def metered_entitlements_qs(*, at: dt.datetime) -> QuerySet[Entitlement]:
    return (
        Entitlement.objects.filter(type=EntitlementType.METERED, deleted_at__isnull=True, active_from__lte=at)
        .filter(Q(active_to__isnull=True) | Q(active_to__gt=at))
        .select_related("customer", "feature__meter")
        .prefetch_related("customer__subjects")
    )


def thresholds_evaluate(*, entitlements: Iterable[Entitlement], at: dt.datetime | None = None) -> list[NotificationEvent]:
    now = at or timezone.now()
    events: list[NotificationEvent] = []
    for entitlement in entitlements:
        snapshot = entitlement_snapshot(entitlement=entitlement, at=now)
        if snapshot is not None:
            events += evaluate_balance_thresholds(snapshot=snapshot, at=now)
    return events


def thresholds_evaluate_new_usage(*, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """After ingest: evaluate the entitlements of the subjects that got events since the last run (the event
    store may hand back subjects seen before: re-evaluating is harmless, events carry dedup keys).

    One run at a time (the cursor row is locked with skip_locked; a concurrent run returns at once, as the
    running one will see the same events or its successor will).
    """
    now = at or timezone.now()
    EvaluationCursor.objects.get_or_create(name=THRESHOLD_CURSOR)
    with transaction.atomic():
        cursor = EvaluationCursor.objects.select_for_update(skip_locked=True).filter(name=THRESHOLD_CURSOR).first()
        if cursor is None:
            return []
        events: list[NotificationEvent] = []
        if _live_rules_exist(EventType.BALANCE_THRESHOLD):
            subjects, position = event_store().subjects_since(cursor.position or None)
            customer_ids = set(customers_of_subjects(subjects).values())
            entitlements = metered_entitlements_qs(at=now).filter(customer_id__in=customer_ids)
            events = thresholds_evaluate(entitlements=entitlements.order_by("pk"), at=now)
        else:
            position = event_store().stream_position()
        cursor.position = position
        cursor.save(update_fields=["position", "updated_at"])
    return events


def thresholds_evaluate_all(*, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """Periodic sweep over every active metered entitlement (usage that arrived by another path, time passing)."""
    if not _live_rules_exist(EventType.BALANCE_THRESHOLD):
        return []
    now = at or timezone.now()
    return thresholds_evaluate(entitlements=metered_entitlements_qs(at=now).order_by("pk").iterator(chunk_size=200), at=now)


def reset_emit(*, reset: UsageReset, at: dt.datetime | None = None) -> list[NotificationEvent]:
    snapshot = entitlement_snapshot(entitlement=reset.entitlement, at=at)
    if snapshot is None:
        return []
    snapshot = EntitlementSnapshot(**{**snapshot.__dict__, "usage_period_start": reset.reset_at})
    return emit_entitlement_reset(snapshot=snapshot, at=at)


def resets_emit_recent(*, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """Notify the usage resets (manual or automatic) recorded in the last hour; each once (dedup key)."""
    if not _live_rules_exist(EventType.ENTITLEMENT_RESET):
        return []
    now = at or timezone.now()
    resets = (
        UsageReset.objects.filter(created_at__gte=now - RESET_LOOKBACK, reset_at__lte=now)
        .select_related("entitlement__customer", "entitlement__feature__meter")
        .order_by("reset_at", "pk")
    )
    events: list[NotificationEvent] = []
    for reset in resets:
        events += reset_emit(reset=reset, at=now)
    return events
