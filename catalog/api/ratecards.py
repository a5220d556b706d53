"""Wire ↔ Python for rate cards (shared by plans, add-ons and subscriptions).

In: `RateCardField` validates the spec's `RateCard` union (discriminated by `type`, prices by `price.type`)
and returns a normalised wire-shaped dict (amounts as canonical decimal strings) that the services store.
Out: `rate_card_to_api` renders the stored dicts back.
"""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from catalog.models import RateCard
from catalog.periods import is_duration
from catalog.services.ratecards import RateCardInput
from openmeter_site.api.fields import MetadataField, NumericField, decimal_to_str
from openmeter_site.core.ids import KEY_RE, ULID_RE
from openmeter_site.core.lengths import column_length

ZERO = Decimal(0)


def key_field(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(KEY_RE, max_length=64, min_length=1, **kwargs)


class DurationField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not is_duration(value):
            raise serializers.ValidationError(f"invalid ISO 8601 duration {value!r} (e.g. P1M, P1Y, P2W, P1D)")
        return value


def _num(value: Decimal | None) -> str | None:
    return None if value is None else decimal_to_str(value)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def omit_none(data: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Leave out optional fields that have no value (as OpenMeter does); `keep` names required nullable ones."""
    return {k: v for k, v in data.items() if v is not None or k in keep}


class _Commitments(serializers.Serializer):
    minimumAmount = NumericField(required=False, allow_null=True, min_value=ZERO)
    maximumAmount = NumericField(required=False, allow_null=True, min_value=ZERO)

    def commitments(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"minimumAmount": _num(data.get("minimumAmount")), "maximumAmount": _num(data.get("maximumAmount"))}


class FlatPriceIn(serializers.Serializer):
    type = serializers.ChoiceField(["flat"])
    amount = NumericField(min_value=ZERO)
    paymentTerm = serializers.ChoiceField(["in_advance", "in_arrears"], default="in_advance")

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"type": "flat", "amount": _num(data["amount"]), "paymentTerm": data["paymentTerm"]}


class UnitPriceIn(_Commitments):
    type = serializers.ChoiceField(["unit"])
    amount = NumericField(min_value=ZERO)

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return _drop_none({"type": "unit", "amount": _num(data["amount"]), **self.commitments(data)})


class _AmountIn(serializers.Serializer):
    type = serializers.CharField()
    amount = NumericField(min_value=ZERO)


class PriceTierIn(serializers.Serializer):
    upToAmount = NumericField(required=False, allow_null=True)
    flatPrice = _AmountIn(required=False, allow_null=True)
    unitPrice = _AmountIn(required=False, allow_null=True)

    def validate_flatPrice(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value["type"] != "flat":
            raise serializers.ValidationError("type must be flat")
        return value

    def validate_unitPrice(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value["type"] != "unit":
            raise serializers.ValidationError("type must be unit")
        return value


class TieredPriceIn(_Commitments):
    type = serializers.ChoiceField(["tiered"])
    mode = serializers.ChoiceField(["volume", "graduated"])
    tiers = PriceTierIn(many=True, allow_empty=False)

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        tiers = [
            omit_none({  # flatPrice and unitPrice are required (nullable) in PriceTier
                "upToAmount": _num(t.get("upToAmount")),
                "flatPrice": {"type": "flat", "amount": _num(t["flatPrice"]["amount"])} if t.get("flatPrice") else None,
                "unitPrice": {"type": "unit", "amount": _num(t["unitPrice"]["amount"])} if t.get("unitPrice") else None,
            }, keep=("flatPrice", "unitPrice"))
            for t in data["tiers"]
        ]
        return _drop_none({"type": "tiered", "mode": data["mode"], "tiers": tiers, **self.commitments(data)})


class PackagePriceIn(_Commitments):
    type = serializers.ChoiceField(["package"])
    amount = NumericField(min_value=ZERO)
    quantityPerPackage = NumericField()

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return _drop_none(
            {
                "type": "package",
                "amount": _num(data["amount"]),
                "quantityPerPackage": _num(data["quantityPerPackage"]),
                **self.commitments(data),
            }
        )


class DynamicPriceIn(_Commitments):
    type = serializers.ChoiceField(["dynamic"])
    multiplier = NumericField(default=Decimal(1))

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return _drop_none({"type": "dynamic", "multiplier": _num(data["multiplier"]), **self.commitments(data)})


USAGE_PRICES = {
    "flat": FlatPriceIn,
    "unit": UnitPriceIn,
    "tiered": TieredPriceIn,
    "package": PackagePriceIn,
    "dynamic": DynamicPriceIn,
}


def _run(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.to_wire(serializer.validated_data)


class _Percentage(serializers.Serializer):
    percentage = NumericField(min_value=ZERO)

    def validate_percentage(self, value: Decimal) -> Decimal:
        if value > 100:
            raise serializers.ValidationError("must be between 0 and 100")
        return value


class _UsageDiscount(serializers.Serializer):
    quantity = NumericField(min_value=ZERO)


class DiscountsIn(serializers.Serializer):
    percentage = _Percentage(required=False, allow_null=True)
    usage = _UsageDiscount(required=False, allow_null=True)

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if data.get("percentage"):
            # Percentage is a JSON number on the wire; kept as a Decimal (rendered exactly).
            out["percentage"] = {"percentage": _num(data["percentage"]["percentage"])}
        if data.get("usage"):
            out["usage"] = {"quantity": _num(data["usage"]["quantity"])}
        return out or None


class EntitlementTemplateIn(serializers.Serializer):
    type = serializers.ChoiceField(["metered", "static", "boolean"])
    metadata = MetadataField()
    isSoftLimit = serializers.BooleanField(required=False)
    issueAfterReset = NumericField(required=False, allow_null=True, min_value=ZERO)
    issueAfterResetPriority = serializers.IntegerField(required=False, min_value=1, max_value=255)
    preserveOverageAtReset = serializers.BooleanField(required=False)
    usagePeriod = DurationField(required=False, allow_null=True)
    config = serializers.JSONField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "static" and "config" not in attrs:
            raise serializers.ValidationError({"config": "a static entitlement template needs a config"})
        return attrs

    def to_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": data["type"]}
        if data.get("metadata"):
            out["metadata"] = data["metadata"]
        if data["type"] == "static":
            config = data["config"]
            out["config"] = config if isinstance(config, str) else serializers.JSONField().to_representation(config)
        if data["type"] == "metered":
            out.update(
                isSoftLimit=data.get("isSoftLimit", False),
                issueAfterResetPriority=data.get("issueAfterResetPriority", 1),
                preserveOverageAtReset=data.get("preserveOverageAtReset", False),
            )
            if data.get("issueAfterReset") is not None:
                out["issueAfterReset"] = _num(data["issueAfterReset"])
            if data.get("usagePeriod"):
                out["usagePeriod"] = data["usagePeriod"]
        return out


class TaxConfigIn(serializers.Serializer):
    behavior = serializers.ChoiceField(["inclusive", "exclusive"], required=False)
    stripe = serializers.DictField(required=False)
    customInvoicing = serializers.DictField(required=False)
    taxCodeId = serializers.RegexField(ULID_RE, required=False)

    def validate_stripe(self, value: dict[str, Any]) -> dict[str, Any]:
        code = value.get("code")
        if not isinstance(code, str) or not code.startswith("txcd_") or len(code) != 13 or not code[5:].isdigit():
            raise serializers.ValidationError("code must match ^txcd_\\d{8}$")
        return {"code": code}

    def validate_customInvoicing(self, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("code"), str) or not value["code"]:
            raise serializers.ValidationError("code is required")
        return {"code": value["code"]}


class RateCardIn(serializers.Serializer):
    type = serializers.ChoiceField(["flat_fee", "usage_based"])
    key = key_field()
    name = serializers.CharField(max_length=column_length(RateCard, "name"))
    description = serializers.CharField(max_length=column_length(RateCard, "description"), required=False,
                                        allow_null=True, allow_blank=True)
    metadata = MetadataField()
    featureKey = key_field(required=False, allow_null=True)
    entitlementTemplate = serializers.DictField(required=False, allow_null=True)
    taxConfig = TaxConfigIn(required=False, allow_null=True)
    billingCadence = DurationField(allow_null=True)
    price = serializers.DictField(allow_null=True)
    discounts = serializers.DictField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "usage_based" and attrs.get("billingCadence") is None:
            raise serializers.ValidationError({"billingCadence": "a usage_based rate card needs a billing cadence"})
        return attrs

    def to_representation(self, instance: Any) -> Any:  # used only as a validator
        return instance


def _nested(field: str, run: Any) -> Any:
    try:
        return run()
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({field: exc.detail}) from exc


def _price_wire(card_type: str, price: dict[str, Any]) -> dict[str, Any]:
    price_type = price.get("type")
    if card_type == "flat_fee":
        if price_type != "flat":
            raise serializers.ValidationError({"type": "a flat_fee rate card takes a flat price"})
        return _run(FlatPriceIn, price)
    if price_type not in USAGE_PRICES:
        raise serializers.ValidationError({"type": f"must be one of {', '.join(USAGE_PRICES)}"})
    return _run(USAGE_PRICES[price_type], price)


def validate_rate_card(data: Any) -> RateCardInput:
    """The spec's `RateCard` → the services' input, or a ValidationError naming the field."""
    base = RateCardIn(data=data)
    base.is_valid(raise_exception=True)
    v = base.validated_data
    price = v["price"]
    discounts = None
    if v.get("discounts"):
        discounts = _nested("discounts", lambda: _run(DiscountsIn, v["discounts"]))
        flat = v["type"] == "flat_fee" or (price or {}).get("type") == "flat"
        if flat and discounts and "usage" in discounts:  # upstream's ErrUsageDiscountWithFlatPrice
            message = "a flat price takes percentage discounts only (usage discount is not supported for flat price)"
            raise serializers.ValidationError({"discounts": {"usage": message}})
    template = v.get("entitlementTemplate")
    return RateCardInput(
        type=v["type"],
        key=v["key"],
        name=v["name"],
        description=v.get("description"),
        metadata=v.get("metadata"),
        feature_key=v.get("featureKey"),
        billing_cadence=v["billingCadence"],
        price=None if price is None else _nested("price", lambda: _price_wire(v["type"], price)),
        discounts=discounts,
        entitlement_template=_nested("entitlementTemplate", lambda: _run(EntitlementTemplateIn, template))
        if template else None,
        tax_config=_drop_none(dict(v["taxConfig"])) if v.get("taxConfig") else None,
    )


class RateCardField(serializers.Field):
    """A `RateCard` in a request body."""

    def to_internal_value(self, data: Any) -> RateCardInput:
        if not isinstance(data, dict):
            raise serializers.ValidationError("expected a rate card object")
        return validate_rate_card(data)

    def to_representation(self, value: Any) -> Any:
        return value


def rate_card_to_api(card: Any) -> dict[str, Any]:
    """A RateCard-like row (catalog or subscription item) → the spec's RateCard JSON."""
    out: dict[str, Any] = {
        "type": card.type,
        "key": card.key,
        "name": card.name,
        "billingCadence": card.billing_cadence,
        "price": card.price_json,
    }
    optional = {
        "description": card.description,
        "metadata": card.metadata,
        "featureKey": card.feature_key,
        "entitlementTemplate": template_to_api(card.entitlement_template_json),
        "taxConfig": card.tax_config,
        "discounts": discounts_to_api(card.discounts_json),
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def template_to_api(template: dict[str, Any] | None) -> dict[str, Any] | None:
    """`issueAfterReset` is a JSON number on the wire (stored as a decimal string, written exactly)."""
    if template is None or template.get("issueAfterReset") is None:
        return template
    return {**template, "issueAfterReset": Decimal(template["issueAfterReset"])}


def discounts_to_api(discounts: dict[str, Any] | None) -> dict[str, Any] | None:
    """Stored discounts → wire: `percentage.percentage` is a JSON number (written exactly from a Decimal)."""
    if not discounts:
        return None
    out = dict(discounts)
    if "percentage" in out:
        out["percentage"] = {"percentage": Decimal(out["percentage"]["percentage"])}
    return out
