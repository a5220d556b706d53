"""Rating as upstream does it (openmeter/billing/rating/service: rate/*, mutator/*, detailedline.go), through
`createPendingInvoiceLine` and `invoicePendingLines` of the official client; every figure derived by hand."""

from decimal import Decimal

import pytest

from tests.conformance.conftest import at, customer, iso, metered_feature, usage, utc

pytestmark = pytest.mark.django_db

START, END = utc(2026, 3, 1), utc(2026, 4, 1)
LATER = utc(2026, 4, 3)  # after the period and its collection interval


def _invoice(om, cust, price: dict, used: list, *, currency: str = "USD", discounts: dict | None = None,
             feature: str = "calls"):
    """One usage line over [START, END) with `used` values ingested inside it, invoiced at LATER."""
    with at(START):
        metered_feature(om, feature)
        for n, value in enumerate(used):
            usage(om, cust.key, feature, utc(2026, 3, 2 + n), value)
        rate_card = {"featureKey": feature, "price": price, **({"discounts": discounts} if discounts else {})}
        om.customer_invoice.create_pending_invoice_line(cust.id, {"currency": currency, "lines": [
            {"name": "Calls", "period": {"from": iso(START), "to": iso(END)}, "invoiceAt": iso(END),
             "rateCard": rate_card}]})
    with at(LATER):
        [invoice] = om.invoices.invoice_pending_lines_action({"customerId": cust.id})
    [line] = invoice.lines
    return invoice, line


def _totals(totals) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (Decimal(totals.amount), Decimal(totals.charges_total), Decimal(totals.discounts_total),
            Decimal(totals.total))


def _children(line) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return sorted((c.name, Decimal(c.quantity), Decimal(c.per_unit_amount), Decimal(c.totals.total))
                  for c in line.children)


TIERS = [
    {"upToAmount": "10", "unitPrice": {"type": "unit", "amount": "1"}, "flatPrice": {"type": "flat", "amount": "5"}},
    {"upToAmount": "20", "unitPrice": {"type": "unit", "amount": "0.5"}, "flatPrice": {"type": "flat", "amount": "3"}},
    {"unitPrice": {"type": "unit", "amount": "0.1"}},
]


def test_graduated_tiers_bill_each_slice_and_each_entered_tiers_flat_price(om):
    cust = customer(om, "grad")
    # 25 units: tier 1 prices 10 x 1 = 10 plus its flat 5; tier 2 10 x 0.5 = 5 plus its flat 3; tier 3 5 x 0.1 = 0.5
    # amount 10 + 5 + 5 + 3 + 0.5 = 23.5
    invoice, line = _invoice(om, cust, {"type": "tiered", "mode": "graduated", "tiers": TIERS}, [12, 13])
    assert _children(line) == [
        ("Calls: flat price for tier 1", 1, 5, 5), ("Calls: flat price for tier 2", 1, 3, 3),
        ("Calls: usage price for tier 1", 10, 1, 10), ("Calls: usage price for tier 2", 10, Decimal("0.5"), 5),
        ("Calls: usage price for tier 3", 5, Decimal("0.1"), Decimal("0.5")),
    ]
    assert _totals(invoice.totals) == (Decimal("23.5"), 0, 0, Decimal("23.5"))


def test_volume_tiers_price_every_unit_in_the_tier_holding_the_total(om):
    cust = customer(om, "vol")
    # 15 units fall in tier 2 (10 < 15 <= 20): its flat 3 plus 15 x 0.5 = 7.5, total 10.5
    invoice, line = _invoice(om, cust, {"type": "tiered", "mode": "volume", "tiers": TIERS}, [15])
    assert _children(line) == [("Calls: flat price for tier 2", 1, 3, 3),
                               ("Calls: unit price for tier 2", 15, Decimal("0.5"), Decimal("7.5"))]
    assert Decimal(invoice.totals.total) == Decimal("10.5")


def test_volume_tier_upper_bound_is_inclusive(om):
    cust = customer(om, "vol_edge")
    # exactly 10 units stay in tier 1 (upToAmount is inclusive): 5 + 10 x 1 = 15
    invoice, _ = _invoice(om, cust, {"type": "tiered", "mode": "volume", "tiers": TIERS}, [10])
    assert Decimal(invoice.totals.total) == 15


def test_package_price_rounds_the_packages_up_after_the_free_units(om):
    cust = customer(om, "pkg")
    # 250 used, the first 60 free: 190 billed, ceil(190 / 100) = 2 packages x 10 = 20
    invoice, line = _invoice(om, cust, {"type": "package", "amount": "10", "quantityPerPackage": "100"}, [250],
                             discounts={"usage": {"quantity": "60"}})
    assert (Decimal(line.quantity), Decimal(line.metered_quantity)) == (190, 250)
    assert _children(line) == [("Calls: usage in period", 2, 10, 20)]
    assert Decimal(invoice.totals.total) == 20


