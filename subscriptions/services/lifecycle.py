"""Creating, cancelling, changing and migrating subscriptions.

State rules (OpenMeter's `subscription/state.go`): only an active subscription may be edited, cancelled,
changed or migrated or given add-ons; only a canceled one (ending in the future) may be continued
(`unscheduleCancelation`); only a scheduled one may be deleted. Anything else is 403 Forbidden, as the
upstream server answers. A subscription that would overlap another one of the same customer is 409.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import CatalogStatus, Plan
from catalog.periods import Duration, add_duration, normalize_anchor, parse_duration
from catalog.services.plans import PlanInput, check_plan_input, plan_as_input, plan_input_validation_errors
from catalog.services.ratecards import RateCardInput
from customers.models import Customer
from openmeter_site.core.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed
from openmeter_site.core.ids import is_ulid
from subscriptions.events import subscription_changed
from subscriptions.models import Subscription, SubscriptionItem, SubscriptionPhase, SubscriptionStatus
from subscriptions.services import provisioning
from subscriptions.services.timeline import resolve_timing

ALLOWED = {
    "edit": (SubscriptionStatus.ACTIVE,),
    "cancel": (SubscriptionStatus.ACTIVE,),
    "change": (SubscriptionStatus.ACTIVE,),
    "add_addon": (SubscriptionStatus.ACTIVE,),
    "unschedule_cancelation": (SubscriptionStatus.CANCELED,),
    "delete": (SubscriptionStatus.SCHEDULED,),
}


@dataclass(frozen=True)
class SubscriptionOptions:
    """The optional parts of a create/change request."""

    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    starting_phase: str | None = None
    billing_anchor: dt.datetime | None = None
    settlement_mode: str | None = None
    billables_must_align: bool | None = None
    cost_basis_mode: str = "dynamic"


def require_action(subscription: Subscription, action: str, at: dt.datetime) -> None:
    status = subscription.status_at(at)
    if status not in ALLOWED[action]:
        raise Forbidden(f"transition {action} in state {status} is not allowed for subscription {subscription.pk}")


def refuse_deleting_a_subscribed_customer(customer: Customer, at: dt.datetime) -> None:
    """A customer with a subscription active at `at` cannot be deleted (upstream's 412
    `deleting_customer_with_active_subscriptions`); registered as a guard of `customers.services.customer_delete`."""
    active = list(
        Subscription.objects.filter(customer=customer, deleted_at__isnull=True, active_from__lte=at)
        .filter(Q(active_to__isnull=True) | Q(active_to__gt=at))
        .order_by("active_from")
        .values_list("pk", flat=True)
    )
    if active:
        raise PreconditionFailed(
            f"customer {customer} still has active subscriptions ({', '.join(active)}); cancel them before deleting "
            "the customer",
            extensions={"code": "deleting_customer_with_active_subscriptions", "subscriptions": active},
        )


def customer_resolve(id_or_key: str, *, lock: bool = False) -> Customer:
    qs = Customer.objects.filter(deleted_at__isnull=True)
    if lock:
        qs = qs.select_for_update()
    found = qs.filter(pk=id_or_key).first() if is_ulid(id_or_key) else None
    found = found or qs.filter(key=id_or_key).first()
    if found is None:
        raise NotFound(f"customer {id_or_key!r} not found")
    return found


def plan_resolve(*, key: str, version: int | None, at: dt.datetime) -> Plan:
    """A plan to subscribe to: the given version, or the version in effect now; it must be active."""
    versions = Plan.objects.filter(key=key, deleted_at__isnull=True)
    if version is not None:
        plan = versions.filter(version=version).first()
        if plan is None:
            raise NotFound(f"plan {key!r} version {version} not found")
    else:
        plan = next((p for p in versions.order_by("-version") if p.status_at(at) == CatalogStatus.ACTIVE), None)
        if plan is None:
            if not versions.exists():
                raise NotFound(f"plan {key!r} not found")
            raise InvalidInput(f"plan: {key!r} has no active version to subscribe to")
    status = plan.status_at(at)
    if status != CatalogStatus.ACTIVE:
        raise InvalidInput(f"plan: {plan} is {status}; only an active (published, not archived) plan can be subscribed to")
    return plan


def custom_plan_check(data: PlanInput) -> None:
    check_plan_input(data)
    errors = plan_input_validation_errors(data)
    if errors:
        detail = "; ".join(f"customPlan.{e['field']}: {e['message']}" for e in errors)
        raise InvalidInput(detail, extensions={"validationErrors": errors})


def subscription_conflict(message: str, *, code: str, field: str = "") -> Conflict:
    """A 409 with the spec's `SubscriptionErrorExtensions` (`validationErrors`: field, code, message)."""
    return Conflict(message, extensions={"validationErrors": [{"field": field, "code": code, "message": message}]})


