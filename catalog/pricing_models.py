"""Typed, immutable views of a rate card's price, discounts and entitlement template.

Rate cards store these as JSON in the spec's wire shape (amounts as decimal strings); everything that
computes with them (validation here, rating in billing) reads them through `price_from_json`,
`discounts_from_json` and `entitlement_template_from_json`, never from the raw dicts.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypedDict

PaymentTerm = Literal["in_advance", "in_arrears"]
TieredMode = Literal["volume", "graduated"]


@dataclass(frozen=True, slots=True)
class FlatPrice:
    amount: Decimal
    payment_term: PaymentTerm = "in_advance"
    type: str = "flat"


@dataclass(frozen=True, slots=True)
class UnitPrice:
    amount: Decimal
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    type: str = "unit"


@dataclass(frozen=True, slots=True)
class PriceTier:
    up_to_amount: Decimal | None  # None: open-ended (the last tier)
    flat_amount: Decimal | None
    unit_amount: Decimal | None


@dataclass(frozen=True, slots=True)
class TieredPrice:
    mode: TieredMode
    tiers: tuple[PriceTier, ...]
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    type: str = "tiered"


@dataclass(frozen=True, slots=True)
class PackagePrice:
    amount: Decimal
    quantity_per_package: Decimal
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    type: str = "package"


@dataclass(frozen=True, slots=True)
class DynamicPrice:
    multiplier: Decimal = Decimal(1)
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    type: str = "dynamic"


Price = FlatPrice | UnitPrice | TieredPrice | PackagePrice | DynamicPrice


@dataclass(frozen=True, slots=True)
class Discounts:
    percentage: Decimal | None = None  # 50 = 50 %
    usage_quantity: Decimal | None = None  # the first N units are free


@dataclass(frozen=True, slots=True)
class MeteredTemplate:
    is_soft_limit: bool = False
    issue_after_reset: Decimal | None = None
    issue_after_reset_priority: int = 1
    preserve_overage_at_reset: bool = False
    usage_period: str | None = None  # ISO duration; None: the rate card's billing cadence
    metadata: dict[str, str] | None = None
    type: str = "metered"


@dataclass(frozen=True, slots=True)
class StaticTemplate:
    config: str  # a JSON document, as the spec sends it
    metadata: dict[str, str] | None = None
    type: str = "static"


@dataclass(frozen=True, slots=True)
class BooleanTemplate:
    metadata: dict[str, str] | None = None
    type: str = "boolean"


EntitlementTemplate = MeteredTemplate | StaticTemplate | BooleanTemplate


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class _Commitments(TypedDict):
    minimum_amount: Decimal | None
    maximum_amount: Decimal | None


def _commitments(data: dict[str, Any]) -> _Commitments:
    return {"minimum_amount": _dec(data.get("minimumAmount")), "maximum_amount": _dec(data.get("maximumAmount"))}


def _tier(data: dict[str, Any]) -> PriceTier:
    flat, unit = data.get("flatPrice"), data.get("unitPrice")
    return PriceTier(
        up_to_amount=_dec(data.get("upToAmount")),
        flat_amount=_dec(flat["amount"]) if flat else None,
        unit_amount=_dec(unit["amount"]) if unit else None,
    )


def price_from_json(data: dict[str, Any] | None) -> Price | None:
    """The stored wire-shaped price → a typed price (None: the rate card is free)."""
    if data is None:
        return None
    kind = data["type"]
    if kind == "flat":
        return FlatPrice(amount=Decimal(data["amount"]), payment_term=data.get("paymentTerm", "in_advance"))
    if kind == "unit":
        return UnitPrice(amount=Decimal(data["amount"]), **_commitments(data))
    if kind == "tiered":
        return TieredPrice(mode=data["mode"], tiers=tuple(_tier(t) for t in data["tiers"]), **_commitments(data))
    if kind == "package":
        return PackagePrice(
            amount=Decimal(data["amount"]), quantity_per_package=Decimal(data["quantityPerPackage"]), **_commitments(data)
        )
    if kind == "dynamic":
        return DynamicPrice(multiplier=Decimal(data.get("multiplier", "1")), **_commitments(data))
    raise ValueError(f"unknown price type {kind!r}")


def discounts_from_json(data: dict[str, Any] | None) -> Discounts:
    data = data or {}
    percentage = (data.get("percentage") or {}).get("percentage")
    usage = (data.get("usage") or {}).get("quantity")
    return Discounts(percentage=_dec(percentage), usage_quantity=_dec(usage))


def entitlement_template_from_json(data: dict[str, Any] | None) -> EntitlementTemplate | None:
    if data is None:
        return None
    kind = data["type"]
    if kind == "metered":
        return MeteredTemplate(
            is_soft_limit=bool(data.get("isSoftLimit", False)),
            issue_after_reset=_dec(data.get("issueAfterReset")),
            issue_after_reset_priority=int(data.get("issueAfterResetPriority", 1)),
            preserve_overage_at_reset=bool(data.get("preserveOverageAtReset", False)),
            usage_period=data.get("usagePeriod"),
            metadata=data.get("metadata"),
        )
    if kind == "static":
        return StaticTemplate(config=data["config"], metadata=data.get("metadata"))
    if kind == "boolean":
        return BooleanTemplate(metadata=data.get("metadata"))
    raise ValueError(f"unknown entitlement template type {kind!r}")


class TypedRateCard:
    """Typed readers over a rate card's JSON columns (`price_json`, `discounts_json`,
    `entitlement_template_json`), shared by plan/add-on rate cards and subscription items."""

    price_json: dict[str, Any] | None
    discounts_json: dict[str, Any] | None
    entitlement_template_json: dict[str, Any] | None

    @property
    def price(self) -> Price | None:
        return price_from_json(self.price_json)

    @property
    def discounts(self) -> Discounts:
        return discounts_from_json(self.discounts_json)

    @property
    def entitlement_template(self) -> EntitlementTemplate | None:
        return entitlement_template_from_json(self.entitlement_template_json)


def price_problems(price: Price | None) -> list[str]:
    """Semantic rules the wire schema cannot express; each message names the offending field."""
    if price is None:
        return []
    problems: list[str] = []
    if isinstance(price, FlatPrice | UnitPrice | PackagePrice) and price.amount < 0:
        problems.append("price.amount: must not be negative")
    if isinstance(price, PackagePrice) and price.quantity_per_package <= 0:
        problems.append("price.quantityPerPackage: must be greater than 0")
    if isinstance(price, DynamicPrice) and price.multiplier <= 0:
        problems.append("price.multiplier: must be greater than 0")
    if isinstance(price, TieredPrice):
        problems += _tier_problems(price)
    if not isinstance(price, FlatPrice):
        problems += _commitment_problems(price)
    return problems


def _commitment_problems(price: UnitPrice | TieredPrice | PackagePrice | DynamicPrice) -> list[str]:
    problems = []
    for name, value in (("minimumAmount", price.minimum_amount), ("maximumAmount", price.maximum_amount)):
        if value is not None and value < 0:
            problems.append(f"price.{name}: must not be negative")
    low, high = price.minimum_amount, price.maximum_amount
    if low is not None and high is not None and low > high:
        problems.append("price.minimumAmount: must not be greater than maximumAmount")
    return problems


def _tier_problems(price: TieredPrice) -> list[str]:
    problems = []
    previous: Decimal | None = None
    last = len(price.tiers) - 1
    for i, tier in enumerate(price.tiers):
        field = f"price.tiers[{i}]"
        if tier.flat_amount is None and tier.unit_amount is None:
            problems.append(f"{field}: needs a flatPrice or a unitPrice")
        for name, amount in (("flatPrice", tier.flat_amount), ("unitPrice", tier.unit_amount)):
            if amount is not None and amount < 0:
                problems.append(f"{field}.{name}.amount: must not be negative")
        if tier.up_to_amount is None:
            if i != last:
                problems.append(f"{field}.upToAmount: only the last tier may be open-ended")
            continue
        if tier.up_to_amount <= 0:
            problems.append(f"{field}.upToAmount: must be greater than 0")
        if previous is not None and tier.up_to_amount <= previous:
            problems.append(f"{field}.upToAmount: tiers must be in ascending order of upToAmount")
        previous = tier.up_to_amount
    if price.tiers and price.tiers[-1].up_to_amount is not None:
        problems.append(f"price.tiers[{last}].upToAmount: the last tier must be open-ended (no upToAmount)")
    return problems
