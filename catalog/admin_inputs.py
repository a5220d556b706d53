"""The one place where the back office's typed catalog forms meet the catalog services.

Forms give Python values (Decimals, durations, feature keys); the services take the API's inputs (today a rate
card is the normalised wire dict that `catalog.api.ratecards.validate_rate_card` returns, the API's own validator).
`rate_card_input` builds that input, `rate_card_initial` reads a stored rate card back into form values, and
`service_errors` turns a rejection (the API validator's or a service's) into errors on the form's fields. When the
services take typed inputs, only this module changes.
"""

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from catalog.api.ratecards import validate_rate_card
from catalog.models import RateCard
from catalog.pricing_models import (
    BooleanTemplate,
    DynamicPrice,
    FlatPrice,
    MeteredTemplate,
    PackagePrice,
    StaticTemplate,
    TieredPrice,
    UnitPrice,
)
from catalog.services.ratecards import RateCardInput
from openmeter_site.core.errors import DomainError

# a service's field path (relative to the rate card) → the form field that shows its error; first match wins
RATE_CARD_FIELDS = (
    ("price.tiers", "tiers"),
    ("price.amount", "amount"),
    ("price.paymentTerm", "payment_term"),
    ("price.quantityPerPackage", "quantity_per_package"),
    ("price.multiplier", "multiplier"),
    ("price.minimumAmount", "minimum_amount"),
    ("price.maximumAmount", "maximum_amount"),
    ("price", "price_model"),
    ("discounts.percentage", "discount_percentage"),
    ("discounts.usage", "free_quantity"),
    ("discounts", "discount_percentage"),
    ("entitlementTemplate.usagePeriod", "usage_period"),
    ("entitlementTemplate.issueAfterResetPriority", "issue_after_reset_priority"),
    ("entitlementTemplate.issueAfterReset", "issue_after_reset"),
    ("entitlementTemplate.config", "static_config"),
    ("entitlementTemplate", "entitlement"),
    ("taxConfig.stripe", "stripe_tax_code"),
    ("taxConfig", "tax_behavior"),
    ("featureKey", "feature"),
    ("billingCadence", "billing_cadence"),
    ("key", "key"),
    ("name", "name"),
    ("type", "type"),
    ("description", "description"),
    ("metadata", "metadata"),
)
PHASE_FIELDS = (("key", "key"), ("name", "name"), ("duration", "duration"), ("description", "description"),
                ("metadata", "metadata"))
PLAN_FIELDS = (("billingCadence", "billing_cadence"), ("currency", "currency"), ("name", "name"), ("key", "key"),
               ("description", "description"), ("metadata", "metadata"))

TIERED_MODES = ("graduated", "volume")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _price(d: Mapping[str, Any]) -> dict[str, Any] | None:
    model = d.get("price_model")
    commitments = {"minimumAmount": _text(d.get("minimum_amount")), "maximumAmount": _text(d.get("maximum_amount"))}
    if not model:
        return None
    if model == "flat":
        return {"type": "flat", "amount": _text(d.get("amount")), "paymentTerm": d.get("payment_term") or "in_advance"}
    if model == "unit":
        return {"type": "unit", "amount": _text(d.get("amount")), **commitments}
    if model == "package":
        return {"type": "package", "amount": _text(d.get("amount")),
                "quantityPerPackage": _text(d.get("quantity_per_package")), **commitments}
    if model == "dynamic":
        return {"type": "dynamic", "multiplier": _text(d.get("multiplier") or Decimal(1)), **commitments}
    tiers = [
        {
            "upToAmount": _text(up_to),
            "unitPrice": None if unit is None else {"type": "unit", "amount": str(unit)},
            "flatPrice": None if flat is None else {"type": "flat", "amount": str(flat)},
        }
        for up_to, unit, flat in d.get("tiers") or []
    ]
    return {"type": "tiered", "mode": model, "tiers": tiers, **commitments}