def _check_no_overlap(customer: Customer, start: dt.datetime, *, ignore: str | None = None) -> None:
    """The new subscription is open-ended, so any live subscription still running at `start` overlaps."""
    clash = (
        Subscription.objects.filter(customer=customer, deleted_at__isnull=True)
        .filter(Q(active_to__isnull=True) | Q(active_to__gt=start))
        .exclude(pk=ignore)
        .order_by("active_from")
        .first()
    )
    if clash is not None:
        until = clash.active_to.isoformat() if clash.active_to else "open-ended"
        raise subscription_conflict(
            f"customer {customer} already has subscription {clash.pk} from {clash.active_from.isoformat()} "
            f"to {until}, which overlaps a subscription starting {start.isoformat()}", code="subscription_overlap")


def _check_currency(customer: Customer, currency: str) -> None:
    if customer.currency and customer.currency != currency:
        raise InvalidInput(f"currency: the plan is in {currency} but customer {customer} is billed in {customer.currency}")


def _phase_starts(data: PlanInput, start: dt.datetime, starting_phase: str | None) -> list[tuple[int, dt.datetime]]:
    """(phase index, start) for each phase: the start plus the durations of the phases before it."""
    first = 0
    if starting_phase is not None:
        keys = [p.key for p in data.phases]
        if starting_phase not in keys:
            raise InvalidInput(f"startingPhase: the plan has no phase {starting_phase!r}")
        first = keys.index(starting_phase)
    out = []
    offset = Duration()
    for i in range(first, len(data.phases)):
        out.append((i, add_duration(start, offset)))
        duration = data.phases[i].duration
        if duration is None:
            break
        offset = offset + parse_duration(duration)
    return out


def _write(
    customer: Customer, plan: Plan | None, data: PlanInput, start: dt.datetime, anchor: dt.datetime,
    options: SubscriptionOptions,
) -> Subscription:
    subscription = Subscription.objects.create(
        customer=customer,
        plan=plan,
        name=options.name or data.name,
        description=options.description if options.description is not None else data.description,
        metadata=options.metadata,
        currency=data.currency,
        active_from=start,
        billing_cadence=data.billing_cadence,
        billing_anchor=normalize_anchor(anchor, data.billing_cadence, start),
        pro_rating_enabled=data.pro_rating_enabled,
        pro_rating_mode=data.pro_rating_mode,
        settlement_mode=options.settlement_mode or data.settlement_mode,
        cost_basis_mode=options.cost_basis_mode,
        billables_must_align=(
            options.billables_must_align if options.billables_must_align is not None else data.billables_must_align
        ),
    )
    features = check_plan_input(data)
    for index, phase_start in _phase_starts(data, start, options.starting_phase):
        spec = data.phases[index]
        phase = SubscriptionPhase.objects.create(
            subscription=subscription,
            key=spec.key,
            name=spec.name,
            description=spec.description,
            metadata=spec.metadata,
            active_from=phase_start,
        )
        SubscriptionItem.objects.bulk_create([item_from_rate_card(phase, card, features) for card in spec.rate_cards])
    return subscription


def item_from_rate_card(
    phase: SubscriptionPhase, card: RateCardInput, features: dict[str, Any], starts_at: dt.datetime | None = None
) -> SubscriptionItem:
    return SubscriptionItem(
        phase=phase,
        key=card.key,
        type=card.type,
        name=card.name,
        description=card.description,
        metadata=card.metadata,
        feature=features.get(card.feature_key) if card.feature_key else None,
        feature_key=card.feature_key,
        billing_cadence=card.billing_cadence,
        price_json=card.price,
        discounts_json=card.discounts,
        entitlement_template_json=card.entitlement_template,
        tax_config=card.tax_config,
        starts_at=starts_at,
    )


