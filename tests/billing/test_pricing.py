"""Pure rating maths: hand-computed cases and hypothesis properties (no database)."""

from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.services.pricing import (
    Discounts,
    Price,
    RatingInput,
    Tier,
    charge_totals,
    graduated_amount,
    graduated_slices,
    package_count,
    parse_price,
    rate,
    rate_line,
    sum_totals,
    volume_amount,
    volume_tier,
)

TIERS = (
    Tier(up_to=D(100), flat=D(5), unit=D("0.10")),
    Tier(up_to=D(1000), flat=None, unit=D("0.05")),
    Tier(up_to=None, flat=D(20), unit=D("0.01")),
)


def _rate(price: Price, qty: str, currency: str = "USD", **kw) -> list:
    return rate(RatingInput(name="API calls", currency=currency, price=price, quantity=D(qty), **kw))


def _total(charges) -> D:
    return sum_totals(charge_totals(c) for c in charges).total


# --- graduated ----------------------------------------------------------------------------------------------

def test_graduated_inside_first_tier():
    # 50 units in tier 1: flat 5 + 50 * 0.10 = 10
    charges = _rate(Price(type="tiered", mode="graduated", tiers=TIERS), "50")
    assert _total(charges) == D("10.00")
    assert [c.name for c in charges] == ["API calls: usage price for tier 1", "API calls: flat price for tier 1"]


def test_graduated_across_tier_boundaries():
    # 1500 units: tier 1 = 5 + 100 * 0.10 = 15; tier 2 = 900 * 0.05 = 45; tier 3 = 20 + 500 * 0.01 = 25 → 85
    charges = _rate(Price(type="tiered", mode="graduated", tiers=TIERS), "1500")
    assert _total(charges) == D("85.00")
    assert [(c.quantity, c.per_unit_amount) for c in charges if c.key.startswith("graduated-tiered-price-usage")] == [
        (D(100), D("0.10")), (D(900), D("0.05")), (D(500), D("0.01"))]


def test_graduated_exactly_on_a_boundary_does_not_enter_next_tier():
    # 100 units: 5 + 100 * 0.10 = 15; tier 2 not entered
    assert _total(_rate(Price(type="tiered", mode="graduated", tiers=TIERS), "100")) == D("15.00")


def test_graduated_zero_usage_bills_first_tier_flat_price():
    assert _total(_rate(Price(type="tiered", mode="graduated", tiers=TIERS), "0")) == D("5.00")


def test_graduated_progressive_second_line_continues_where_the_first_stopped():
    # first line: 0..80 → 5 + 8 = 13; second line: 80..150 → 20 * 0.10 + 50 * 0.05 = 4.50 (no flat of tier 1 again)
    price = Price(type="tiered", mode="graduated", tiers=TIERS)
    first = _rate(price, "80", is_last_in_period=False)
    second = _rate(price, "70", pre_line_period_quantity=D(80), is_first_in_period=False)
    assert _total(first) == D("13.00")
    assert _total(second) == D("4.50")
    assert _total(first) + _total(second) == graduated_amount(TIERS, D(150), "USD")


# --- volume -------------------------------------------------------------------------------------------------

def test_volume_uses_one_tier_for_the_whole_quantity():
    price = Price(type="tiered", mode="volume", tiers=TIERS)
    # 100 → tier 1 (upTo is inclusive): 5 + 100 * 0.10 = 15
    assert _total(_rate(price, "100")) == D("15.00")
    # 101 → tier 2 for all units: 101 * 0.05 = 5.05
    assert _total(_rate(price, "101")) == D("5.05")
    # 1001 → tier 3: 20 + 1001 * 0.01 = 30.01
    assert _total(_rate(price, "1001")) == D("30.01")


# --- package, unit, flat, dynamic -----------------------------------------------------------------------------

