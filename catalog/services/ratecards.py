"""Rate card rules shared by plan phases, add-ons and subscription items.

Input rate cards are the normalised wire dicts produced by `catalog.api.ratecards.validate_rate_card`.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from catalog.models import Feature, RateCard
from catalog.periods import is_multiple_of
from catalog.pricing_models import (
    FlatPrice,
    MeteredTemplate,
    entitlement_template_from_json,
    price_from_json,
    price_problems,
)
from openmeter_site.core.errors import InvalidInput


def features_by_key(keys: Iterable[str | None]) -> dict[str, Feature]:
    wanted = {k for k in keys if k}
    return {f.key: f for f in Feature.objects.filter(key__in=wanted, archived_at__isnull=True).select_related("meter")}


def rate_card_problems(card: dict[str, Any], features: dict[str, Feature], field: str) -> list[str]:
    """Rules a rate card must satisfy to be saved at all; each message starts with the field path."""
    problems = [f"{field}.{p}" for p in price_problems(price_from_json(card["price"]))]
    feature_key = card.get("featureKey")
    feature = features.get(feature_key) if feature_key else None
    if feature_key and feature is None:
        problems.append(f"{field}.featureKey: no feature with key {feature_key!r}")
    price = price_from_json(card["price"])
    usage_priced = card["type"] == "usage_based" and price is not None and not isinstance(price, FlatPrice)
    if usage_priced and not feature_key:
        problems.append(f"{field}.featureKey: a usage-based price needs a feature with a meter")
    elif usage_priced and feature is not None and feature.meter_id is None:
        problems.append(f"{field}.featureKey: feature {feature_key!r} has no meter, so usage cannot be priced")
    template = entitlement_template_from_json(card.get("entitlementTemplate"))
    if template is not None and not feature_key:
        problems.append(f"{field}.entitlementTemplate: an entitlement template needs a featureKey")
    if isinstance(template, MeteredTemplate) and feature is not None and feature.meter_id is None:
        problems.append(f"{field}.entitlementTemplate: a metered entitlement needs a feature with a meter")
    return problems


def check_rate_cards(cards: Sequence[dict[str, Any]], field: str) -> dict[str, Feature]:
    """Unique keys and per-card rules; raises one InvalidInput naming every problem. Returns the features used."""
    features = features_by_key(c.get("featureKey") for c in cards)
    problems: list[str] = []
    seen: set[str] = set()
    for i, card in enumerate(cards):
        if card["key"] in seen:
            problems.append(f"{field}[{i}].key: duplicate rate card key {card['key']!r}")
        seen.add(card["key"])
        problems += rate_card_problems(card, features, f"{field}[{i}]")
    raise_problems(problems)
    return features


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise InvalidInput(
            "; ".join(problems),
            extensions={"validationErrors": [_as_validation_error(p) for p in problems]},
        )


def _as_validation_error(problem: str) -> dict[str, str]:
    field, _, message = problem.partition(": ")
    return {"field": field, "code": "invalid", "message": message or problem}


def cadence_problems(cards: Sequence[dict[str, Any]], cadence: str, must_align: bool, field: str) -> list[str]:
    """Publish-time rule: recurring rate cards bill on the plan's cadence (or, unaligned, a multiple or fraction)."""
    problems = []
    for card in cards:
        card_cadence = card["billingCadence"]
        where = f"{field}.rateCards.{card['key']}.billingCadence"
        if card_cadence is None:
            continue
        if must_align and card_cadence != cadence:
            problems.append(f"{where}: must equal the billing cadence {cadence} (billablesMustAlign)")
        elif not (is_multiple_of(cadence, card_cadence) or is_multiple_of(card_cadence, cadence)):
            problems.append(f"{where}: {card_cadence} and {cadence} are not multiples of each other")
    return problems


def rate_card_rows(cards: Sequence[dict[str, Any]], features: dict[str, Feature], **owner: Any) -> list[RateCard]:
    return [
        RateCard(
            index=i,
            type=c["type"],
            key=c["key"],
            name=c["name"],
            description=c.get("description"),
            metadata=c.get("metadata"),
            feature=features.get(c["featureKey"]) if c.get("featureKey") else None,
            feature_key=c.get("featureKey"),
            billing_cadence=c["billingCadence"],
            price_json=c["price"],
            discounts_json=c.get("discounts"),
            entitlement_template_json=c.get("entitlementTemplate"),
            tax_config=c.get("taxConfig"),
            **owner,
        )
        for i, c in enumerate(cards)
    ]


def rate_card_as_input(card: RateCard) -> dict[str, Any]:
    """A stored rate card back in input shape (to copy it into a new version or a subscription)."""
    return {
        "type": card.type,
        "key": card.key,
        "name": card.name,
        "description": card.description,
        "metadata": card.metadata,
        "featureKey": card.feature_key,
        "billingCadence": card.billing_cadence,
        "price": card.price_json,
        "discounts": card.discounts_json,
        "entitlementTemplate": card.entitlement_template_json,
        "taxConfig": card.tax_config,
    }
