"""The billing workflow document (spec `BillingWorkflow`) with every default filled in, and its durations."""

import copy
import datetime as dt
from typing import Any

import isodate

from catalog.periods import billing_period_containing

DEFAULT_WORKFLOW: dict[str, Any] = {
    "collection": {"alignment": {"type": "subscription"}, "interval": "PT1H"},
    "invoicing": {
        "autoAdvance": True,
        "draftPeriod": "P0D",
        "dueAfter": "P30D",
        "progressiveBilling": True,
        "subscriptionEndProrationMode": "bill_actual_period",
    },
    "payment": {"collectionMethod": "charge_automatically"},
    "tax": {"enabled": True, "enforced": False},
}


def workflow_with_defaults(given: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(DEFAULT_WORKFLOW)
    for section, values in (given or {}).items():
        if isinstance(values, dict) and section in out:
            out[section].update({k: v for k, v in values.items() if v is not None})
    return out


def add_duration(at: dt.datetime, iso: str) -> dt.datetime:
    return at + isodate.parse_duration(iso)


def auto_advance(workflow: dict[str, Any]) -> bool:
    return bool(workflow["invoicing"]["autoAdvance"])


def progressive_billing(workflow: dict[str, Any]) -> bool:
    return bool(workflow["invoicing"]["progressiveBilling"])


# the spec's RecurringPeriodIntervalEnum, as ISO 8601 durations
INTERVAL_NAMES = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}


def recurrence_interval(interval: str) -> str:
    return INTERVAL_NAMES.get(interval.upper(), interval)


def next_collection_at(workflow: dict[str, Any], due_at: dt.datetime) -> dt.datetime:
    """When a gathering invoice whose earliest line is due at `due_at` is collected. Subscription alignment: once
    the collection interval (grace for late events) has passed. Anchored alignment: at the first recurrence of the
    anchor at or after `due_at` (OpenMeter's gathering invoice calculator); each draft then still waits for the
    interval after its last usage line before its quantities are final."""
    collection = workflow["collection"]
    alignment = collection.get("alignment") or {}
    if alignment.get("type") != "anchored":
        return add_duration(due_at, collection["interval"])
    recurring = alignment["recurringPeriod"]
    anchor = dt.datetime.fromisoformat(recurring["anchor"])
    period = billing_period_containing(anchor, recurrence_interval(recurring["interval"]), due_at)
    return due_at if period.start == due_at else period.end
