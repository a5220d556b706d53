"""Add-ons (versioned like plans) and plan add-ons (which add-ons a plan sells, from which phase, how many)."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Addon, AddonInstanceType, CatalogStatus, Plan, PlanAddon, RateCard
from catalog.services.plans import plan_get
from catalog.services.ratecards import (
    RateCardInput,
    check_rate_cards,
    raise_problems,
    rate_card_as_input,
    rate_card_rows,
)
from catalog.services.versioning import (
    archive_version,
    get_version,
    next_version,
    publish_version,
    require_status,
    soft_delete,
)
from openmeter_site.core.errors import Conflict, InvalidInput, NotFound
from openmeter_site.core.money import is_currency


@dataclass(frozen=True)
class AddonInput:
    name: str
    instance_type: str
    rate_cards: list[RateCardInput]
    currency: str = "USD"
    description: str | None = None
    metadata: dict[str, str] | None = None


def _check(data: AddonInput) -> dict[str, Any]:
    problems = []
    if not is_currency(data.currency):
        problems.append(f"currency: unknown currency {data.currency!r}")
    raise_problems(problems)
    return check_rate_cards(data.rate_cards, "rateCards")


def addon_validation_errors(addon: Addon) -> list[dict[str, str]]:
    cards = addon.rate_cards.all()  # the prefetched rows, no query per add-on
    if not cards:
        return [{"field": "rateCards", "code": "addon_has_no_rate_cards", "message": "an add-on needs rate cards"}]
    if addon.instance_type != AddonInstanceType.MULTIPLE:
        return []
    # bought several times, a rate card is billed quantity times: only flat amounts can be multiplied (OpenMeter)
    return [
        {"field": f"rateCards[{card.key}].price", "code": "addon_multiple_instance_only_flat_price",
         "message": f"rate card {card.key!r}: an add-on with instanceType multiple allows only flat prices"}
        for card in cards if card.price_json and card.price_json.get("type") != "flat"
    ]


def addon_list_qs() -> QuerySet[Addon]:
    return Addon.objects.prefetch_related("rate_cards__feature")


def addon_get(*, id_or_key: str, include_latest: bool = False) -> Addon:
    return get_version(addon_list_qs(), id_or_key, include_latest=include_latest, label="add-on")


@transaction.atomic
def addon_create(*, key: str, data: AddonInput) -> Addon:
    features = _check(data)
    addon = Addon.objects.create(
        key=key,
        version=next_version(Addon, key),
        name=data.name,
        description=data.description,
        metadata=data.metadata,
        currency=data.currency,
        instance_type=data.instance_type,
    )
    RateCard.objects.bulk_create(rate_card_rows(data.rate_cards, features, addon=addon))
    return addon


@transaction.atomic
def addon_update(*, addon_id: str, data: AddonInput) -> Addon:
    addon = _locked(addon_id)
    require_status(addon, (CatalogStatus.DRAFT,), "updated", "add-on")
    features = _check(data)
    addon.name, addon.description, addon.metadata = data.name, data.description, data.metadata
    addon.instance_type = data.instance_type
    addon.save()
    addon.rate_cards.all().delete()
    RateCard.objects.bulk_create(rate_card_rows(data.rate_cards, features, addon=addon))
    return addon_get(id_or_key=addon.pk)


@transaction.atomic
def addon_edit(*, addon_id: str, edit: Callable[[AddonInput], AddonInput]) -> Addon:
    """Change one part of a draft add-on (its details, a rate card) from its current state, under its row lock."""
    addon = _locked(addon_id)
    return addon_update(addon_id=addon.pk, data=edit(addon_as_input(addon_get(id_or_key=addon.pk))))


@transaction.atomic
def addon_new_version(*, addon_id: str) -> Addon:
    """A draft copy of an add-on (its rate cards) as the next version of its key."""
    addon = addon_get(id_or_key=addon_id)
    return addon_create(key=addon.key, data=addon_as_input(addon))


@transaction.atomic
def addon_publish(*, addon_id: str, at: dt.datetime | None = None) -> Addon:
    addon = _locked(addon_id)
    require_status(addon, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED), "published", "add-on")
    errors = addon_validation_errors(addon)
    if errors:
        message = f"add-on {addon} cannot be published: {errors[0]['message']}"
        raise InvalidInput(message, extensions={"validationErrors": errors})
    return publish_version(addon, effective_from=at or timezone.now())


@transaction.atomic
def addon_archive(*, addon_id: str, at: dt.datetime | None = None) -> Addon:
    addon = _locked(addon_id)
    require_status(addon, (CatalogStatus.ACTIVE,), "archived", "add-on")
    return archive_version(addon, at=at or timezone.now())


@transaction.atomic
def addon_delete(*, addon_id: str, at: dt.datetime | None = None) -> None:
    addon = _locked(addon_id)
    if addon.deleted_at is not None:
        return
    require_status(addon, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED, CatalogStatus.ARCHIVED), "deleted", "add-on")
    soft_delete(addon, at=at or timezone.now())


def addon_as_input(addon: Addon) -> AddonInput:
    return AddonInput(
        name=addon.name,
        description=addon.description,
        metadata=addon.metadata,
        currency=addon.currency,
        instance_type=addon.instance_type,
        rate_cards=[rate_card_as_input(c) for c in addon.rate_cards.all()],
    )


def _locked(addon_id: str) -> Addon:
    addon = addon_get(id_or_key=addon_id, include_latest=True)
    return Addon.objects.select_for_update().get(pk=addon.pk)


# --- plan add-ons ---------------------------------------------------------------------------------------------


def plan_addon_list_qs(plan: Plan) -> QuerySet[PlanAddon]:
    return PlanAddon.objects.filter(plan=plan).select_related("addon").prefetch_related("addon__rate_cards")


def _check_link(plan: Plan, addon: Addon, from_plan_phase: str, max_quantity: int | None) -> None:
    problems = []
    if addon.currency != plan.currency:
        problems.append(f"addonId: add-on currency {addon.currency} does not match the plan's {plan.currency}")
    if addon.status != CatalogStatus.ACTIVE:
        problems.append(f"addonId: only published (active) add-ons can be added to a plan; {addon} is {addon.status}")
    if not plan.phases.filter(key=from_plan_phase).exists():
        problems.append(f"fromPlanPhase: the plan has no phase {from_plan_phase!r}")
    raise_problems([*problems, *_max_quantity_problems(addon, max_quantity)])


def _max_quantity_problems(addon: Addon, max_quantity: int | None) -> list[str]:
    if max_quantity is None:
        return []
    if addon.instance_type == AddonInstanceType.SINGLE:
        return ["maxQuantity: not applicable to an add-on with instanceType single"]
    return ["maxQuantity: must be at least 1"] if max_quantity < 1 else []


def _editable_plan(plan_id: str) -> Plan:
    plan = plan_get(id_or_key=plan_id, include_latest=True)
    require_status(plan, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED), "given add-ons", "plan")
    return plan


@transaction.atomic
def plan_addon_create(
    *, plan_id: str, addon_id: str, from_plan_phase: str, max_quantity: int | None = None,
    metadata: dict[str, str] | None = None,
) -> PlanAddon:
    plan = _editable_plan(plan_id)
    addon = addon_get(id_or_key=addon_id)
    _check_link(plan, addon, from_plan_phase, max_quantity)
    if PlanAddon.objects.filter(plan=plan, addon=addon, deleted_at__isnull=True).exists():
        raise Conflict(f"add-on {addon} is already assigned to plan {plan}")
    return PlanAddon.objects.create(
        plan=plan, addon=addon, from_plan_phase=from_plan_phase, max_quantity=max_quantity, metadata=metadata
    )


def plan_addon_get(*, plan_id: str, plan_addon_id: str) -> PlanAddon:
    """By the link's id or by the add-on's id or key."""
    plan = plan_get(id_or_key=plan_id, include_latest=True)
    qs = plan_addon_list_qs(plan).filter(deleted_at__isnull=True)
    found = qs.filter(pk=plan_addon_id).first() or qs.filter(addon_id=plan_addon_id).first()
    found = found or qs.filter(addon__key=plan_addon_id).order_by("-addon__version").first()
    if found is None:
        raise NotFound(f"plan add-on {plan_addon_id!r} not found for plan {plan}")
    return found


@transaction.atomic
def plan_addon_update(
    *, plan_id: str, plan_addon_id: str, from_plan_phase: str, max_quantity: int | None = None,
    metadata: dict[str, str] | None = None,
) -> PlanAddon:
    link = plan_addon_get(plan_id=plan_id, plan_addon_id=plan_addon_id)
    plan = _editable_plan(link.plan_id)
    problems = []
    if not plan.phases.filter(key=from_plan_phase).exists():
        problems.append(f"fromPlanPhase: the plan has no phase {from_plan_phase!r}")
    raise_problems([*problems, *_max_quantity_problems(link.addon, max_quantity)])
    link.from_plan_phase, link.max_quantity, link.metadata = from_plan_phase, max_quantity, metadata
    link.save()
    return link


@transaction.atomic
def plan_addon_delete(*, plan_id: str, plan_addon_id: str, at: dt.datetime | None = None) -> None:
    link = plan_addon_get(plan_id=plan_id, plan_addon_id=plan_addon_id)
    _editable_plan(link.plan_id)
    link.deleted_at = at or timezone.now()
    link.save(update_fields=["deleted_at", "updated_at"])
