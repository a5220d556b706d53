"""Out: model → the spec's JSON (camelCase, Numeric strings, RFC 3339)."""

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from billing.models import App, BillingProfile, Invoice, InvoiceLine
from billing.plugins import app_to_api
from billing.services import state
from billing.services.pricing import TOTAL_FIELDS
from billing.services.profiles import OverrideDetails
from customers.api.serializers import customer_to_api
from openmeter_site.api.fields import decimal_to_str
from openmeter_site.core.time import format_rfc3339

TOTALS_WIRE = {
    "amount": "amount", "charges_total": "chargesTotal", "discounts_total": "discountsTotal",
    "credits_total": "creditsTotal", "taxes_inclusive_total": "taxesInclusiveTotal",
    "taxes_exclusive_total": "taxesExclusiveTotal", "taxes_total": "taxesTotal", "total": "total",
}


def _num(value: Decimal | None) -> str | None:
    return None if value is None else decimal_to_str(value)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def totals_to_api(obj: Invoice | InvoiceLine) -> dict[str, str]:
    return {TOTALS_WIRE[f]: decimal_to_str(getattr(obj, f)) for f in TOTAL_FIELDS}


def apps_to_api(tax: App, invoicing: App, payment: App, *, expand: bool) -> dict[str, Any]:
    if expand:
        return {"tax": app_to_api(tax), "invoicing": app_to_api(invoicing), "payment": app_to_api(payment)}
    return {"tax": {"id": tax.pk}, "invoicing": {"id": invoicing.pk}, "payment": {"id": payment.pk}}


def profile_to_api(p: BillingProfile, *, expand_apps: bool = False) -> dict[str, Any]:
    return _drop_none({
        "id": p.pk,
        "name": p.name,
        "description": p.description,
        "metadata": p.metadata or None,
        "createdAt": format_rfc3339(p.created_at),
        "updatedAt": format_rfc3339(p.updated_at),
        "deletedAt": format_rfc3339(p.deleted_at),
        "supplier": p.supplier,
        "workflow": p.workflow,
        "apps": apps_to_api(p.tax_app, p.invoicing_app, p.payment_app, expand=expand_apps),
        "default": p.is_default,
    })


def override_to_api(d: OverrideDetails, *, expand: Iterable[str] = ()) -> dict[str, Any]:
    expand = set(expand)
    out: dict[str, Any] = {
        "baseBillingProfileId": d.profile.pk,
        "customerProfile": {
            "supplier": d.profile.supplier,
            "workflow": d.profile.workflow,
            "apps": apps_to_api(d.profile.tax_app, d.profile.invoicing_app, d.profile.payment_app,
                                expand="apps" in expand),
        },
    }
    if d.override is not None:
        out["customerOverride"] = _drop_none({
            "createdAt": format_rfc3339(d.override.created_at),
            "updatedAt": format_rfc3339(d.override.updated_at),
            "billingProfileId": d.override.billing_profile_id,
            "customerId": d.customer.pk,
        })
    if "customer" in expand:
        out["customer"] = customer_to_api(d.customer)
    return out


def _period(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, str | None] | None:
    if start is None or end is None:
        return None
    return {"from": format_rfc3339(start), "to": format_rfc3339(end)}


def _reason(kind: str, rate_card: Mapping[str, Any] | None) -> dict[str, Any]:
    """`BillingDiscountReason`; a rate card discount names its percentage or quantity and its correlation id."""
    if kind == "ratecard_percentage" and (pct := (rate_card or {}).get("percentage")):
        return {"type": kind, "percentage": Decimal(str(pct["percentage"])), "correlationId": pct.get("correlationId")}
    if kind == "ratecard_usage" and (usage := (rate_card or {}).get("usage")):
        return {"type": kind, "quantity": usage["quantity"], "correlationId": usage.get("correlationId")}
    return {"type": kind}


