"""Plans: create (a new version per key), update drafts, publish, archive, delete, copy to a new version.

Phases are ordered; each starts where the previous one ends, and only the last may be open-ended.
Rules that make a plan unusable for subscriptions (`plan_validation_errors`) do not stop a draft from
being saved: the draft shows them in `validationErrors`, and publishing refuses it (400).
"""

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import CatalogStatus, Feature, Plan, PlanPhase, RateCard
from catalog.periods import parse_duration
from catalog.services.ratecards import (
    RateCardInput,
    cadence_problems,
    check_rate_cards,
    features_by_key,
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
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.money import is_currency


@dataclass(frozen=True)
class PhaseInput:
    key: str
    name: str
    duration: str | None
    rate_cards: list[RateCardInput] = field(default_factory=list)
    description: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class PlanInput:
    """The body of PlanCreate / PlanReplaceUpdate / CustomPlanInput, validated and in Python names."""

    name: str
    billing_cadence: str
    phases: list[PhaseInput]
    currency: str = "USD"
    description: str | None = None
    metadata: dict[str, str] | None = None
    pro_rating_enabled: bool = True
    pro_rating_mode: str = "prorate_prices"
    billables_must_align: bool = True
    settlement_mode: str = "credit_then_invoice"


def check_plan_input(data: PlanInput) -> dict[str, Any]:
    """Rules every saved plan obeys (a 400 otherwise). Returns the features the rate cards use, by key."""
    problems: list[str] = []
    if not is_currency(data.currency):
        problems.append(f"currency: unknown currency {data.currency!r}")
    if parse_duration(data.billing_cadence).is_zero:
        problems.append("billingCadence: must not be zero")
    if not data.phases:
        problems.append("phases: a plan needs at least one phase")
    keys: set[str] = set()
    for i, phase in enumerate(data.phases):
        if phase.key in keys:
            problems.append(f"phases[{i}].key: duplicate phase key {phase.key!r}")
        keys.add(phase.key)
        if phase.duration is None and i != len(data.phases) - 1:
            problems.append(f"phases[{i}].duration: only the last phase may be open-ended")
        if phase.duration is not None and parse_duration(phase.duration).is_zero:
            problems.append(f"phases[{i}].duration: must not be zero")
    raise_problems(problems)
    features: dict[str, Any] = {}
    for i, phase in enumerate(data.phases):
        features |= check_rate_cards(phase.rate_cards, f"phases[{i}].rateCards")
    return features


def plan_validation_errors(plan: Plan) -> list[dict[str, str]]:
    """What stops a plan from being published (the spec's `validationErrors`). Uses prefetched rows only."""
    cards = [c for phase in plan.phases.all() for c in phase.rate_cards.all()]
    live = {
        c.feature_key: c.feature
        for c in cards
        if c.feature_key and c.feature is not None and c.feature.archived_at is None
    }
    return plan_input_validation_errors(plan_as_input(plan), live_features=live)


def plan_input_validation_errors(
    data: PlanInput, live_features: Mapping[str, Feature] | None = None
) -> list[dict[str, str]]:
    """Rules for a plan that subscriptions can use (published plans and custom plans alike)."""
    errors: list[dict[str, str]] = []
    if data.phases and data.phases[-1].duration is not None:
        errors.append(_error("phases", "plan_last_phase_not_open_ended", "the last phase must be open-ended (no duration)"))
    if live_features is None:
        live_features = features_by_key(c.feature_key for p in data.phases for c in p.rate_cards)
    for i, phase in enumerate(data.phases):
        field_ = f"phases[{i}]"
        if not phase.rate_cards:
            errors.append(_error(f"{field_}.rateCards", "plan_phase_has_no_rate_cards", "a phase needs rate cards"))
        cadence_issues = cadence_problems(phase.rate_cards, data.billing_cadence, data.billables_must_align, field_)
        for problem in cadence_issues:
            path, _, message = problem.partition(": ")
            errors.append(_error(path, "rate_card_billing_cadence_unaligned", message))
        errors += [
            _error(f"{field_}.rateCards.{c.key}.featureKey", "feature_archived", f"feature {c.feature_key} is archived")
            for c in phase.rate_cards  # features that no longer resolve were archived after the draft was saved
            if c.feature_key and c.feature_key not in live_features
        ]
    return errors


def _error(field_: str, code: str, message: str) -> dict[str, str]:
    return {"field": field_, "code": code, "message": message}


def _write_phases(plan: Plan, phases: list[PhaseInput], features: dict[str, Any]) -> None:
    for i, phase_in in enumerate(phases):
        phase = PlanPhase.objects.create(
            plan=plan,
            index=i,
            key=phase_in.key,
            name=phase_in.name,
            description=phase_in.description,
            metadata=phase_in.metadata,
            duration=phase_in.duration,
        )
        RateCard.objects.bulk_create(rate_card_rows(phase_in.rate_cards, features, phase=phase))


def _plan_fields(data: PlanInput) -> dict[str, Any]:
    return {
        "name": data.name,
        "description": data.description,
        "metadata": data.metadata,
        "billing_cadence": data.billing_cadence,
        "pro_rating_enabled": data.pro_rating_enabled,
        "pro_rating_mode": data.pro_rating_mode,
        "billables_must_align": data.billables_must_align,
        "settlement_mode": data.settlement_mode,
    }


@transaction.atomic
def plan_create(*, key: str, data: PlanInput) -> Plan:
    """A new draft: version 1 for a new key, else the next version (at most one draft per key)."""
    features = check_plan_input(data)
    plan = Plan.objects.create(key=key, version=next_version(Plan, key), currency=data.currency, **_plan_fields(data))
    _write_phases(plan, data.phases, features)
    return plan


def plan_get(*, id_or_key: str, include_latest: bool = False) -> Plan:
    return get_version(plan_list_qs(), id_or_key, include_latest=include_latest, label="plan")


def plan_list_qs():
    return Plan.objects.prefetch_related("phases__rate_cards__feature")


@transaction.atomic
def plan_update(*, plan_id: str, data: PlanInput) -> Plan:
    """Replace a draft or scheduled plan's fields and phases (its currency is fixed at creation)."""
    plan = _locked(plan_id)
    require_status(plan, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED), "updated", "plan")
    if data.currency != plan.currency:
        raise InvalidInput("currency: a plan's currency cannot be changed; create a new plan")
    features = check_plan_input(data)
    for name, value in _plan_fields(data).items():
        setattr(plan, name, value)
    plan.save()
    plan.phases.all().delete()
    _write_phases(plan, data.phases, features)
    return plan_get(id_or_key=plan.pk)


