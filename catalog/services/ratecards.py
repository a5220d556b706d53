"""Rate card rules shared by plan phases, add-ons and subscription items.

Services take rate cards as `RateCardInput` (the API's `validate_rate_card` and the admin's forms build them). The
price, discounts, entitlement template and tax settings stay in the stored JSON shape, which
`catalog.pricing_models` reads into typed objects.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RateCardInput:
    type: str  # flat_fee or usage_based
    key: str
    name: str
    billing_cadence: str | None  # ISO 8601 duration; None: a one-time fee
    price: dict[str, Any] | None
    feature_key: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    discounts: dict[str, Any] | None = None
    entitlement_template: dict[str, Any] | None = None
    tax_config: dict[str, Any] | None = None


def features_by_key(keys: Iterable[str | None]) -> dict[str, Feature]:
    wanted = {k for k in keys if k}
    return {f.key: f for f in Feature.objects.filter(key__in=wanted, archived_at__isnull=True).select_related("meter")}


def rate_card_problems(card: RateCardInput, features: dict[str, Feature], field: str) -> list[str]:
    """Rules a rate card must satisfy to be saved at all; each message starts with the field path."""
    price = price_from_json(card.price)
    problems = [f"{field}.{p}" for p in price_problems(price)]
    feature_key = card.feature_key
    feature = features.get(feature_key) if feature_key else None
    if feature_key and feature is None:
        problems.append(f"{field}.featureKey: no feature with key {feature_key!r}")
    usage_priced = card.type == "usage_based" and price is not None and not isinstance(price, FlatPrice)
    if usage_priced and not feature_key:
        problems.append(f"{field}.featureKey: a usage-based price needs a feature with a meter")
    elif usage_priced and feature is not None and feature.meter_id is None:
        problems.append(f"{field}.featureKey: feature {feature_key!r} has no meter, so usage cannot be priced")
    template = entitlement_template_from_json(card.entitlement_template)
    if template is not None and not feature_key:
        problems.append(f"{field}.entitlementTemplate: an entitlement template needs a featureKey")
    if isinstance(template, MeteredTemplate) and feature is not None and feature.meter_id is None:
        problems.append(f"{field}.entitlementTemplate: a metered entitlement needs a feature with a meter")
    return problems


def check_rate_cards(cards: Sequence[RateCardInput], field: str) -> dict[str, Feature]:
    """Unique keys and per-card rules; raises one InvalidInput naming every problem. Returns the features used."""
    features = features_by_key(c.feature_key for c in cards)
    problems: list[str] = []
    seen: set[str] = set()
    for i, card in enumerate(cards):
        if card.key in seen:
            problems.append(f"{field}[{i}].key: duplicate rate card key {card.key!r}")
        seen.add(card.key)
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


def cadence_problems(cards: Sequence[RateCardInput], cadence: str, must_align: bool, field: str) -> list[str]:
    """Publish-time rule: recurring rate cards bill on the plan's cadence (or, unaligned, a multiple or fraction)."""
    problems = []
    for card in cards:
        card_cadence = card.billing_cadence
        where = f"{field}.rateCards.{card.key}.billingCadence"
        if card_cadence is None:
            continue
        if must_align and card_cadence != cadence:
            problems.append(f"{where}: must equal the billing cadence {cadence} (billablesMustAlign)")
        elif not (is_multiple_of(cadence, card_cadence) or is_multiple_of(card_cadence, cadence)):
            problems.append(f"{where}: {card_cadence} and {cadence} are not multiples of each other")
    return problems


def rate_card_rows(cards: Sequence[RateCardInput], features: dict[str, Feature], **owner: Any) -> list[RateCard]:
    return [
        RateCard(
            index=i,
            type=c.type,
            key=c.key,
            name=c.name,
            description=c.description,
            metadata=c.metadata,
            feature=features.get(c.feature_key) if c.feature_key else None,
            feature_key=c.feature_key,
            billing_cadence=c.billing_cadence,
            price_json=c.price,
            discounts_json=c.discounts,
            entitlement_template_json=c.entitlement_template,
            tax_config=c.tax_config,
            **owner,
        )
        for i, c in enumerate(cards)
    ]


def rate_card_as_input(card: RateCard) -> RateCardInput:
    """A stored rate card back as input (to copy it into a new version or a subscription)."""
    return RateCardInput(
        type=card.type,
        key=card.key,
        name=card.name,
        description=card.description,
        metadata=card.metadata,
        feature_key=card.feature_key,
        billing_cadence=card.billing_cadence,
        price=card.price_json,
        discounts=card.discounts_json,
        entitlement_template=card.entitlement_template_json,
        tax_config=card.tax_config,
    )