def _amount_discounts(c: InvoiceLine, rate_card: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A detailed line's `discounts.amount` (percentage and maximum spend discounts of that charge)."""
    amount = [
        {"id": d.get("id") or c.pk, "reason": _drop_none(_reason(d["reason"], rate_card)),
         "amount": _num(Decimal(d["amount"])), "description": d.get("description"),
         "createdAt": format_rfc3339(c.created_at), "updatedAt": format_rfc3339(c.updated_at)}
        for d in c.amount_discounts or ()
    ]
    return {"amount": [_drop_none(d) for d in amount]} if amount else None


def _usage_discounts(line: InvoiceLine) -> dict[str, Any] | None:
    """A line's `discounts`: as upstream, only its usage discount (free units taken off its quantity); amount
    discounts are on the detailed lines that carry them."""
    usage = [
        _drop_none({"id": d["id"], "reason": _drop_none(_reason("ratecard_usage", line.rate_card_discounts)),
                    "quantity": d["quantity"], "preLinePeriodQuantity": d.get("preLinePeriodQuantity"),
                    "createdAt": d["createdAt"], "updatedAt": format_rfc3339(line.updated_at)})
        for d in line.usage_discounts or ()
    ]
    return {"usage": usage} if usage else None


def detailed_line_to_api(c: InvoiceLine, parent: InvoiceLine) -> dict[str, Any]:
    tax_config = parent.tax_config
    return _drop_none({
        "id": c.pk, "name": c.name, "type": "flat_fee", "managedBy": "system", "status": c.status,
        "currency": c.currency, "period": _period(c.period_start, c.period_end),
        "invoiceAt": format_rfc3339(parent.invoice_at), "invoice": {"id": c.invoice_id},
        "perUnitAmount": _num(c.per_unit_amount), "quantity": _num(c.quantity), "paymentTerm": c.payment_term,
        "category": c.category, "taxConfig": tax_config,
        "rateCard": _drop_none({
            "price": {"type": "flat", "amount": _num(c.per_unit_amount), "paymentTerm": c.payment_term},
            "quantity": _num(c.quantity), "taxConfig": tax_config}),
        "discounts": _amount_discounts(c, parent.rate_card_discounts),
        "totals": totals_to_api(c), "createdAt": format_rfc3339(c.created_at),
        "updatedAt": format_rfc3339(c.updated_at), "deletedAt": format_rfc3339(c.deleted_at),
    })


def _rate_card_discounts(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """`BillingDiscounts`: the percentage is a JSON number (stored as text, rendered as an exact Decimal)."""
    if not stored:
        return None
    out = dict(stored)
    if out.get("percentage"):
        out["percentage"] = {**out["percentage"], "percentage": Decimal(str(out["percentage"]["percentage"]))}
    return out


def line_to_api(line: InvoiceLine, children: Sequence[InvoiceLine], invoice: Invoice | None = None) -> dict[str, Any]:
    subscription = None
    if line.subscription_id:
        subscription = _drop_none({
            "subscription": {"id": line.subscription_id}, "phase": {"id": line.subscription_phase_id},
            "item": {"id": line.subscription_item_id},
            "billingPeriod": _period(line.subscription_billing_period_start, line.subscription_billing_period_end),
        })
    return _drop_none({
        "id": line.pk, "name": line.name, "description": line.description, "metadata": line.metadata or None,
        "type": "usage_based", "managedBy": line.managed_by, "status": line.status,
        "currency": line.currency, "period": _period(line.period_start, line.period_end),
        "invoiceAt": format_rfc3339(line.invoice_at),
        "invoice": {"id": line.invoice_id, "number": invoice.number} if invoice else {"id": line.invoice_id},
        "price": line.price, "featureKey": line.feature_key, "taxConfig": line.tax_config,
        "rateCard": _drop_none({"price": line.price, "featureKey": line.feature_key, "taxConfig": line.tax_config,
                                "discounts": _rate_card_discounts(line.rate_card_discounts)}),
        "quantity": _num(line.quantity), "meteredQuantity": _num(line.metered_quantity),
        "preLinePeriodQuantity": _num(line.pre_line_period_quantity),
        "meteredPreLinePeriodQuantity": _num(line.metered_pre_line_period_quantity),
        "discounts": _usage_discounts(line),
        "children": [detailed_line_to_api(c, line) for c in children],
        "totals": totals_to_api(line),
        "subscription": subscription,
        "externalIds": line.external_ids or None,
        "createdAt": format_rfc3339(line.created_at), "updatedAt": format_rfc3339(line.updated_at),
        "deletedAt": format_rfc3339(line.deleted_at),
    })


def lines_to_api(invoice: Invoice, lines: Sequence[InvoiceLine]) -> list[dict[str, Any]]:
    """`lines` holds both top-level and detailed lines of the invoice (one query)."""
    children: dict[str, list[InvoiceLine]] = {}
    for line in lines:
        if line.parent_id:
            children.setdefault(line.parent_id, []).append(line)
    return [line_to_api(line, children.get(line.pk, []), invoice) for line in lines if line.parent_id is None]


def _payment_terms(inv: Invoice) -> dict[str, Any] | None:
    if inv.due_at is None:
        return None
    due = {"dueAt": format_rfc3339(inv.due_at), "amount": decimal_to_str(inv.total), "currency": inv.currency}
    return {"terms": {"type": "due_date", "dueAt": [due]}}


def _invoice_apps(inv: Invoice, expand: bool) -> dict[str, Any]:
    if expand:
        return apps_to_api(inv.tax_app, inv.invoicing_app, inv.payment_app, expand=True)
    return {"tax": {"id": inv.tax_app_id}, "invoicing": {"id": inv.invoicing_app_id}, "payment": {"id": inv.payment_app_id}}


def invoice_to_api(
    inv: Invoice, *, lines: Sequence[InvoiceLine] | None = None, expand_apps: bool = False
) -> dict[str, Any]:
    return _drop_none({
        "id": inv.pk,
        "type": inv.type,
        "number": inv.number,
        "currency": inv.currency,
        "description": inv.description,
        "metadata": inv.metadata or None,
        "supplier": inv.supplier,
        "customer": inv.customer_snapshot,
        "status": inv.status_prefix,
        "statusDetails": {
            "immutable": state.is_immutable(inv),
            "failed": state.is_failed(inv),
            "extendedStatus": inv.status,
            "availableActions": state.available_actions(inv),
        },
        "totals": totals_to_api(inv),
        "period": _period(inv.period_start, inv.period_end),
        "issuedAt": format_rfc3339(inv.issued_at),
        "draftUntil": format_rfc3339(inv.draft_until),
        "quantitySnapshotedAt": format_rfc3339(inv.quantity_snapshotted_at),
        "collectionAt": format_rfc3339(inv.collection_at),
        "dueAt": format_rfc3339(inv.due_at),
        "voidedAt": format_rfc3339(inv.voided_at),
        "sentToCustomerAt": format_rfc3339(inv.sent_to_customer_at),
        "workflow": {
            "apps": _invoice_apps(inv, expand_apps),
            "sourceBillingProfileId": inv.billing_profile_id,
            "workflow": inv.workflow,
        },
        "lines": lines_to_api(inv, lines) if lines is not None else None,
        "payment": _payment_terms(inv),
        "validationIssues": inv.validation_issues or [],
        "externalIds": inv.external_ids or None,
        "createdAt": format_rfc3339(inv.created_at),
        "updatedAt": format_rfc3339(inv.updated_at),
        "deletedAt": format_rfc3339(inv.deleted_at),
    })
