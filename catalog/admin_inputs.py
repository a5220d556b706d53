"""The one place where the back office's typed catalog forms meet the catalog services.

Forms give Python values (Decimals, durations, feature keys); the services take the API's inputs (today a rate
card is the normalised wire dict that `catalog.api.ratecards.validate_rate_card` returns, the API's own validator).
`rate_card_input` builds that input, `rate_card_initial` reads a stored rate card back into form values, and
`service_errors` turns a rejection (the API validator's or a service's) into errors on the form's fields. When the
services take typed inputs, only this module changes.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.forms.utils import pretty_name
from rest_framework import serializers

from catalog.admin_forms import AddonCreateForm, PhaseForm, PlanCreateForm, RateCardForm
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
from catalog.services.addons import AddonInput
from catalog.services.plans import PhaseInput, PlanInput
from catalog.services.ratecards import RateCardInput
from openmeter_site.admin_ui.display import duration_text
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


# the API's words in a service's message → the operator's (the form's labels and choices); longest first
PLAIN_WORDS = (
    ("(billablesMustAlign)", "(rate cards bill on the plan's cadence)"),
    ("with instanceType multiple", "bought in a quantity"),
    ("flat_fee rate card", "rate card charged as a fee"),
    ("usage_based rate card", "rate card charged by usage"),
    ("minimumAmount", "the minimum per period"),
    ("maximumAmount", "the maximum per period"),
    ("upToAmount", "“up to”"),
    ("flatPrice", "flat price"),
    ("unitPrice", "price per unit"),
    ("quantityPerPackage", "units per package"),
    ("featureKey", "feature"),
    ("billingCadence", "billing cadence"),
)
_DURATION = re.compile(r"\bP(?=[\dT])(?:\d+[YMWD])*(?:T(?:\d+[HMS])+)?\b")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def plain(message: str) -> str:
    """A service's message in the back office's words: "must not be greater than maximumAmount" → "… than the
    maximum per period"; durations as words ("P1W" → "1 week")."""
    for wire, words in PLAIN_WORDS:
        message = message.replace(wire, words)
    return _DURATION.sub(lambda m: duration_text(m.group(0)), message)


def _labels(form: type[forms.Form], fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """(the API's field, the form's label) for each field the form shows."""
    return tuple((wire, str(form.base_fields[name].label or pretty_name(name))) for wire, name in fields
                 if name in form.base_fields)


PLAN_LABELS = _labels(PlanCreateForm, PLAN_FIELDS)
ADDON_LABELS = _labels(AddonCreateForm, (*PLAN_FIELDS, ("instanceType", "instance_type")))
PHASE_LABELS = _labels(PhaseForm, PHASE_FIELDS)
RATE_CARD_LABELS = _labels(RateCardForm, RATE_CARD_FIELDS)
_STEP = re.compile(r"^\.?(phases|rateCards)(?:\[([^\]]+)\]|\.([^.\[]+))?")


@dataclass(frozen=True)
class Parts:
    """A plan's phases and rate cards (or an add-on's rate cards), to say where a service's path points in the
    names the operator gave them and the form's labels: `phases[1].rateCards.tokens.billingCadence` → 'Phase
    “Default”, rate card “AI tokens” (Billed every)'."""

    phases: Sequence[PhaseInput] = ()
    rate_cards: Sequence[RateCardInput] = ()
    labels: tuple[tuple[str, str], ...] = PLAN_LABELS

    @classmethod
    def of(cls, data: PlanInput | AddonInput) -> "Parts":
        if isinstance(data, PlanInput):
            return cls(phases=data.phases)
        return cls(rate_cards=data.rate_cards, labels=ADDON_LABELS)

    def where(self, path: str) -> str:
        names: list[str] = []
        labels = self.labels
        cards: Sequence[RateCardInput] = self.rate_cards
        while step := _STEP.match(path):
            kind, ref = step.group(1), step.group(2) or step.group(3)
            path = path[step.end():].lstrip(".")
            if ref is None:  # the list itself ("a phase needs rate cards"): the message says what
                continue
            if kind == "phases":
                phase = _find(self.phases, ref)
                names.append(_named("phase", phase, ref))
                labels, cards = PHASE_LABELS, phase.rate_cards if phase else ()
            else:
                names.append(_named("rate card", _find(cards, ref), ref))
                labels = RATE_CARD_LABELS
        label = _label(path, labels)
        text = f"{', '.join(names)} ({label})" if names and label else ", ".join(names) or label
        return text[:1].upper() + text[1:]

    def say(self, path: str, message: str) -> str:
        """One problem as the operator reads it: 'Phase “Trial” (Duration): must not be zero'."""
        where = self.where(path)
        return f"{where}: {plain(message)}" if where else plain(message)


def _named(kind: str, part: PhaseInput | RateCardInput | None, ref: str) -> str:
    if part is not None:
        return f"{kind} “{part.name}”"
    return f"{kind} {int(ref) + 1}" if ref.isdigit() else f"{kind} “{ref}”"


def _find(items: Sequence[Any], ref: str | None) -> Any:
    """The item a path names by its position (`[1]`) or by its key (`.tokens`, `[tokens]`)."""
    if ref is None:
        return None
    if ref.isdigit():
        return items[int(ref)] if int(ref) < len(items) else None
    return next((item for item in items if item.key == ref), None)


def _match(path: str, pairs: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """The first (API field, form field or label) pair whose API field is `path` or contains it."""
    return next(((wire, to) for wire, to in pairs if path == wire or path.startswith((f"{wire}.", f"{wire}["))), None)


def _label(path: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not path:
        return ""
    if found := _match(path, labels):
        wire, label = found
        row = _ROW.match(path[len(wire):].lstrip("."))
        return f"{label}, row {int(row.group(1)) + 1}" if row else label
    return _CAMEL.sub(" ", path.split(".")[-1].split("[")[0]).lower()  # a field no form shows, in words


def service_errors(
    exc: DomainError | serializers.ValidationError, *, prefix: str, fields: tuple[tuple[str, str], ...],
    parts: Parts | None = None,
) -> list[tuple[str | None, str]]:
    """A rejection as (form field or None, message) pairs. `prefix` is the edited part's path in the service input
    (`phases[1].rateCards[0]`); a problem elsewhere (another phase, the plan) is a message above the form that
    names the part (`parts`) and the field by their labels."""
    out: list[tuple[str | None, str]] = []
    for path, message in _problems(exc):
        rest = path[len(prefix):].lstrip(".") if path.startswith(prefix) else None
        found = _match(rest, fields) if rest is not None else None
        if rest is not None and found is not None:
            wire, field = found
            out.append((field, _readable(rest[len(wire):].lstrip("."), plain(message))))
        else:
            out.append((None, (parts or Parts()).say(path, message)))
    return out


def readable_problems(errors: Iterable[Mapping[str, str]], parts: Parts) -> list[str]:
    """A draft's `validationErrors` (what stops publishing it) as the operator reads them."""
    return [parts.say(e["field"], e["message"]) for e in errors]