def test_percentage_discount_then_maximum_spend(om):
    cust = customer(om, "cap")
    # 40 x 2 = 80; 10 % off = 8 -> 72; capped at 60: a maximum-spend discount of 12; total 60
    invoice, line = _invoice(om, cust, {"type": "unit", "amount": "2", "maximumAmount": "60"}, [40],
                             discounts={"percentage": {"percentage": 10}})
    [child] = line.children
    assert sorted((d.reason["type"], Decimal(d.amount)) for d in child.discounts.amount) == [
        ("maximum_spend", 12), ("ratecard_percentage", 8)]
    assert _totals(invoice.totals) == (80, 0, 20, 60)


def test_minimum_spend_tops_up_what_is_left_after_the_percentage_discount(om):
    cust = customer(om, "floor")
    # 10 x 2 = 20; 50 % off = 10 -> 10 billed; minimum 30: a commitment charge of 20 (not discounted)
    # amount 20, charges 20, discounts 10, total 30
    invoice, line = _invoice(om, cust, {"type": "unit", "amount": "2", "minimumAmount": "30"}, [10],
                             discounts={"percentage": {"percentage": 50}})
    commitment = [c for c in line.children if c.category == "commitment"]
    assert [(Decimal(c.per_unit_amount), Decimal(c.totals.charges_total)) for c in commitment] == [(20, 20)]
    assert _totals(invoice.totals) == (20, 20, 10, 30)


def test_minimum_and_maximum_together_with_no_usage(om):
    cust = customer(om, "both")
    # no usage: nothing to rate, nothing to cap; the minimum 25 is charged in full as a commitment
    invoice, line = _invoice(om, cust, {"type": "unit", "amount": "2", "minimumAmount": "25",
                                        "maximumAmount": "100"}, [])
    assert _totals(invoice.totals) == (0, 25, 0, 25)
    assert [c.category for c in line.children] == ["commitment"]


def test_yen_has_no_minor_unit_and_halves_round_away_from_zero(om):
    cust = customer(om, "yen", currency="JPY")
    # 3 x 0.5 = 1.5 JPY -> 2; 25 % off 2 = 0.5 -> 1; total 1
    invoice, _ = _invoice(om, cust, {"type": "unit", "amount": "0.5"}, [3], currency="JPY",
                             discounts={"percentage": {"percentage": 25}})
    assert _totals(invoice.totals) == (2, 0, 1, 1)


def test_bahraini_dinar_rounds_to_three_decimals(om):
    cust = customer(om, "dinar", currency="BHD")
    # 3 x 0.0005 = 0.0015 BHD -> 0.002 (three decimals, half away from zero)
    invoice, _ = _invoice(om, cust, {"type": "unit", "amount": "0.0005"}, [3], currency="BHD")
    assert Decimal(invoice.totals.total) == Decimal("0.002")


def test_dynamic_price_rounds_the_cost_times_multiplier(om):
    cust = customer(om, "dyn")
    # usage 10.333 (a cost) x 1.5 = 15.4995 -> 15.50, billed as one unit
    invoice, line = _invoice(om, cust, {"type": "dynamic", "multiplier": "1.5"}, ["10.333"])
    assert _children(line) == [("Calls: usage in period", 1, Decimal("15.5"), Decimal("15.5"))]
    assert Decimal(invoice.totals.total) == Decimal("15.5")


def test_percentage_discount_rounds_per_detailed_line(om):
    cust = customer(om, "pct")
    # graduated 3 x 0.25 = 0.75 (tier 1) and 2 x 0.35 = 0.70 (tier 2); 33 % off each detailed line:
    # 0.2475 -> 0.25 and 0.231 -> 0.23: discounts 0.48 (not 33 % of 1.45 = 0.4785 -> 0.48 by luck; check lines)
    tiers = [{"upToAmount": "3", "unitPrice": {"type": "unit", "amount": "0.25"}},
             {"unitPrice": {"type": "unit", "amount": "0.35"}}]
    invoice, line = _invoice(om, cust, {"type": "tiered", "mode": "graduated", "tiers": tiers}, [5],
                             discounts={"percentage": {"percentage": 33}})
    per_child = sorted((Decimal(c.totals.amount), Decimal(c.totals.discounts_total)) for c in line.children)
    assert per_child == [(Decimal("0.70"), Decimal("0.23")), (Decimal("0.75"), Decimal("0.25"))]
    assert _totals(invoice.totals) == (Decimal("1.45"), 0, Decimal("0.48"), Decimal("0.97"))