def test_package_rounds_up_to_whole_packages():
    price = Price(type="package", amount=D(5), quantity_per_package=D(1000))
    assert _total(_rate(price, "1000")) == D("5.00")  # exactly one package
    assert _total(_rate(price, "1001")) == D("10.00")  # 2 packages
    assert _total(_rate(price, "2500")) == D("15.00")  # 3 packages
    assert _rate(price, "0") == []


def test_unit_price_rounds_at_the_line():
    # 3 units * 0.3333 = 0.9999 → 1.00 (half up at the cent)
    assert _total(_rate(Price(type="unit", amount=D("0.3333")), "3")) == D("1.00")


def test_flat_in_advance_only_on_first_line_in_arrears_only_on_last():
    advance = Price(type="flat", amount=D(10), payment_term="in_advance")
    arrears = Price(type="flat", amount=D(10), payment_term="in_arrears")
    assert _total(_rate(advance, "1", is_last_in_period=False)) == D(10)
    assert _rate(advance, "1", is_first_in_period=False) == []
    assert _rate(arrears, "1", is_last_in_period=False) == []
    assert _total(_rate(arrears, "1", is_first_in_period=False)) == D(10)


def test_dynamic_price_multiplies_the_cost():
    # cost 12.345 * 1.2 = 14.814 → 14.81
    assert _total(_rate(Price(type="dynamic", multiplier=D("1.2")), "12.345")) == D("14.81")


# --- commitments and discounts -----------------------------------------------------------------------------

def test_minimum_commitment_tops_up_on_the_last_line():
    # usage 40 * 0.5 = 20, minimum 50 → a 30 commitment charge
    charges = _rate(Price(type="unit", amount=D("0.5"), minimum_amount=D(50)), "40")
    assert _total(charges) == D(50)
    assert charges[-1].category == "commitment"
    assert charges[-1].amount == D(30)
    # the top-up is a charge: the line's amount is the usage alone (upstream's calculateDetailedLineTotals)
    totals = sum_totals(charge_totals(c) for c in charges)
    assert (totals.amount, totals.charges_total, totals.total) == (D(20), D(30), D(50))


def test_minimum_commitment_counts_what_was_billed_before():
    # earlier lines billed 35, this line 10 → top up 5
    charges = _rate(Price(type="unit", amount=D(1), minimum_amount=D(50)), "10", is_first_in_period=False,
                    previously_billed_amount=D(35))
    assert charges[-1].amount == D(5)


def test_maximum_commitment_discounts_the_overage():
    # 300 * 0.5 = 150, max 100 → discount 50
    charges = _rate(Price(type="unit", amount=D("0.5"), maximum_amount=D(100)), "300")
    assert charges[0].amount == D(150)
    assert charges[0].discounts_total == D(50)
    assert _total(charges) == D(100)


def test_percentage_discount_rounds_per_charge():
    # 33 * 0.10 = 3.30; 15% = 0.495 → 0.50 (half up); total 2.80
    charges = _rate(Price(type="unit", amount=D("0.10")), "33", discounts=Discounts(percentage=D(15)))
    assert charges[0].discounts_total == D("0.50")
    assert _total(charges) == D("2.80")


def test_usage_discount_leaves_the_billed_quantity_on_the_rating():
    # 60 earlier units and 100 now, 80 free: 60 free earlier, 20 free now → 80 billed, nothing before
    rating = rate_line(RatingInput(name="x", currency="USD", price=Price(type="unit", amount=D(1)), quantity=D(100),
                                   pre_line_period_quantity=D(60), discounts=Discounts(usage_quantity=D(80)),
                                   is_first_in_period=False))
    assert (rating.quantity, rating.pre_line_period_quantity) == (D(80), D(0))
    assert (rating.usage_discount, rating.usage_discount_pre_line_period) == (D(20), D(60))


def test_usage_discount_gives_free_units():
    # 150 units, 100 free → 50 * 0.2 = 10
    assert _total(_rate(Price(type="unit", amount=D("0.2")), "150", discounts=Discounts(usage_quantity=D(100)))) == D(10)