@transaction.atomic
def plan_edit(*, plan_id: str, edit: Callable[[PlanInput], PlanInput]) -> Plan:
    """Change one part of a draft (its details, a phase, a rate card) from its current state: the plan is read and
    replaced under its row lock, so two operators editing different parts both keep their change."""
    plan = _locked(plan_id)
    return plan_update(plan_id=plan.pk, data=edit(plan_as_input(plan_get(id_or_key=plan.pk))))


@transaction.atomic
def plan_publish(*, plan_id: str, at: dt.datetime | None = None) -> Plan:
    plan = _locked(plan_id)
    require_status(plan, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED), "published", "plan")
    errors = plan_validation_errors(plan)
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidInput(f"plan {plan} cannot be published: {detail}", extensions={"validationErrors": errors})
    return publish_version(plan, effective_from=at or timezone.now())


@transaction.atomic
def plan_archive(*, plan_id: str, at: dt.datetime | None = None) -> Plan:
    plan = _locked(plan_id)
    require_status(plan, (CatalogStatus.ACTIVE,), "archived", "plan")
    return archive_version(plan, at=at or timezone.now())


@transaction.atomic
def plan_delete(*, plan_id: str, at: dt.datetime | None = None) -> None:
    plan = _locked(plan_id)
    if plan.deleted_at is not None:
        return
    require_status(plan, (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED, CatalogStatus.ARCHIVED), "deleted", "plan")
    soft_delete(plan, at=at or timezone.now())


@transaction.atomic
def plan_new_version(*, plan_id: str) -> Plan:
    """A draft copy of a plan (phases, rate cards, add-on links) as the next version of its key."""
    plan = plan_get(id_or_key=plan_id)
    draft = plan_create(key=plan.key, data=plan_as_input(plan))
    for link in plan.plan_addons.filter(deleted_at__isnull=True):
        draft.plan_addons.create(
            addon=link.addon, from_plan_phase=link.from_plan_phase, max_quantity=link.max_quantity, metadata=link.metadata
        )
    return draft


def plan_next(*, plan_id_or_key: str) -> Plan:
    """The deprecated `POST /plans/{planIdOrKey}/next`: a new draft from the latest published version only."""
    plan = plan_get(id_or_key=plan_id_or_key)
    newer = Plan.objects.filter(
        key=plan.key, version__gt=plan.version, effective_from__isnull=False, deleted_at__isnull=True
    )
    if plan.effective_from is None or newer.exists():
        raise InvalidInput(f"plan {plan.pk} is not the latest published version of {plan.key!r}")
    return plan_new_version(plan_id=plan.pk)


def plan_as_input(plan: Plan) -> PlanInput:
    return PlanInput(
        name=plan.name,
        description=plan.description,
        metadata=plan.metadata,
        currency=plan.currency,
        billing_cadence=plan.billing_cadence,
        pro_rating_enabled=plan.pro_rating_enabled,
        pro_rating_mode=plan.pro_rating_mode,
        billables_must_align=plan.billables_must_align,
        settlement_mode=plan.settlement_mode,
        phases=[
            PhaseInput(
                key=p.key,
                name=p.name,
                description=p.description,
                metadata=p.metadata,
                duration=p.duration,
                rate_cards=[rate_card_as_input(c) for c in p.rate_cards.all()],
            )
            for p in plan.phases.all()
        ],
    )


def _locked(plan_id: str) -> Plan:
    plan = plan_get(id_or_key=plan_id, include_latest=True)
    return Plan.objects.select_for_update().get(pk=plan.pk)
