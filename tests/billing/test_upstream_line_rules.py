"""How commitments, usage discounts and amount discounts show on lines and totals, as OpenMeter's rating
(`billing/rating/service`: usage discount → price → percentage → maximum → minimum; a commitment top-up is a
charge, not an amount). Every figure is computed by hand in the comments."""

import datetime as dt

import pytest
import time_machine

from billing.models import Invoice, InvoiceLine
from tests.billing.helpers import FEB, T0, customer, flat_line, iso, metered_feature, usage_line
from tests.factories import ingest, plan_body, usage_card

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
AFTER_CLOSE = FEB + dt.timedelta(hours=2)
ZERO_TOTALS = {"creditsTotal": "0", "taxesInclusiveTotal": "0", "taxesExclusiveTotal": "0", "taxesTotal": "0"}


def _invoice_of(api, cust, *lines: dict, as_of: dt.datetime | None = None) -> dict:
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": list(lines)}, format="json")
    assert r.status_code == 201, r.json()
    body = {"customerId": cust.pk, **({"asOf": iso(as_of)} if as_of else {})}
    r = api.post("/api/v1/billing/invoices/invoice", body, format="json")
    assert r.status_code == 201, r.json()
    [invoice] = r.json()
    return invoice


def _tokens(cust_subject: str, *amounts_at: tuple[int, int]) -> None:
    ingest([{"subject": cust_subject, "type": "tokens", "time": T0 + dt.timedelta(days=day), "data": {"tokens": n}}
            for day, n in amounts_at])


def test_a_minimum_spend_top_up_is_a_charge_not_an_amount(api):
    # usage 10 x 2.00 = 20 with a minimum spend of 50: amount 20, chargesTotal 30, total 50
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (3, 10))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(feature.key, {"type": "unit", "amount": "2", "minimumAmount": "50"}))
    [line] = inv["lines"]
    expected = {"amount": "20", "chargesTotal": "30", "discountsTotal": "0", "total": "50", **ZERO_TOTALS}
    assert line["totals"] == expected
    assert inv["totals"] == expected
    usage, commitment = line["children"]
    assert (usage["category"], usage["totals"]["amount"], usage["totals"]["chargesTotal"]) == ("regular", "20", "0")
    assert commitment["category"] == "commitment"
    assert commitment["name"] == "Tokens: minimum spend"
    assert commitment["totals"] == {"amount": "0", "chargesTotal": "30", "discountsTotal": "0", "total": "30",
                                    **ZERO_TOTALS}


def test_a_usage_discount_reduces_the_quantity_and_is_listed_on_the_line(api):
    # usage 15 at 1.00, the first 5 free: quantity 10, meteredQuantity 15, one usage discount of 5; 10 x 1 = 10
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (3, 15))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(feature.key, {"type": "unit", "amount": "1"},
                                                discounts={"usage": {"quantity": "5"}}))
    [line] = inv["lines"]
    assert (line["quantity"], line["meteredQuantity"]) == ("10", "15")
    [discount] = line["discounts"]["usage"]
    assert "amount" not in line["discounts"]
    correlation = line["rateCard"]["discounts"]["usage"]["correlationId"]
    assert discount["quantity"] == "5"
    assert discount["reason"] == {"type": "ratecard_usage", "quantity": "5", "correlationId": correlation}
    assert "preLinePeriodQuantity" not in discount
    assert line["totals"]["amount"] == line["totals"]["total"] == "10"
    assert line["children"][0]["quantity"] == "10"
    # the discount keeps its id when the invoice is read again
    again = api.get(f"/api/v1/billing/invoices/{inv['id']}?expand=lines").json()
    assert again["lines"][0]["discounts"]["usage"][0]["id"] == discount["id"]


def test_percentage_then_maximum_spend_show_on_the_detailed_line_in_upstreams_order(api):
    # usage 30, 5 free → 25 x 2 = 50; 10 % off = 5 → 45; maximum 40 → another 5 off → total 40
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (3, 30))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(
            feature.key, {"type": "unit", "amount": "2", "maximumAmount": "40"},
            discounts={"usage": {"quantity": "5"}, "percentage": {"percentage": 10}}))
    [line] = inv["lines"]
    assert line["totals"] == {"amount": "50", "chargesTotal": "0", "discountsTotal": "10", "total": "40",
                              **ZERO_TOTALS}
    assert list(line["discounts"]) == ["usage"]  # amount discounts are on the detailed line that carries them
    [charge] = line["children"]
    assert charge["managedBy"] == "system"
    assert charge["invoice"] == {"id": inv["id"]}
    percentage, maximum = charge["discounts"]["amount"]
    assert (percentage["reason"]["type"], percentage["reason"]["percentage"], percentage["amount"]) == (
        "ratecard_percentage", 10, "5")
    assert (maximum["reason"], maximum["amount"]) == ({"type": "maximum_spend"}, "5")
    assert maximum["description"] == "Maximum spend discount for charges over 40"


