"""Rate cards as a billing person reads them: "$10.00 a month, in advance", "$0.002 per unit, first 1,000 free"."""

from decimal import Decimal

from catalog.pricing_models import (
    BooleanTemplate,
    DynamicPrice,
    FlatPrice,
    MeteredTemplate,
    PackagePrice,
    PriceTier,
    StaticTemplate,
    TieredPrice,
    TypedRateCard,
    UnitPrice,
)
from openmeter_site.admin_ui.display import duration_text, money_text, quantity_text


def _money(amount: Decimal, currency: str) -> str:
    return money_text(amount, currency, exact=True)


def every(cadence: str | None) -> str:
    """How often a rate card bills: "every month", "every 2 weeks", "once"."""
    if not cadence:
        return "once"
    text = duration_text(cadence)
    return f"every {text.removeprefix('1 ')}" if text.startswith("1 ") else f"every {text}"


def tier_lines(tiers: tuple[PriceTier, ...], currency: str) -> list[str]:
    """One line per tier: "0 - 1,000: $0.00 per unit", "above 1,000: $0.05 per unit + $10.00 flat" (the page
    writes the span with an en dash)."""
    lines, low = [], Decimal(0)
    for tier in tiers:
        span = f"{quantity_text(low)} – {quantity_text(tier.up_to_amount)}" if tier.up_to_amount is not None \
            else f"above {quantity_text(low)}"
        prices = []
        if tier.unit_amount is not None:
            prices.append(f"{_money(tier.unit_amount, currency)} per unit")
        if tier.flat_amount is not None:
            prices.append(f"{_money(tier.flat_amount, currency)} flat")
        lines.append(f"{span}: {' + '.join(prices) or 'free'}")
        low = tier.up_to_amount or low
    return lines


def price_lines(card: TypedRateCard, currency: str, cadence: str | None) -> list[str]:
    """The price as one line, or a heading and one line per tier."""
    price = card.price
    if price is None:
        return ["free"]
    if isinstance(price, FlatPrice):
        term = "in advance" if price.payment_term == "in_advance" else "in arrears"
        return [f"{_money(price.amount, currency)} {every(cadence)}, {term}"]
    if isinstance(price, UnitPrice):
        return [f"{_money(price.amount, currency)} per unit"]
    if isinstance(price, PackagePrice):
        return [f"{_money(price.amount, currency)} per {quantity_text(price.quantity_per_package)} units"]
    if isinstance(price, DynamicPrice):
        return [f"metered cost × {quantity_text(price.multiplier)}"]
    assert isinstance(price, TieredPrice)
    heading = "graduated tiers" if price.mode == "graduated" else "volume tiers"
    return [heading, *tier_lines(price.tiers, currency)]


def commitments_text(card: TypedRateCard, currency: str) -> str:
    price = card.price
    if price is None or isinstance(price, FlatPrice):
        return ""
    parts = []
    if price.minimum_amount is not None:
        parts.append(f"at least {_money(price.minimum_amount, currency)}")
    if price.maximum_amount is not None:
        parts.append(f"at most {_money(price.maximum_amount, currency)}")
    return ", ".join(parts)


def discounts_text(card: TypedRateCard) -> str:
    discounts, parts = card.discounts, []
    if discounts.percentage is not None:
        parts.append(f"{quantity_text(discounts.percentage)}% off")
    if discounts.usage_quantity is not None:
        parts.append(f"first {quantity_text(discounts.usage_quantity)} units free")
    return ", ".join(parts)


def entitlement_text(card: TypedRateCard, cadence: str | None) -> str:
    template = card.entitlement_template
    if isinstance(template, MeteredTemplate):
        allowance = quantity_text(template.issue_after_reset) if template.issue_after_reset is not None else "no"
        period = duration_text(template.usage_period or cadence, empty="billing period")
        limit = "soft limit" if template.is_soft_limit else "hard limit"
        return f"{allowance} units per {period.removeprefix('1 ')}, {limit}"
    if isinstance(template, BooleanTemplate):
        return "access"
    if isinstance(template, StaticTemplate):
        return f"config {template.config}"
    return ""