def test_three_and_zero_decimal_currencies():
    # KWD has 3 decimals: 7 * 0.12345 = 0.86415 → 0.864; JPY has none: 7 * 12.5 = 87.5 → 88
    assert _total(_rate(Price(type="unit", amount=D("0.12345")), "7", currency="KWD")) == D("0.864")
    assert _total(_rate(Price(type="unit", amount=D("12.5")), "7", currency="JPY")) == D(88)


def test_parse_price_reads_the_wire_shape():
    price = parse_price({"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "10", "unitPrice": {"type": "unit", "amount": "1"}},
        {"flatPrice": {"type": "flat", "amount": "2"}},
    ]})
    assert price.tiers[0].up_to == D(10)
    assert price.tiers[1].up_to is None
    assert price.tiers[1].flat == D(2)


# --- properties ---------------------------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)
amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), min_size=0, max_size=4)))
    tiers = []
    for up_to in [*bounds, None]:
        flat = draw(st.none() | amounts)
        unit = draw(amounts) if flat is None else draw(st.none() | amounts)
        tiers.append(Tier(up_to=D(up_to) if up_to is not None else None, flat=flat, unit=unit))
    return tuple(tiers)


@settings(max_examples=200, deadline=None)
@given(tier_lists(), quantities)
def test_graduated_slices_cover_the_quantity_exactly_once(tiers, qty):
    assert sum((s.quantity for s in graduated_slices(tiers, D(0), qty)), D(0)) == qty


@settings(max_examples=200, deadline=None)
@given(tier_lists(), quantities, quantities)
def test_graduated_split_anywhere_sums_to_the_slices(tiers, a, b):
    pre, total = min(a, b), max(a, b)
    whole = graduated_slices(tiers, D(0), total)
    split = graduated_slices(tiers, D(0), pre) + graduated_slices(tiers, pre, total)
    for index in range(len(tiers)):
        assert sum((s.quantity for s in whole if s.index == index), D(0)) == sum(
            (s.quantity for s in split if s.index == index), D(0))


@settings(max_examples=200, deadline=None)
@given(tier_lists(), quantities)
def test_graduated_amount_is_monotonic(tiers, qty):
    assert graduated_amount(tiers, qty + 1, "USD") >= graduated_amount(tiers, qty, "USD")


@settings(max_examples=200, deadline=None)
@given(tier_lists(), quantities)
def test_volume_uses_exactly_one_tier(tiers, qty):
    index, tier = volume_tier(tiers, qty)
    assert tier.up_to is None or qty <= tier.up_to
    assert index == 0 or (tiers[index - 1].up_to is not None and qty > tiers[index - 1].up_to)
    cent = {"exp": D("0.01"), "rounding": ROUND_HALF_UP}  # half away from zero, as OpenMeter rounds
    expected = (tier.flat or D(0)).quantize(**cent) + (
        (qty * tier.unit).quantize(**cent) if tier.unit is not None and qty > 0 else D(0))
    assert volume_amount(tiers, qty, "USD") == expected


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=10**6, places=2), st.decimals(min_value="0.01", max_value=10**4, places=2))
def test_package_count_is_the_ceiling(qty, size):
    n = package_count(qty, size)
    assert n == int(n)
    assert n * size >= qty
    assert n == 0 or (n - 1) * size < qty


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(quantities, amounts), min_size=1, max_size=8),
       st.sampled_from(["USD", "JPY", "KWD"]), st.none() | st.decimals(min_value=0, max_value=100, places=2))
