"""Applying add-on rate cards to a subscription item's terms (pure: unsaved rows, no database)."""

from catalog.models import RateCard
from subscriptions.services.billables import Terms, extend


def _terms(price=None, discounts=None, feature_key=None) -> Terms:
    return Terms("Seats", None, feature_key, "P1M", price, discounts, None)


def _card(price=None, discounts=None, feature_key=None) -> RateCard:
    return RateCard(key="seats", name="Seats", price_json=price, discounts_json=discounts, feature_key=feature_key)


FLAT_10 = {"type": "flat", "amount": "10", "paymentTerm": "in_advance"}


def test_flat_amounts_add_up_quantity_times():
    terms = extend(_terms(price=FLAT_10), _card(price={"type": "flat", "amount": "2.5"}), 3)
    # 10 + 3 * 2.5 = 17.5, the item's payment term kept
    assert terms.price == {"type": "flat", "amount": "17.5", "paymentTerm": "in_advance"}


def test_an_item_without_a_price_takes_the_addon_price_once_then_adds():
    unit = {"type": "unit", "amount": "0.5"}
    assert extend(_terms(), _card(price=unit, feature_key="tokens"), 1) == _terms(price=unit, feature_key="tokens")
    # a flat add-on bought twice onto an item without a price: 10, then + 10 = 20
    assert extend(_terms(), _card(price=FLAT_10), 2).price["amount"] == "20"


def test_free_units_add_up_and_nothing_changes_for_quantity_zero():
    terms = _terms(price={"type": "unit", "amount": "1"}, discounts={"usage": {"quantity": "100"}})
    card = _card(discounts={"usage": {"quantity": "50"}})
    # 100 + 2 * 50 = 200 free units
    assert extend(terms, card, 2).discounts == {"usage": {"quantity": "200"}}
    assert extend(terms, card, 0) == terms
