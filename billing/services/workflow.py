"""The billing workflow document (spec `BillingWorkflow`) with every default filled in, and its durations."""

import copy
import datetime as dt
from typing import Any

import isodate

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