def test_line_total_is_the_sum_of_its_charges_and_rounded(items, currency, pct):
    exponent = {"USD": D("0.01"), "JPY": D(1), "KWD": D("0.001")}[currency]
    for qty, amount in items:
        charges = _rate(Price(type="unit", amount=amount), str(qty), currency=currency,
                        discounts=Discounts(percentage=pct))
        totals = sum_totals(charge_totals(c) for c in charges)
        assert totals.total == sum((c.amount - c.discounts_total for c in charges), D(0))
        assert totals.amount == totals.amount.quantize(exponent)
        assert totals.total == totals.total.quantize(exponent)
        assert D(0) <= totals.total <= totals.amount


# --- pro-rating ---------------------------------------------------------------------------------------------

def test_prorate_mid_period_start_and_cancel():
    import datetime as dt

    from billing.services.pricing import prorate

    jan = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    # start on Jan 11: 21 of 31 days of 31.00 = 21.00
    assert prorate(D("31"), (dt.datetime(2026, 1, 11, tzinfo=dt.UTC), jan[1]), jan, "USD") == D("21.00")
    # cancel on Jan 21 after starting on Jan 11: 10 of 31 days of 100 = 32.258… → 32.26
    assert prorate(D("100"), (dt.datetime(2026, 1, 11, tzinfo=dt.UTC), dt.datetime(2026, 1, 21, tzinfo=dt.UTC)),
                   jan, "USD") == D("32.26")
    assert prorate(D("100"), jan, jan, "USD") == D(100)


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=10**5, places=2), st.integers(min_value=1, max_value=31 * 24 - 1))
def test_prorated_parts_add_up_to_the_whole_within_rounding(amount, split_hour):
    import datetime as dt

    from billing.services.pricing import prorate

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    cut = start + dt.timedelta(hours=split_hour)
    first = prorate(amount, (start, cut), (start, end), "USD")
    second = prorate(amount, (cut, end), (start, end), "USD")
    assert abs(first + second - amount) <= D("0.01")  # each part is rounded to the cent once
    assert D(0) <= first <= amount


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["unit", "graduated", "volume", "package", "flat"]), quantities, amounts),
                min_size=1, max_size=6),
       st.sampled_from(["USD", "JPY", "KWD"]))
def test_invoice_total_is_the_sum_of_its_lines(items, currency):
    import datetime as dt

    from billing.models import InvoiceLine
    from billing.services.calculation import calculate_lines
    from billing.services.pricing import TOTAL_FIELDS

    tiers = [{"upToAmount": "100", "flatPrice": {"type": "flat", "amount": "1.5"}, "unitPrice": {"type": "unit",
              "amount": "0.333"}}, {"unitPrice": {"type": "unit", "amount": "0.1"}}]
    prices = {
        "unit": lambda a: {"type": "unit", "amount": str(a)},
        "graduated": lambda a: {"type": "tiered", "mode": "graduated", "tiers": tiers},
        "volume": lambda a: {"type": "tiered", "mode": "volume", "tiers": tiers},
        "package": lambda a: {"type": "package", "amount": str(a), "quantityPerPackage": "7"},
        "flat": lambda a: {"type": "flat", "amount": str(a), "paymentTerm": "in_advance"},
    }
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lines = [InvoiceLine(name=f"l{i}", currency=currency, period_start=start, period_end=start + dt.timedelta(days=1),
                         invoice_at=start, price=prices[kind](amount)) for i, (kind, _, amount) in enumerate(items)]
    usage = {line.pk: (qty, D(0)) for line, (_, qty, _) in zip(lines, items, strict=True)}
    calcs = calculate_lines(lines, usage)
    invoice_totals = sum_totals(c.totals for c in calcs)
    for f in TOTAL_FIELDS:
        assert getattr(invoice_totals, f) == sum((getattr(c.totals, f) for c in calcs), D(0))
    for c in calcs:
        assert c.totals.total == sum((ch.total for ch in c.charges), D(0))
    exponent = {"USD": D("0.01"), "JPY": D(1), "KWD": D("0.001")}[currency]
    assert invoice_totals.total == invoice_totals.total.quantize(exponent)
