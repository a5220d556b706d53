"""Which rules fire: balance thresholds and resets (from entitlement snapshots) and invoice changes.

The entitlement and billing apps call these (through the Celery tasks in `notifications.tasks`); they pass
the data already rendered as the API renders it, so a payload is exactly what the API would answer.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from notifications.models import EventType, NotificationChannel, NotificationEvent, NotificationRule, ThresholdType
from notifications.payloads import number_str
from notifications.services.events import EventSubject, event_create
from notifications.services.rules import Threshold, rule_thresholds
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class EntitlementSnapshot:
    """A metered entitlement's value in its current usage period.

    `data` holds the payload's rendered objects: `entitlement` (EntitlementMetered), `feature`, `subject`,
    `value` (EntitlementValue) and optionally `customer`.
    """

    entitlement_id: str
    feature_id: str
    feature_key: str
    subject_key: str
    usage_period_start: dt.datetime
    balance: Decimal
    usage: Decimal
    total_available_grant_amount: Decimal
    data: Mapping[str, Any]


def threshold_crossed(threshold: Threshold, snapshot: EntitlementSnapshot) -> bool:
    """usage_value: usage ≥ value; usage_percentage: usage ≥ value% of the granted total; balance_value: balance ≤ value."""
    kind = threshold.kind
    if kind == ThresholdType.USAGE_VALUE:
        return snapshot.usage >= threshold.value
    if kind == ThresholdType.USAGE_PERCENTAGE:
        total = snapshot.total_available_grant_amount
        return total > 0 and snapshot.usage * HUNDRED >= threshold.value * total
    if kind == ThresholdType.BALANCE_VALUE:
        return snapshot.balance <= threshold.value
    raise InvalidInput(f"unknown threshold type {threshold.type!r}")


def _live_rules(event_type: str) -> QuerySet[NotificationRule]:
    """Enabled rules with at least one enabled channel: a rule whose channels are all disabled fires nothing."""
    live_channel = NotificationChannel.objects.filter(rules=OuterRef("pk"), disabled=False, deleted_at__isnull=True)
    return NotificationRule.objects.filter(type=event_type, deleted_at__isnull=True, disabled=False).filter(
        Exists(live_channel)
    )


def _rules_for_feature(event_type: str, feature_id: str) -> QuerySet[NotificationRule]:
    """Rules without a feature filter apply to every feature."""
    return _live_rules(event_type).filter(Q(features__isnull=True) | Q(features__id=feature_id)).distinct()


def _about(snapshot: EntitlementSnapshot) -> EventSubject:
    return EventSubject(
        subject_key=snapshot.subject_key,
        feature_id=snapshot.feature_id,
        feature_key=snapshot.feature_key,
        entitlement_id=snapshot.entitlement_id,
    )


def evaluate_balance_thresholds(*, snapshot: EntitlementSnapshot, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """Fire every crossed threshold of every matching rule, each once per usage period (unique dedup key)."""
    events: list[NotificationEvent] = []
    period = format_rfc3339(snapshot.usage_period_start)
    for rule in _rules_for_feature(EventType.BALANCE_THRESHOLD, snapshot.feature_id).order_by("id"):
        for threshold in rule_thresholds(rule):
            if not threshold_crossed(threshold, snapshot):
                continue
            data = dict(snapshot.data) | {"threshold": {"type": threshold.type, "value": threshold.value}}
            key = f"threshold:{snapshot.entitlement_id}:{period}:{threshold.kind}:{number_str(threshold.value)}"
            event = event_create(rule=rule, data=data, about=_about(snapshot), dedup_key=key, at=at)
            if event is not None:
                events.append(event)
    return events


def emit_entitlement_reset(*, snapshot: EntitlementSnapshot, at: dt.datetime | None = None) -> list[NotificationEvent]:
    """One event per matching reset rule per new usage period (`snapshot.usage_period_start` = the reset time)."""
    events: list[NotificationEvent] = []
    key = f"reset:{snapshot.entitlement_id}:{format_rfc3339(snapshot.usage_period_start)}"
    for rule in _rules_for_feature(EventType.ENTITLEMENT_RESET, snapshot.feature_id).order_by("id"):
        event = event_create(rule=rule, data=dict(snapshot.data), about=_about(snapshot), dedup_key=key, at=at)
        if event is not None:
            events.append(event)
    return events


def emit_invoice_event(
    *, invoice_payload: Mapping[str, Any], event_type: str, dedup_key: str | None = None, at: dt.datetime | None = None
) -> list[NotificationEvent]:
    """`invoice.created` / `invoice.updated` for a standard invoice, rendered as the API renders `Invoice`.

    Gathering invoices never notify. `invoice.created` fires once per invoice; pass `dedup_key` (e.g. the
    invoice id and its new status) to make an `invoice.updated` emission idempotent too.
    """
    if event_type not in (EventType.INVOICE_CREATED, EventType.INVOICE_UPDATED):
        raise InvalidInput(f"event_type: not an invoice event type: {event_type!r}")
    if invoice_payload.get("status") == "gathering" or invoice_payload.get("type") == "gathering":
        return []
    invoice_id = str(invoice_payload["id"])
    if event_type == EventType.INVOICE_CREATED and dedup_key is None:
        dedup_key = f"invoice.created:{invoice_id}"
    customer = invoice_payload.get("customer") or {}
    subject_keys = (customer.get("usageAttribution") or {}).get("subjectKeys") or [None]
    about = EventSubject(invoice_id=invoice_id, subject_key=subject_keys[0])
    events: list[NotificationEvent] = []
    for rule in _live_rules(event_type).order_by("id"):
        event = event_create(rule=rule, data=dict(invoice_payload), about=about, dedup_key=dedup_key, at=at)
        if event is not None:
            events.append(event)
    return events