def customer_currency_set_if_unset(subscription: Subscription) -> None:
    """A paid subscription (an item with a price) gives a customer without a currency its currency (upstream's
    `updateCustomerCurrencyIfNotSet`, on create and on every change)."""
    customer = subscription.customer
    if customer.currency:
        return
    if SubscriptionItem.objects.filter(phase__subscription=subscription, price_json__isnull=False).exists():
        customer.currency = subscription.currency
        customer.save(update_fields=["currency", "updated_at"])


def _subscribe(
    *, customer: Customer, plan: Plan | None, data: PlanInput, start: dt.datetime, anchor: dt.datetime | None,
    options: SubscriptionOptions, at: dt.datetime, replaces: str | None = None,
) -> Subscription:
    _check_currency(customer, data.currency)
    _check_no_overlap(customer, start, ignore=replaces)
    subscription = _write(customer, plan, data, start, anchor or start, options)
    customer_currency_set_if_unset(subscription)
    try:
        provisioning.sync_entitlements(subscription=subscription, at=at)
    except Conflict as exc:  # an entitlement the customer already has for a feature of the plan
        conflict = subscription_conflict(exc.detail, code="entitlement_conflict")
        conflict.extensions.update(exc.extensions)
        raise conflict from exc
    subscription_changed(subscription.pk, at)
    return subscription


def _start_of(timing: str | dt.datetime | None, at: dt.datetime) -> dt.datetime:
    if timing is None or timing == "immediate":
        return at
    if isinstance(timing, dt.datetime):
        if timing < at:
            raise InvalidInput("timing: a new subscription cannot start in the past")
        return timing
    raise InvalidInput("timing: a new subscription starts immediately or at a given time (not next_billing_cycle)")


@transaction.atomic
def subscription_create(
    *, customer: str, plan_key: str | None = None, plan_version: int | None = None,
    custom_plan: PlanInput | None = None, timing: str | dt.datetime | None = None,
    options: SubscriptionOptions | None = None, at: dt.datetime | None = None,
) -> Subscription:
    """Subscribe a customer (id or key) to a plan (key and optional version) or to a custom plan."""
    at = at or timezone.now()
    options = options or SubscriptionOptions()
    the_customer = customer_resolve(customer, lock=True)  # the lock serialises overlap checks per customer
    plan, data = _plan_and_input(plan_key, plan_version, custom_plan, at)
    start = _start_of(timing, at)
    return _subscribe(
        customer=the_customer, plan=plan, data=data, start=start, anchor=options.billing_anchor, options=options, at=at
    )


def _plan_and_input(
    plan_key: str | None, plan_version: int | None, custom_plan: PlanInput | None, at: dt.datetime
) -> tuple[Plan | None, PlanInput]:
    if custom_plan is not None:
        custom_plan_check(custom_plan)
        return None, custom_plan
    if plan_key is None:
        raise InvalidInput("plan: either plan or customPlan is required")
    plan = plan_resolve(key=plan_key, version=plan_version, at=at)
    return plan, plan_as_input(plan)


def subscription_get(*, subscription_id: str) -> Subscription:
    found = (
        Subscription.objects.filter(pk=subscription_id)
        .select_related("customer", "plan")
        .prefetch_related("phases__items__feature")
        .first()
    )
    if found is None:
        raise NotFound(f"subscription {subscription_id!r} not found")
    return found


def _locked(subscription_id: str) -> Subscription:
    subscription_get(subscription_id=subscription_id)
    return Subscription.objects.select_for_update(of=("self",)).select_related("customer", "plan").get(pk=subscription_id)


@transaction.atomic
def subscription_cancel(
    *, subscription_id: str, timing: str | dt.datetime | None = None, at: dt.datetime | None = None
) -> Subscription:
    """End the subscription now, at the end of the current billing period, or at a given time."""
    at = at or timezone.now()
    subscription = _locked(subscription_id)
    require_action(subscription, "cancel", at)
    subscription.active_to = resolve_timing(timing, subscription, at)
    subscription.save(update_fields=["active_to", "updated_at"])
    provisioning.sync_entitlements(subscription=subscription, at=at)
    subscription_changed(subscription.pk, at)
    return subscription_get(subscription_id=subscription.pk)


