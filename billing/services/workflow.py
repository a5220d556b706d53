"""The billing workflow document (spec `BillingWorkflow`) with every default filled in, and its durations.

`workflow_validate` is the one gate for workflow settings: the API (profiles and invoice edits) and the back office
call it, and actions check what is stored with it, so an invalid setting is a 400 naming the field, never a 500.
"""

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import isodate

from catalog.periods import InvalidDuration, billing_period_containing, parse_duration
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339, parse_rfc3339

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


class WorkflowInvalid(InvalidInput):
    """Workflow settings that break a rule; `extensions.validationErrors` lists each field."""


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration such as P30D or PT1H")
    try:
        duration = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(f"not an ISO 8601 duration: {value!r}") from exc
    if value.startswith("-") or (isinstance(duration, dt.timedelta) and duration < dt.timedelta(0)):
        raise ValueError("must not be negative")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return value


# the spec's RecurringPeriodIntervalEnum, as ISO 8601 durations
INTERVAL_NAMES = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}


def recurrence_interval(interval: str) -> str:
    return INTERVAL_NAMES.get(interval.upper(), interval)


def _alignment(value: Any) -> dict[str, Any]:
    """`subscription`, or `anchored` on a recurring period {interval: DAY…YEAR or a duration, anchor: RFC 3339}."""
    alignment = _object(value)
    kind = _one_of("subscription", "anchored")(alignment.get("type"))
    if kind == "subscription":
        return {"type": kind}
    recurring = alignment.get("recurringPeriod")
    if not isinstance(recurring, dict):
        raise ValueError("recurringPeriod is required for anchored alignment")
    interval = recurring.get("interval")
    try:
        if not isinstance(interval, str) or parse_duration(recurrence_interval(interval)).is_zero:
            raise ValueError("recurringPeriod.interval must be DAY, WEEK, MONTH, YEAR or a non-zero ISO 8601 duration")
    except InvalidDuration as exc:
        raise ValueError(f"recurringPeriod.interval: {exc}") from exc
    try:
        anchor = parse_rfc3339(str(recurring.get("anchor") or ""), "recurringPeriod.anchor")
    except InvalidInput as exc:
        raise ValueError(exc.detail) from exc
    return {"type": kind, "recurringPeriod": {"interval": interval, "anchor": format_rfc3339(anchor)}}


SETTINGS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "collection": {"alignment": _alignment, "interval": _duration},
    "invoicing": {
        "autoAdvance": _boolean, "draftPeriod": _duration, "dueAfter": _duration, "progressiveBilling": _boolean,
        "subscriptionEndProrationMode": _one_of("bill_full_period", "bill_actual_period"),
        "defaultTaxConfig": _object,
    },
    "payment": {"collectionMethod": _one_of("charge_automatically", "send_invoice")},
    "tax": {"enabled": _boolean, "enforced": _boolean},
}


def workflow_validate(given: Any, *, field: str = "workflow") -> dict[str, Any]:
    """A `BillingWorkflow` (any part of it) → the complete document with every default filled in; a
    `WorkflowInvalid` naming each bad setting (e.g. `workflow.invoicing.dueAfter`) otherwise. Settings the spec does
    not have are dropped, as the API's parser drops unknown fields; a null keeps the default."""
    out = copy.deepcopy(DEFAULT_WORKFLOW)
    errors: list[dict[str, str]] = []
    if given is not None and not isinstance(given, dict):
        errors.append({"field": field, "code": "invalid", "message": "must be an object"})
    for section, checks in SETTINGS.items():
        values = (given or {}).get(section) if isinstance(given, dict) else None
        if values is None:
            continue
        if not isinstance(values, dict):
            errors.append({"field": f"{field}.{section}", "code": "invalid", "message": "must be an object"})
            continue
        for name, value in values.items():
            if name not in checks or value is None:
                continue
            try:
                out[section][name] = checks[name](value)
            except ValueError as exc:
                errors.append({"field": f"{field}.{section}.{name}", "code": "invalid", "message": str(exc)})
    if errors:
        raise WorkflowInvalid("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                              extensions={"validationErrors": errors})
    return out


def workflow_with_defaults(given: dict[str, Any] | None) -> dict[str, Any]:
    return workflow_validate(given)


def stored_workflow_check(workflow: Any, *, owner: str) -> None:
    """Stored settings are checked before an action uses them: a 400 naming the setting, never a 500 (settings
    written before every way in was validated, or by hand)."""
    try:
        workflow_validate(workflow)
    except WorkflowInvalid as exc:
        raise WorkflowInvalid(f"{owner} has invalid workflow settings, correct them first: {exc.detail}",
                              extensions=exc.extensions) from exc


def add_duration(at: dt.datetime, iso: str) -> dt.datetime:
    return at + isodate.parse_duration(iso)


def auto_advance(workflow: Any) -> bool:
    """Read even from a malformed document (status details are shown for every invoice): the default otherwise."""
    invoicing = workflow.get("invoicing") if isinstance(workflow, dict) else None
    value = invoicing.get("autoAdvance") if isinstance(invoicing, dict) else None
    return value if isinstance(value, bool) else DEFAULT_WORKFLOW["invoicing"]["autoAdvance"]


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
