"""Entitlements, grants, values and history as the spec's JSON (V1 subject view and V2 customer view)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from entitlements import balance
from entitlements.balance import EntitlementValue, History
from entitlements.engine import interval_iso
from entitlements.models import Entitlement, EntitlementType, Grant
from openmeter_site.core.fields import normalized
from openmeter_site.core.time import format_rfc3339


def num(value: Decimal) -> Decimal:
    """A JSON number without trailing zeros (the renderer writes Decimals exactly)."""
    return normalized(value) if value != 0 else Decimal(0)


def _period(interval: str, anchor: dt.datetime) -> dict[str, Any]:
    return {"interval": interval, "anchor": format_rfc3339(anchor), "intervalISO": interval_iso(interval)}


def subject_key_of(entitlement: Entitlement) -> str:
    """V1's `subjectKey`: the customer's first usage-attribution subject, else its key."""
    subjects = [s.subject_key for s in entitlement.customer.subjects.all() if s.deleted_at is None]
    return subjects[0] if subjects else (entitlement.customer.key or entitlement.customer.pk)


def entitlement_to_api(entitlement: Entitlement, *, v2: bool, at: dt.datetime | None = None) -> dict[str, Any]:
    e = entitlement
    body: dict[str, Any] = {
        "id": e.pk,
        "type": e.type,
        "featureId": e.feature_id,
        "featureKey": e.feature_key,
        "metadata": e.metadata or {},
        "annotations": e.annotations or {},
        "activeFrom": format_rfc3339(e.active_from),
        "createdAt": format_rfc3339(e.created_at),
        "updatedAt": format_rfc3339(e.updated_at),
    }
    if v2:
        body["customerId"] = e.customer_id
        if e.customer.key:
            body["customerKey"] = e.customer.key
    else:
        body["subjectKey"] = subject_key_of(e)
    for name, value in (("activeTo", e.active_to), ("deletedAt", e.deleted_at)):
        if value is not None:
            body[name] = format_rfc3339(value)
    start = None
    if e.usage_period_interval and e.usage_period_anchor:
        body["usagePeriod"] = _period(e.usage_period_interval, e.usage_period_anchor)
        start, end = balance.current_period(entitlement=e, at=at or timezone.now())
        body["currentUsagePeriod"] = {"from": format_rfc3339(start), "to": format_rfc3339(end)}
    if e.type == EntitlementType.STATIC:
        body["config"] = e.config
    if e.type == EntitlementType.METERED and start is not None:
        body.update(_metered_fields(e, v2=v2, last_reset=start))
    return body


def _metered_fields(e: Entitlement, *, v2: bool, last_reset: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "isSoftLimit": e.is_soft_limit,
        "preserveOverageAtReset": e.preserve_overage_at_reset,
        "measureUsageFrom": format_rfc3339(e.measure_usage_from),
        "lastReset": format_rfc3339(last_reset),
    }
    if not v2:
        out["isUnlimited"] = False
    if e.issue_after_reset is not None:
        out["issueAfterReset"] = num(e.issue_after_reset)
        out["issueAfterResetPriority"] = e.issue_after_reset_priority
        if v2:
            out["issue"] = {"amount": num(e.issue_after_reset), "priority": e.issue_after_reset_priority}
    return out


def grant_to_api(grant: Grant, *, v2: bool) -> dict[str, Any]:
    g = grant
    body: dict[str, Any] = {
        "id": g.pk,
        "entitlementId": g.entitlement_id,
        "amount": num(g.amount),
        "priority": g.priority,
        "effectiveAt": format_rfc3339(g.effective_at),
        "minRolloverAmount": num(g.min_rollover_amount),
        "maxRolloverAmount": num(g.max_rollover_amount),
        "metadata": g.metadata or {},
        "createdAt": format_rfc3339(g.created_at),
        "updatedAt": format_rfc3339(g.updated_at),
    }
    if v2 or g.annotations:
        body["annotations"] = g.annotations or {}
    if g.expiration_duration:
        body["expiration"] = {"duration": g.expiration_duration, "count": g.expiration_count}
        body["expiresAt"] = format_rfc3339(g.expires_at)
    if g.recurrence_interval and g.recurrence_anchor:
        body["recurrence"] = _period(g.recurrence_interval, g.recurrence_anchor)
        nxt = _next_recurrence(g)
        if nxt is not None:
            body["nextRecurrence"] = format_rfc3339(nxt)
    for name, value in (("voidedAt", g.voided_at), ("deletedAt", g.deleted_at)):
        if value is not None:
            body[name] = format_rfc3339(value)
    return body


def _next_recurrence(g: Grant) -> dt.datetime | None:
    from entitlements.engine import Recurrence

    assert g.recurrence_interval and g.recurrence_anchor
    rec = Recurrence(g.recurrence_interval, g.recurrence_anchor)
    now = max(timezone.now(), g.effective_at)
    nxt = rec.nth(rec.index_at(now) + 1)
    ends = [t for t in (g.expires_at, g.voided_at) if t is not None]
    return None if ends and nxt >= min(ends) else nxt


def value_to_api(v: EntitlementValue, *, v2: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"hasAccess": v.has_access}
    if v.type == EntitlementType.METERED:
        assert v.balance is not None and v.usage is not None and v.overage is not None
        body.update(
            balance=num(v.balance),
            usage=num(v.usage),
            overage=num(v.overage),
            totalAvailableGrantAmount=num(v.total_available_grant_amount or Decimal(0)),
        )
        if v2:
            body["grantBalances"] = {k: num(b) for k, b in v.grant_balances.items()}
    if v.type == EntitlementType.STATIC and v.config is not None:
        body["config"] = v.config
    return body


def history_to_api(h: History) -> dict[str, Any]:
    return {
        "windowedHistory": [
            {
                "period": {"from": format_rfc3339(w.start), "to": format_rfc3339(w.end)},
                "usage": num(w.usage),
                "balanceAtStart": num(w.balance_at_start),
            }
            for w in h.windows
        ],
        "burndownHistory": [
            {
                "period": {"from": format_rfc3339(s.start), "to": format_rfc3339(s.end)},
                "usage": num(s.usage),
                "overage": num(s.overage),
                "balanceAtStart": num(s.balance_at_start),
                "grantBalancesAtStart": {k: num(b) for k, b in s.balances_at_start.items()},
                "balanceAtEnd": num(s.balance_at_end),
                "grantBalancesAtEnd": {k: num(b) for k, b in s.balances_at_end.items()},
                "grantUsages": [{"grantId": k, "usage": num(u)} for k, u in s.grant_usages.items()],
            }
            for s in h.segments
        ],
    }
