"""Rating: a line's price and quantity → detailed charges, in Decimal, rounded to the currency's minor unit per
detailed line (as OpenMeter's `rating` package does). Pure functions: no ORM, no clock.

Rules (openmeter/billing/rating/service/rate, mutator):
- flat: one charge of `amount`, in advance on the first line of a period, in arrears on the last.
- unit: quantity * amount.
- tiered graduated: each tier bills the slice of [pre, pre + qty) that falls in it; a tier's flat price is billed
  when usage enters the tier (tier 1's flat price also at zero usage, on the first line of the period).
- tiered volume: the one tier holding the whole quantity prices all of it (flat + unit); no progressive billing.
- package: ceil(total / size) - ceil(pre / size) packages * amount.
- dynamic: quantity (a money amount) * multiplier.
- usage discount: free units taken from the period's first units (the line's quantity is what is left; flat
  prices take none); percentage discount: per charge, rounded; maximum amount: discounts the overage; minimum
  amount: a `commitment` charge on the last line tops up.
- totals: a regular charge is `amount`, a commitment top-up is a charge (`chargesTotal`), so
  total = amount + chargesTotal - discountsTotal (`calculateDetailedLineTotals`, `Totals.CalculateTotal`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openmeter_site.core.fields import normalized
from openmeter_site.core.money import round_money

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

IN_ADVANCE = "in_advance"
IN_ARREARS = "in_arrears"
REGULAR = "regular"
COMMITMENT = "commitment"


class PriceError(ValueError):
    """A price that cannot be rated (e.g. tiers without an open-ended last tier)."""


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    flat: Decimal | None
    unit: Decimal | None


@dataclass(frozen=True, slots=True)
class Price:
    type: str
    amount: Decimal = ZERO
    payment_term: str = IN_ARREARS
    mode: str | None = None
    tiers: tuple[Tier, ...] = ()
    quantity_per_package: Decimal | None = None
    multiplier: Decimal = ONE
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Discounts:
    percentage: Decimal | None = None
    usage_quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AmountDiscount:
    reason: str  # ratecard_percentage | maximum_spend
    amount: Decimal
    description: str = ""


@dataclass(frozen=True, slots=True)
class Charge:
    """One detailed line."""

    key: str
    name: str
    quantity: Decimal
    per_unit_amount: Decimal
    amount: Decimal
    payment_term: str = IN_ARREARS
    category: str = REGULAR
    discounts: tuple[AmountDiscount, ...] = ()

    @property
    def discounts_total(self) -> Decimal:
        return sum((d.amount for d in self.discounts), ZERO)

    @property
    def total(self) -> Decimal:
        return self.amount - self.discounts_total


@dataclass(frozen=True, slots=True)
class Totals:
    amount: Decimal = ZERO
    charges_total: Decimal = ZERO
    discounts_total: Decimal = ZERO
    credits_total: Decimal = ZERO
    taxes_inclusive_total: Decimal = ZERO
    taxes_exclusive_total: Decimal = ZERO
    taxes_total: Decimal = ZERO
    total: Decimal = ZERO

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(*(getattr(self, f) + getattr(other, f) for f in TOTAL_FIELDS))


TOTAL_FIELDS = (
    "amount", "charges_total", "discounts_total", "credits_total",
    "taxes_inclusive_total", "taxes_exclusive_total", "taxes_total", "total",
)


@dataclass(frozen=True, slots=True)
class RatingInput:
    name: str
    currency: str
    price: Price
    quantity: Decimal = ZERO
    pre_line_period_quantity: Decimal = ZERO
    discounts: Discounts = field(default_factory=Discounts)
    is_first_in_period: bool = True
    is_last_in_period: bool = True
    previously_billed_amount: Decimal = ZERO


# --- parsing the wire shape -------------------------------------------------------------------------------

def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def parse_price(data: Mapping[str, Any]) -> Price:
    """`RateCardUsageBasedPrice` (as validated by the API) → Price."""
    kind = data["type"]
    tiers = tuple(
        Tier(
            up_to=_dec(t.get("upToAmount")),
            flat=_dec((t.get("flatPrice") or {}).get("amount")),
            unit=_dec((t.get("unitPrice") or {}).get("amount")),
        )
        for t in data.get("tiers") or ()
    )
    return Price(
        type=kind,
        amount=_dec(data.get("amount")) or ZERO,
        payment_term=data.get("paymentTerm") or (IN_ADVANCE if kind == "flat" else IN_ARREARS),
        mode=data.get("mode"),
        tiers=sort_tiers(tiers) if tiers else (),
        quantity_per_package=_dec(data.get("quantityPerPackage")),
        multiplier=_dec(data.get("multiplier")) or ONE,
        minimum_amount=_dec(data.get("minimumAmount")),
        maximum_amount=_dec(data.get("maximumAmount")),
    )


def parse_discounts(data: Mapping[str, Any] | None) -> Discounts:
    data = data or {}
    return Discounts(
        percentage=_dec((data.get("percentage") or {}).get("percentage")),
        usage_quantity=_dec((data.get("usage") or {}).get("quantity")),
    )


def sort_tiers(tiers: Iterable[Tier]) -> tuple[Tier, ...]:
    """Bounded tiers by upper bound, the open-ended tier last; exactly one open-ended tier is required."""
    tiers = tuple(tiers)
    open_ended = [t for t in tiers if t.up_to is None]
    if len(open_ended) != 1:
        raise PriceError("tiered price needs exactly one tier without upToAmount (the last tier)")
    bounded = sorted((t for t in tiers if t.up_to is not None), key=lambda t: t.up_to or ZERO)
    return (*bounded, open_ended[0])


# --- the maths --------------------------------------------------------------------------------------------

def package_count(quantity: Decimal, size: Decimal) -> Decimal:
    """Packages needed for `quantity`: ceil(quantity / size)."""
    if size <= 0:
        raise PriceError("quantityPerPackage must be positive")
    whole, rest = divmod(quantity, size)
    return whole + (ONE if rest else ZERO)


@dataclass(frozen=True, slots=True)
class TierSlice:
    index: int
    tier: Tier
    quantity: Decimal
    enters_tier: bool  # the slice starts at the tier's lower bound


def graduated_slices(tiers: Sequence[Tier], from_qty: Decimal, to_qty: Decimal) -> list[TierSlice]:
    """The parts of [from_qty, to_qty) in each tier, in tier order."""
    if from_qty < 0 or to_qty < from_qty:
        raise PriceError("graduated range must satisfy 0 <= from <= to")
    out: list[TierSlice] = []
    lower = ZERO
    for index, tier in enumerate(tiers):
        upper = tier.up_to
        start = max(lower, from_qty)
        end = to_qty if upper is None else min(upper, to_qty)
        if end > start or (to_qty == 0 and index == 0 and from_qty == 0):
            out.append(TierSlice(index, tier, end - start if end > start else ZERO, start == lower))
        if upper is None or upper >= to_qty:
            break
        lower = upper
    return out


def graduated_amount(tiers: Sequence[Tier], quantity: Decimal, currency: str) -> Decimal:
    """Total price of `quantity` units on graduated tiers (each tier's slice rounded, flat prices included)."""
    return sum((c.amount for c in _graduated_charges("x", tiers, ZERO, quantity, currency, True)), ZERO)


def volume_tier(tiers: Sequence[Tier], quantity: Decimal) -> tuple[int, Tier]:
    for index, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            return index, tier
    raise PriceError("no tier for the quantity (the last tier must be open-ended)")


def volume_amount(tiers: Sequence[Tier], quantity: Decimal, currency: str) -> Decimal:
    return sum((c.amount for c in _volume_charges("x", tiers, quantity, currency)), ZERO)


def _charge(key: str, name: str, quantity: Decimal, per_unit: Decimal, currency: str, **kw: Any) -> Charge:
    return Charge(key, name, quantity, per_unit, round_money(quantity * per_unit, currency), **kw)


def _graduated_charges(
    name: str, tiers: Sequence[Tier], pre: Decimal, qty: Decimal, currency: str, first_in_period: bool
) -> list[Charge]:
    out: list[Charge] = []
    for s in graduated_slices(tiers, pre, pre + qty):
        n = s.index + 1
        if s.tier.unit is not None:  # a zero-quantity slice only when there is no usage at all: upstream lists it
            out.append(_charge(f"graduated-tiered-price-usage-{n}", f"{name}: usage price for tier {n}",
                               s.quantity, s.tier.unit, currency))
        if s.tier.flat is not None and s.enters_tier and (s.index > 0 or first_in_period):
            out.append(_charge(f"graduated-tiered-price-flat-{n}", f"{name}: flat price for tier {n}",
                               ONE, s.tier.flat, currency))
    return out


def _volume_charges(name: str, tiers: Sequence[Tier], qty: Decimal, currency: str) -> list[Charge]:
    index, tier = volume_tier(tiers, qty)
    out: list[Charge] = []
    if tier.flat is not None:
        out.append(_charge("volume-flat-price", f"{name}: flat price for tier {index + 1}", ONE, tier.flat, currency))
    if tier.unit is not None and qty > 0:
        out.append(_charge("volume-unit-price", f"{name}: unit price for tier {index + 1}", qty, tier.unit, currency))
    return out


def _price_charges(inp: RatingInput, qty: Decimal, pre: Decimal) -> list[Charge]:
    p, name, cur = inp.price, inp.name, inp.currency
    if p.type == "flat":
        billable = inp.is_first_in_period if p.payment_term == IN_ADVANCE else inp.is_last_in_period
        if not billable:
            return []
        return [_charge("flat-price", name, ONE, p.amount, cur, payment_term=p.payment_term)]
    if p.type == "unit":
        return [_charge("unit-price-usage", f"{name}: usage in period", qty, p.amount, cur)] if qty > 0 else []
    if p.type == "tiered" and p.mode == "graduated":
        return _graduated_charges(name, p.tiers, pre, qty, cur, inp.is_first_in_period)
    if p.type == "tiered" and p.mode == "volume":
        if pre:
            raise PriceError("volume tiered prices cannot be billed progressively")
        return _volume_charges(name, p.tiers, qty, cur) if inp.is_last_in_period else []
    if p.type == "package":
        size = p.quantity_per_package or ZERO
        before = ZERO if inp.is_first_in_period else package_count(pre, size)
        packages = package_count(pre + qty, size) - before
        return [_charge("package-price-usage", f"{name}: usage in period", packages, p.amount, cur)] if packages else []
    if p.type == "dynamic":  # one unit at the rounded amount (upstream's per-unit amount is rounded too)
        amount = round_money(qty * p.multiplier, cur)
        return [_charge("dynamic-price-usage", f"{name}: usage in period", ONE, amount, cur)] if qty > 0 else []
    raise PriceError(f"unsupported price type {p.type!r}{' mode ' + p.mode if p.mode else ''}")


def _with_discount(charge: Charge, discount: AmountDiscount) -> Charge:
    return Charge(charge.key, charge.name, charge.quantity, charge.per_unit_amount, charge.amount,
                  charge.payment_term, charge.category, (*charge.discounts, discount))


def _apply_usage_discount(qty: Decimal, pre: Decimal, free: Decimal | None) -> tuple[Decimal, Decimal]:
    """Free units come off the period's first units: first from earlier lines, the rest from this line."""
    if not free:
        return qty, pre
    left_after_pre = max(ZERO, free - pre)
    return max(ZERO, qty - left_after_pre), max(ZERO, pre - free)


def _apply_percentage(charges: list[Charge], pct: Decimal | None, currency: str) -> list[Charge]:
    if not pct:
        return charges
    if not ZERO <= pct <= HUNDRED:
        raise PriceError("discount percentage must be between 0 and 100")
    return [
        _with_discount(c, AmountDiscount("ratecard_percentage", round_money(c.total * pct / HUNDRED, currency)))
        for c in charges
    ]


def _apply_maximum(charges: list[Charge], maximum: Decimal | None, before: Decimal, currency: str) -> list[Charge]:
    if maximum is None:
        return charges
    cap = round_money(maximum, currency)
    billed = round_money(before, currency)
    out: list[Charge] = []
    for c in charges:
        overage = billed + c.total - cap
        if overage > 0:
            c = _with_discount(c, AmountDiscount("maximum_spend", min(overage, c.total),
                                                 f"Maximum spend discount for charges over {normalized(cap):f}"))
        billed += c.total
        out.append(c)
    return out


def _apply_minimum(inp: RatingInput, charges: list[Charge]) -> list[Charge]:
    minimum = inp.price.minimum_amount
    if minimum is None or not inp.is_last_in_period:
        return charges
    billed = sum((c.total for c in charges), ZERO) + inp.previously_billed_amount
    if billed >= minimum:
        return charges
    top_up = round_money(minimum - billed, inp.currency)
    return [*charges, Charge("min-spend", f"{inp.name}: minimum spend", ONE, top_up, top_up, category=COMMITMENT)]


@dataclass(frozen=True, slots=True)
class Rating:
    """A line rated: its detailed charges and the quantities left after the usage discount."""

    charges: list[Charge]
    quantity: Decimal
    pre_line_period_quantity: Decimal
    usage_discount: Decimal = ZERO  # free units taken from this line
    usage_discount_pre_line_period: Decimal = ZERO  # free units taken by the period's earlier lines


def rate_line(inp: RatingInput) -> Rating:
    """OpenMeter's order: usage discount (before pricing), price, percentage discount, maximum, minimum."""
    qty, pre = inp.quantity, inp.pre_line_period_quantity
    if inp.price.type != "flat":
        qty, pre = _apply_usage_discount(qty, pre, inp.discounts.usage_quantity)
    charges = _price_charges(inp, qty, pre)
    charges = _apply_percentage(charges, inp.discounts.percentage, inp.currency)
    if inp.price.type != "flat":
        charges = _apply_maximum(charges, inp.price.maximum_amount, inp.previously_billed_amount, inp.currency)
        charges = _apply_minimum(inp, charges)
    free_here = inp.quantity - qty
    # a discount used up by earlier lines is not listed on this one (upstream lists it only when it frees units here)
    return Rating(charges, qty, pre, free_here, inp.pre_line_period_quantity - pre if free_here else ZERO)


def rate(inp: RatingInput) -> list[Charge]:
    """The detailed charges of one line (empty when nothing is billable on this line)."""
    return rate_line(inp).charges


def charge_totals(charge: Charge) -> Totals:
    if charge.category == COMMITMENT:
        return Totals(charges_total=charge.amount, discounts_total=charge.discounts_total, total=charge.total)
    return Totals(amount=charge.amount, discounts_total=charge.discounts_total, total=charge.total)


def sum_totals(items: Iterable[Totals]) -> Totals:
    out = Totals()
    for t in items:
        out = out + t
    return out


def prorate(amount: Decimal, part: tuple[Any, Any], full: tuple[Any, Any], currency: str) -> Decimal:
    """A flat amount for part of its billing period: amount * |part| / |full|, rounded to the currency (as
    OpenMeter's `prorate_prices` mode). Periods are (start, end) datetimes; lengths are exact seconds."""
    full_seconds = Decimal(int((full[1] - full[0]).total_seconds() * 1_000_000))
    part_seconds = Decimal(int((part[1] - part[0]).total_seconds() * 1_000_000))
    if full_seconds <= 0 or part_seconds >= full_seconds:
        return round_money(amount, currency)
    return round_money(amount * part_seconds / full_seconds, currency)
