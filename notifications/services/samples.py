"""Test-send (`POST /api/v1/notification/rules/{ruleId}/test`): a real event with made-up data of the rule's type."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from notifications.models import EventType, NotificationEvent
from notifications.services.events import EventSubject, event_create
from notifications.services.rules import rule_get, rule_thresholds
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.ids import new_id

TEST_ANNOTATION = "notification.event.test"


def _entitlement_data(now: dt.datetime) -> dict[str, Any]:
    period_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    period_end = (period_start + dt.timedelta(days=32)).replace(day=1)
    feature_id, entitlement_id = new_id(), new_id()
    period = {"from": period_start, "to": period_end}
    return {
        "entitlement": {
            "type": "metered", "id": entitlement_id, "createdAt": now, "updatedAt": now, "activeFrom": period_start,
            "subjectKey": "test_subject", "featureKey": "test_feature", "featureId": feature_id,
            "isSoftLimit": False, "isUnlimited": False, "issueAfterReset": Decimal(0),
            "lastReset": period_start, "measureUsageFrom": period_start, "currentUsagePeriod": period,
            "usagePeriod": {"interval": "MONTH", "intervalISO": "P1M", "anchor": period_start},
        },
        "feature": {"id": feature_id, "key": "test_feature", "name": "Test feature", "createdAt": now, "updatedAt": now},
        "subject": {"id": new_id(), "key": "test_subject", "createdAt": now, "updatedAt": now},
        "value": {
            "hasAccess": True, "balance": Decimal(25), "usage": Decimal(75), "overage": Decimal(0),
            "totalAvailableGrantAmount": Decimal(100),
        },
    }


def _invoice_data(now: dt.datetime) -> dict[str, Any]:
    zero = "0"
    return {
        "id": new_id(), "type": "standard", "number": "TEST-INV-1", "currency": "USD", "status": "draft",
        "createdAt": now, "updatedAt": now,
        "statusDetails": {"immutable": False, "failed": False, "extendedStatus": "draft.created", "availableActions": {}},
        "supplier": {"name": "Test supplier"},
        "customer": {"id": new_id(), "name": "Test customer", "usageAttribution": {"subjectKeys": ["test_subject"]}},
        "totals": {
            "amount": "100", "chargesTotal": zero, "discountsTotal": zero, "creditsTotal": zero,
            "taxesInclusiveTotal": zero, "taxesExclusiveTotal": zero, "taxesTotal": zero, "total": "100",
        },
        "workflow": {"workflow": {}, "sourceBillingProfileId": new_id()},
        "lines": [],
    }


def rule_test(*, rule_id: str, at: dt.datetime | None = None) -> NotificationEvent:
    """Create and send an event with test data to the rule's enabled channels, even if the rule is disabled."""
    rule = rule_get(rule_id=rule_id)
    if rule.deleted_at is not None:
        raise InvalidInput(f"notification rule {rule_id} is deleted")
    now = at or timezone.now()
    if rule.type in (EventType.INVOICE_CREATED, EventType.INVOICE_UPDATED):
        data = _invoice_data(now)
        about = EventSubject(invoice_id=data["id"], annotations={TEST_ANNOTATION: True})
    else:
        data = _entitlement_data(now)
        if rule.type == EventType.BALANCE_THRESHOLD:
            threshold = rule_thresholds(rule)[0]
            data["threshold"] = {"type": threshold.type, "value": threshold.value}
        about = EventSubject(
            subject_key="test_subject", feature_key="test_feature", feature_id=data["feature"]["id"],
            entitlement_id=data["entitlement"]["id"], annotations={TEST_ANNOTATION: True},
        )
    event = event_create(rule=rule, data=data, about=about, at=now)
    if event is None:  # only events with a dedup key can be skipped
        raise RuntimeError("test event was not created")
    return event