def _discounts(d: Mapping[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if d.get("discount_percentage") is not None:
        out["percentage"] = {"percentage": str(d["discount_percentage"])}
    if d.get("free_quantity") is not None:
        out["usage"] = {"quantity": str(d["free_quantity"])}
    return out or None


def _template(d: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = d.get("entitlement")
    if not kind:
        return None
    if kind == "static":
        return {"type": "static", "config": d.get("static_config")}
    if kind == "boolean":
        return {"type": "boolean"}
    out: dict[str, Any] = {
        "type": "metered",
        "isSoftLimit": bool(d.get("is_soft_limit")),
        "preserveOverageAtReset": bool(d.get("preserve_overage_at_reset")),
        "issueAfterResetPriority": d.get("issue_after_reset_priority") or 1,
    }
    if d.get("issue_after_reset") is not None:
        out["issueAfterReset"] = str(d["issue_after_reset"])
    if d.get("usage_period"):
        out["usagePeriod"] = d["usage_period"]
    return out


def _tax(d: Mapping[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if d.get("tax_behavior"):
        out["behavior"] = d["tax_behavior"]
    if d.get("stripe_tax_code"):
        out["stripe"] = {"code": d["stripe_tax_code"]}
    return out or None


def rate_card_input(d: Mapping[str, Any]) -> RateCardInput:
    """A rate card form's cleaned values → the services' rate card input, checked by the API's validator (a
    `serializers.ValidationError` names the wire field; `service_errors` puts it on the form)."""
    return validate_rate_card({
        "type": d["type"],
        "key": d["key"],
        "name": d["name"],
        "description": d.get("description") or None,
        "metadata": d.get("metadata") or None,
        "featureKey": d.get("feature") or None,
        "billingCadence": d.get("billing_cadence") or None,
        "price": _price(d),
        "discounts": _discounts(d),
        "entitlementTemplate": _template(d),
        "taxConfig": _tax(d),
    })


def _price_initial(price: Any) -> dict[str, Any]:
    if price is None:
        return {"price_model": ""}
    if isinstance(price, FlatPrice):
        return {"price_model": "flat", "amount": price.amount, "payment_term": price.payment_term}
    out: dict[str, Any] = {"minimum_amount": price.minimum_amount, "maximum_amount": price.maximum_amount}
    if isinstance(price, UnitPrice):
        return {**out, "price_model": "unit", "amount": price.amount}
    if isinstance(price, PackagePrice):
        return {**out, "price_model": "package", "amount": price.amount,
                "quantity_per_package": price.quantity_per_package}
    if isinstance(price, DynamicPrice):
        return {**out, "price_model": "dynamic", "multiplier": price.multiplier}
    assert isinstance(price, TieredPrice)
    tiers = [(t.up_to_amount, t.unit_amount, t.flat_amount) for t in price.tiers]
    return {**out, "price_model": price.mode, "tiers": tiers}


def _template_initial(template: Any) -> dict[str, Any]:
    if isinstance(template, MeteredTemplate):
        return {
            "entitlement": "metered", "usage_period": template.usage_period, "is_soft_limit": template.is_soft_limit,
            "issue_after_reset": template.issue_after_reset,
            "issue_after_reset_priority": template.issue_after_reset_priority,
            "preserve_overage_at_reset": template.preserve_overage_at_reset,
        }
    if isinstance(template, StaticTemplate):
        return {"entitlement": "static", "static_config": json.loads(template.config)}
    if isinstance(template, BooleanTemplate):
        return {"entitlement": "boolean"}
    return {"entitlement": ""}


def rate_card_initial(card: RateCard) -> dict[str, Any]:
    """A stored rate card as the rate card form's values."""
    discounts, tax = card.discounts, card.tax_config or {}
    return {
        "type": card.type,
        "key": card.key,
        "name": card.name,
        "description": card.description,
        "metadata": card.metadata or {},
        "feature": card.feature_key or "",
        "billing_cadence": card.billing_cadence,
        "discount_percentage": discounts.percentage,
        "free_quantity": discounts.usage_quantity,
        "tax_behavior": tax.get("behavior", ""),
        "stripe_tax_code": (tax.get("stripe") or {}).get("code", ""),
        **_price_initial(card.price),
        **_template_initial(card.entitlement_template),
    }


# --- rejections → form errors ---------------------------------------------------------------------------------------


def _flatten(detail: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """DRF's nested error detail → (wire path, message) pairs."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            yield from _flatten(value, f"{path}.{key}" if path and key != "non_field_errors" else (path or key))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        for message in detail:
            yield path, str(message)
    elif isinstance(detail, list):
        for i, item in enumerate(detail):
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, str(detail)


def _problems(exc: DomainError | serializers.ValidationError) -> list[tuple[str, str]]:
    if isinstance(exc, serializers.ValidationError):
        return list(_flatten(exc.detail))
    errors = exc.extensions.get("validationErrors") or []
    if errors:
        return [(e["field"], e["message"]) for e in errors]
    field, sep, message = exc.detail.partition(": ")
    return [(field, message)] if sep and " " not in field else [("", exc.detail)]


_ROW = re.compile(r"^\[(\d+)\]\.?")


def _readable(rest: str, message: str) -> str:
    """`tiers[1].upToAmount`, "must be …" → "row 2: must be …" (operators count rows from one)."""
    row = _ROW.match(rest)
    return f"row {int(row.group(1)) + 1}: {message}" if row else message


def service_errors(
    exc: DomainError | serializers.ValidationError, *, prefix: str, fields: tuple[tuple[str, str], ...]
) -> list[tuple[str | None, str]]:
    """A rejection as (form field or None, message) pairs. `prefix` is the edited part's path in the service input
    (`phases[1].rateCards[0]`); a problem elsewhere (another phase, the plan) is a message above the form."""
    out: list[tuple[str | None, str]] = []
    for path, message in _problems(exc):
        if prefix and path.startswith(prefix):
            path = path[len(prefix):].lstrip(".")
        elif prefix and path:
            out.append((None, f"{path}: {message}"))
            continue
        for wire, field in fields:
            if path == wire or path.startswith((f"{wire}.", f"{wire}[")):
                out.append((field, _readable(path[len(wire):].lstrip("."), message)))
                break
        else:
            out.append((None, f"{path}: {message}" if path else message))
    return out
