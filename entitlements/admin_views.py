"""Read models for the back office (used by the customers and entitlements admin pages)."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from catalog.features import feature_usage_filters
from catalog.models import Feature
from customers.models import Customer
from entitlements import balance
from entitlements.models import Entitlement, EntitlementType
from metering.postgres.usage import meter_usage_ranges


@dataclass(frozen=True)
class UsageRow:
    feature_key: str
    period_start: dt.datetime
    period_end: dt.datetime
    usage: Decimal
    balance: Decimal | None
    overage: Decimal | None
    has_access: bool | None


def customer_usage_rows(*, customer: Customer, at: dt.datetime | None = None) -> list[UsageRow]:
    """Each metered feature's usage in the current period: the entitlement's usage period when the customer
    has a metered entitlement for it, else the current calendar month (UTC)."""
    at = at or timezone.now()
    entitled = {
        e.feature_key: e
        for e in Entitlement.objects.filter(customer=customer, type=EntitlementType.METERED, deleted_at__isnull=True)
        .select_related("customer", "feature__meter")
    }
    month_start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + dt.timedelta(days=32)).replace(day=1)
    rows = []
    subjects = customer.subject_keys()
    for feature in Feature.objects.filter(meter__isnull=False, archived_at__isnull=True).select_related("meter"):
        entitlement = entitled.get(feature.key)
        if entitlement is not None:
            v = balance.value(entitlement=entitlement, at=at)
            rows.append(UsageRow(feature.key, v.period_start or month_start, v.period_end or month_end,
                                 v.usage or Decimal(0), v.balance, v.overage, v.has_access))
            continue
        assert feature.meter is not None
        filters = feature_usage_filters(feature)
        month = (month_start, at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1))
        [used] = meter_usage_ranges(meter=feature.meter, subjects=subjects, ranges=[month],
                                    group_filters=filters.group_filters, advanced_filters=filters.advanced_filters)
        rows.append(UsageRow(feature.key, month_start, month_end, used, None, None, None))
    return rows