def test_a_minimum_spend_tops_up_what_is_left_after_discounts(api):
    # usage 10 x 2 = 20, 10 % off → 18; the minimum 50 tops up 32: amount 20, charges 32, discounts 2, total 50
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (3, 10))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(feature.key, {"type": "unit", "amount": "2", "minimumAmount": "50"},
                                                discounts={"percentage": {"percentage": 10}}))
    assert inv["totals"] == {"amount": "20", "chargesTotal": "32", "discountsTotal": "2", "total": "50", **ZERO_TOTALS}


def test_a_usage_discount_spreads_over_progressively_billed_parts(api):
    # 5 free units; 3 used before day 10 (all free), 12 more after: the second part frees the last 2 → 10 x 1
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (2, 3), (20, 12))
    line = usage_line(feature.key, {"type": "unit", "amount": "1"}, discounts={"usage": {"quantity": "5"}})
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        first = _invoice_of(api, cust, line, as_of=T0 + dt.timedelta(days=10))
    [part] = first["lines"]
    assert (part["quantity"], part["meteredQuantity"], part["totals"]["total"]) == ("0", "3", "0")
    assert part["discounts"]["usage"][0]["quantity"] == "3"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    [last] = r.json()[0]["lines"]
    assert (last["quantity"], last["meteredQuantity"], last["totals"]["total"]) == ("10", "12", "10")
    # of the period's 3 earlier units all were free; this part takes the 2 free units left
    assert (last["preLinePeriodQuantity"], last["meteredPreLinePeriodQuantity"]) == ("0", "3")
    [discount] = last["discounts"]["usage"]
    assert (discount["quantity"], discount["preLinePeriodQuantity"]) == ("2", "3")


def test_previously_billed_amounts_count_before_discounts_for_the_maximum_spend(api):
    # upstream counts the earlier parts' `amount` (SumNetAmount) as billed: part 1 bills 30 x 1 = 30, 50 % off →
    # total 15 (under the maximum of 40); part 2: 30, 50 % off → 15, and 30 billed before + 15 = 45 is 5 over the
    # maximum → 5 more off, total 10 (counting part 1's total, 15 + 15 = 30, would take nothing off)
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (2, 30), (20, 30))
    line = usage_line(feature.key, {"type": "unit", "amount": "1", "maximumAmount": "40"},
                      discounts={"percentage": {"percentage": 50}})
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        first = _invoice_of(api, cust, line, as_of=T0 + dt.timedelta(days=10))
    assert first["totals"]["total"] == "15"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        [last] = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json").json()
    assert last["totals"] == {"amount": "30", "chargesTotal": "0", "discountsTotal": "20", "total": "10",
                              **ZERO_TOTALS}


def test_a_dynamic_price_rounds_its_per_unit_amount(api):
    # 7 x 0.333 multiplier = 2.331 → one unit of 2.33 (upstream rounds the per-unit amount)
    feature = metered_feature()
    cust = customer()
    _tokens("acme", (3, 7))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(feature.key, {"type": "dynamic", "multiplier": "0.333"}))
    [charge] = inv["lines"][0]["children"]
    assert (charge["quantity"], charge["perUnitAmount"], charge["totals"]["total"]) == ("1", "2.33", "2.33")


def test_a_graduated_price_without_usage_lists_its_first_tier(api):
    # no usage: tier 1's flat 5 is billed, and its usage price is listed at quantity 0 (as upstream)
    feature = metered_feature()
    cust = customer()
    graduated = {"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "100", "flatPrice": {"type": "flat", "amount": "5"}, "unitPrice": {"type": "unit", "amount": "1"}},
        {"unitPrice": {"type": "unit", "amount": "0.5"}}]}
    with time_machine.travel(AFTER_CLOSE, tick=False):
        inv = _invoice_of(api, cust, usage_line(feature.key, graduated))
    children = inv["lines"][0]["children"]
    assert [(c["name"], c["quantity"], c["totals"]["total"]) for c in children] == [
        ("Tokens: usage price for tier 1", "0", "0"), ("Tokens: flat price for tier 1", "1", "5")]


def _flat_with_free_units() -> dict:
    line = flat_line(amount="10")
    line["rateCard"]["discounts"] = {"usage": {"quantity": "5"}}
    return line


def test_a_usage_discount_on_a_flat_price_is_a_400_and_creates_nothing(api):
    cust = customer()
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                 {"currency": "USD", "lines": [_flat_with_free_units()]}, format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM
    assert "usage discount is not supported for flat price" in r.json()["detail"]
    assert not Invoice.objects.exists()
    assert not InvoiceLine.objects.exists()
    simulated = {**_flat_with_free_units(), "quantity": "1"}
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/simulate",
                 {"currency": "USD", "lines": [simulated]}, format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM


def test_a_usage_based_rate_card_with_a_flat_price_takes_no_usage_discount(api):
    metered_feature()
    card = usage_card("tokens", key="seat", price={"type": "flat", "amount": "10"},
                      discounts={"usage": {"quantity": "5"}})
    r = api.post("/api/v1/plans", plan_body("flat_free", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [card]}]), format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM
    assert "usage discount is not supported for flat price" in r.json()["detail"]
    assert api.get("/api/v1/plans").json()["totalCount"] == 0