@transaction.atomic
def subscription_unschedule_cancelation(*, subscription_id: str, at: dt.datetime | None = None) -> Subscription:
    at = at or timezone.now()
    subscription = _locked(subscription_id)
    require_action(subscription, "unschedule_cancelation", at)
    next_one = Subscription.objects.filter(
        customer=subscription.customer, deleted_at__isnull=True, active_from__gte=subscription.active_to
    ).exclude(pk=subscription.pk).first()
    if next_one is not None:
        raise subscription_conflict(f"subscription {subscription.pk} is followed by {next_one.pk}; it cannot continue",
                                    code="subscription_followed")
    subscription.active_to = None
    subscription.save(update_fields=["active_to", "updated_at"])
    provisioning.sync_entitlements(subscription=subscription, at=at)
    subscription_changed(subscription.pk, at)
    return subscription_get(subscription_id=subscription.pk)


@transaction.atomic
def subscription_restore(*, subscription_id: str, at: dt.datetime | None = None) -> Subscription:
    """The deprecated `restore`: delete the scheduled subscriptions that follow this one, then continue it."""
    at = at or timezone.now()
    subscription = _locked(subscription_id)
    require_action(subscription, "unschedule_cancelation", at)
    followers = Subscription.objects.select_for_update().filter(
        customer=subscription.customer, deleted_at__isnull=True, active_from__gte=subscription.active_to
    ).exclude(pk=subscription.pk)
    for follower in followers:
        subscription_delete(subscription_id=follower.pk, at=at)
    return subscription_unschedule_cancelation(subscription_id=subscription.pk, at=at)


@transaction.atomic
def subscription_delete(*, subscription_id: str, at: dt.datetime | None = None) -> None:
    at = at or timezone.now()
    subscription = _locked(subscription_id)
    require_action(subscription, "delete", at)
    subscription.deleted_at = at
    subscription.save(update_fields=["deleted_at", "updated_at"])
    provisioning.sync_entitlements(subscription=subscription, at=at)
    subscription_changed(subscription.pk, at)


@transaction.atomic
def subscription_change(
    *, subscription_id: str, timing: str | dt.datetime, plan_key: str | None = None, plan_version: int | None = None,
    custom_plan: PlanInput | None = None, options: SubscriptionOptions | None = None, at: dt.datetime | None = None,
) -> tuple[Subscription, Subscription]:
    """End the current subscription at `timing` and start one on the new plan there (OpenMeter's change).

    The billing anchor carries over unless a new one is given, so the new subscription keeps the same
    billing periods; entitlements of the same feature carry usage over (see provisioning)."""
    at = at or timezone.now()
    options = options or SubscriptionOptions()
    current = _locked(subscription_id)
    require_action(current, "change", at)
    Customer.objects.select_for_update().get(pk=current.customer_id)
    plan, data = _plan_and_input(plan_key, plan_version, custom_plan, at)
    switch_at = resolve_timing(timing, current, at)
    current.active_to = switch_at
    current.save(update_fields=["active_to", "updated_at"])
    provisioning.sync_entitlements(subscription=current, at=at)  # end the old entitlements before the new start
    subscription_changed(current.pk, at)
    new = _subscribe(
        customer=current.customer, plan=plan, data=data, start=switch_at,
        anchor=options.billing_anchor or current.billing_anchor, options=options, at=at, replaces=current.pk,
    )
    return subscription_get(subscription_id=current.pk), subscription_get(subscription_id=new.pk)


@transaction.atomic
def subscription_migrate(
    *, subscription_id: str, target_version: int | None = None, timing: str | dt.datetime | None = None,
    starting_phase: str | None = None, billing_anchor: dt.datetime | None = None, at: dt.datetime | None = None,
) -> tuple[Subscription, Subscription]:
    """Move to a newer version of the same plan (default: the version in effect now)."""
    at = at or timezone.now()
    current = subscription_get(subscription_id=subscription_id)
    if current.plan is None:
        raise InvalidInput("a subscription to a custom plan cannot be migrated; use change")
    target = plan_resolve(key=current.plan.key, version=target_version, at=at)
    if target.version <= current.plan.version:
        raise InvalidInput(
            f"targetVersion: must be newer than the current version {current.plan.version}, got {target.version}"
        )
    options = SubscriptionOptions(
        name=current.name, description=current.description, metadata=current.metadata,
        starting_phase=starting_phase, billing_anchor=billing_anchor,
    )
    return subscription_change(
        subscription_id=subscription_id, timing=timing or "immediate", plan_key=target.key,
        plan_version=target.version, options=options, at=at,
    )
