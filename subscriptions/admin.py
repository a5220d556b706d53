"""Back office for subscriptions. A subscription changes only through the operator actions on its page (change
plan, cancel, continue, buy or change an add-on, delete a scheduled one) and the customer's "Subscribe", each
calling the same service as the API; its phases, items and add-ons are shown read-only with times in the
operator's zone and prices as money."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from catalog.models import Addon, CatalogStatus, Plan, PlanAddon
from catalog.services.versioning import status_q
from customers.models import Customer
from openmeter_site.admin_ui.actions import ActionForm, ObjectAction, ObjectActionsMixin, confirm_bulk, for_each_selected
from openmeter_site.admin_ui.display import duration_text, money_text, period, when, when_text
from openmeter_site.admin_ui.filters import duration_filter
from openmeter_site.admin_ui.forms import LocalDateTimeField
from subscriptions import admin_plans  # noqa: F401  (plans with their subscriptions)
from subscriptions.models import Subscription, SubscriptionAddon, SubscriptionStatus
from subscriptions.selectors import subscription_status_q
from subscriptions.services.addons import (
    addon_quantity_timeline,
    subscription_addon_create,
    subscription_addon_quantity_at,
    subscription_addon_update,
)
from subscriptions.services.lifecycle import (
    SubscriptionOptions,
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_delete,
    subscription_unschedule_cancelation,
)
from subscriptions.services.timeline import IMMEDIATE, NEXT_BILLING_CYCLE, billing_period_at, item_spans, phase_spans

# --- the forms of the operator actions ---------------------------------------------------------------------------


class PlanChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.key} v{obj.version}) · {obj.currency} · billed every {duration_text(obj.billing_cadence)}"


def active_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(status_q(CatalogStatus.ACTIVE, timezone.now()), deleted_at__isnull=True).order_by(
        "name", "version")


def period_end_text(subscription: Subscription) -> str:
    end = billing_period_at(subscription, timezone.now()).end
    if subscription.active_to is not None:
        end = min(end, subscription.active_to)
    return when_text(end)


def timing_choices(subscription: Subscription) -> list[tuple[str, str]]:
    return [(IMMEDIATE, "Now"), (NEXT_BILLING_CYCLE, f"At the end of the billing period ({period_end_text(subscription)})")]


class SubscribeForm(ActionForm):
    """Subscribe a customer (the action's record) to a published plan version."""

    plan = PlanChoiceField(queryset=Plan.objects.none(), help_text="Published plan versions in effect now.")
    start_at = LocalDateTimeField(label="Start", help_text="In your time zone. Empty: now.")
    billing_anchor = LocalDateTimeField(
        help_text="In your time zone. Billing periods recur from this moment (e.g. the 1st of a month). Empty: the "
                  "start.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = active_plans()  # type: ignore[attr-defined]


def subscribe(request: HttpRequest, customer: Customer, data: dict[str, Any]) -> str:
    plan: Plan = data["plan"]
    subscription = subscription_create(
        customer=customer.pk, plan_key=plan.key, plan_version=plan.version, timing=data["start_at"],
        options=SubscriptionOptions(billing_anchor=data["billing_anchor"]),
    )
    start = when_text(subscription.active_from)
    return f"{customer} is subscribed to {plan.name} ({plan.key} v{plan.version}) from {start}."


class ChangePlanForm(ActionForm):
    plan = PlanChoiceField(queryset=Plan.objects.none())
    timing = forms.ChoiceField(label="Switch", widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = active_plans().exclude(pk=self.obj.plan_id)  # type: ignore[attr-defined]
        self.fields["timing"].choices = timing_choices(self.obj)  # type: ignore[attr-defined]
        self.fields["timing"].initial = NEXT_BILLING_CYCLE


def change_plan(request: HttpRequest, subscription: Subscription, data: dict[str, Any]) -> str:
    plan: Plan = data["plan"]
    _, new = subscription_change(subscription_id=subscription.pk, timing=data["timing"], plan_key=plan.key,
                                 plan_version=plan.version)
    return (f"{subscription.customer} moves to {plan.name} ({plan.key} v{plan.version}) on "
            f"{when_text(new.active_from)}: the current subscription ends then and a new one starts.")


class CancelForm(ActionForm):
    timing = forms.ChoiceField(label="End", widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timing"].choices = timing_choices(self.obj)  # type: ignore[attr-defined]
        self.fields["timing"].initial = NEXT_BILLING_CYCLE


def cancel(request: HttpRequest, subscription: Subscription, data: dict[str, Any]) -> str:
    ended = subscription_cancel(subscription_id=subscription.pk, timing=data["timing"])
    assert ended.active_to is not None
    verb = "has ended" if ended.active_to <= timezone.now() else "will end"
    return f"{ended} {verb} on {when_text(ended.active_to)}."


def continue_subscription(request: HttpRequest, subscription: Subscription, data: dict[str, Any]) -> str:
    subscription_unschedule_cancelation(subscription_id=subscription.pk)
    return f"{subscription} continues: its scheduled end is removed."


def delete_scheduled(request: HttpRequest, subscription: Subscription, data: dict[str, Any]) -> str:
    subscription_delete(subscription_id=subscription.pk)
    return f"The scheduled subscription {subscription} is deleted; it will not start."


class AddonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.key} v{obj.version}, {obj.instance_type} instance)"


def offered_addons(subscription: Subscription) -> QuerySet[Addon]:
    """The add-ons this subscription may buy: its plan's (custom plans: any active add-on in its currency)."""
    active = Addon.objects.filter(status_q(CatalogStatus.ACTIVE, timezone.now()), deleted_at__isnull=True)
    if subscription.plan_id is not None:
        offered = PlanAddon.objects.filter(plan_id=subscription.plan_id, deleted_at__isnull=True).values("addon_id")
        active = active.filter(Q(pk__in=offered) | Q(pk__in=subscription.addons.values("addon_id")))
    return active.filter(currency=subscription.currency).order_by("name")


class AddonForm(ActionForm):
    addon = AddonChoiceField(queryset=Addon.objects.none())
    quantity = forms.IntegerField(min_value=0, initial=1, help_text="0 ends an add-on already bought.")
    timing = forms.ChoiceField(label="From", widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        offered = offered_addons(self.obj)
        self.fields["addon"].queryset = offered  # type: ignore[attr-defined]
        if len(offered) == 1:
            self.fields["addon"].initial = offered[0].pk
        self.fields["timing"].choices = timing_choices(self.obj)  # type: ignore[attr-defined]
        self.fields["timing"].initial = IMMEDIATE
        bought = [f"{sa.name}: {subscription_addon_quantity_at(sa, timezone.now())}" for sa in
                  self.obj.addons.prefetch_related("quantities").select_related("subscription")]
        if bought:
            self.fields["addon"].help_text = f"Bought now: {', '.join(bought)}."


def buy_or_change_addon(request: HttpRequest, subscription: Subscription, data: dict[str, Any]) -> str:
    addon: Addon = data["addon"]
    bought = SubscriptionAddon.objects.filter(subscription=subscription, addon=addon).first()
    if bought is None:
        subscription_addon_create(subscription_id=subscription.pk, addon_id=addon.pk, quantity=data["quantity"],
                                  timing=data["timing"], name=addon.name)
    else:
        subscription_addon_update(subscription_id=subscription.pk, subscription_addon_id=bought.pk,
                                  quantity=data["quantity"], timing=data["timing"])
    return f"{addon.name}: quantity {data['quantity']} on {subscription}."


def _status_is(*statuses: str) -> Any:
    return lambda subscription: subscription.status in statuses


SUBSCRIBE = ObjectAction(
    "subscribe", "Subscribe", run=subscribe, form=SubscribeForm,
    description="Subscribe the customer to a plan. Its entitlements are provisioned and its fees start to be "
                "billed from the start.",
    available=lambda customer: customer.deleted_at is None,
)


# --- the admin pages ---------------------------------------------------------------------------------------------


class SubscriptionStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(s.value, s.label) for s in SubscriptionStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        live = Q(deleted_at__isnull=True)
        condition = subscription_status_q(self.value(), timezone.now())
        if self.value() == SubscriptionStatus.INACTIVE:
            return queryset.filter(condition | ~live)
        return queryset.filter(condition & live)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubscriptionAddonInline(ReadOnlyInline):
    model = SubscriptionAddon
    fields = ["addon", "name", "quantity_timeline"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SubscriptionAddon]:
        return super().get_queryset(request).select_related("addon", "subscription__customer").prefetch_related(
            "quantities")

    @admin.display(description="quantity over time")
    def quantity_timeline(self, sa: SubscriptionAddon) -> SafeString:
        return format_html_join(", ", "{} from {}", ((s.quantity, when(s.start)) for s in addon_quantity_timeline(sa)))


def price_text(price: dict[str, Any] | None, currency: str) -> str:
    """A rate card's price as an operator reads it: "$49.00 flat, in advance", "$0.10 per unit"."""
    if not price:
        return "free"
    kind = price.get("type")
    if kind == "flat":
        term = "in arrears" if price.get("paymentTerm") == "in_arrears" else "in advance"
        return f"{money_text(price['amount'], currency, exact=True)} flat, {term}"
    if kind == "unit":
        return f"{money_text(price['amount'], currency, exact=True)} per unit"
    if kind == "package":
        return f"{money_text(price['amount'], currency, exact=True)} per {price.get('quantityPerPackage')} units"
    if kind == "tiered":
        return f"{price.get('mode', '')} tiers ({len(price.get('tiers') or [])})"
    return str(kind)


@admin.register(Subscription)
class SubscriptionAdmin(ObjectActionsMixin, admin.ModelAdmin):
    list_display = ["name", "customer", "plan", "status", "currency", "starts", "ends", "billed_every"]
    list_filter = [SubscriptionStatusFilter, "currency", duration_filter("billing_cadence", "billed every")]
    list_select_related = ["customer", "plan"]
    search_fields = ["id", "customer__key", "customer__name", "customer__id", "plan__key", "name"]
    date_hierarchy = "active_from"
    readonly_fields = ["id", "customer", "plan", "name", "description", "currency", "status", "starts", "ends",
                       "billed_every", "billing_anchor_at", "current_billing_period", "pro_rating_enabled",
                       "settlement_mode", "timeline", "deleted_at"]
    fields = readonly_fields
    inlines = [SubscriptionAddonInline]
    actions = ["cancel_now", "cancel_next_billing_cycle", "continue_subscription"]
    object_actions = (
        ObjectAction("change_plan", "Change plan", run=change_plan, form=ChangePlanForm,
                     description="End this subscription and start one on another plan (OpenMeter's change): now, "
                                 "or when the current billing period ends.",
                     available=_status_is(SubscriptionStatus.ACTIVE)),
        ObjectAction("addon", "Buy or change add-on", run=buy_or_change_addon, form=AddonForm,
                     available=_status_is(SubscriptionStatus.ACTIVE)),
        ObjectAction("cancel", "Cancel", run=cancel, form=CancelForm, destructive=True,
                     confirm="The subscription stops at the chosen time: its entitlements end and no further "
                             "periods are billed. Until it ends, “Continue” undoes this.",
                     available=_status_is(SubscriptionStatus.ACTIVE)),
        ObjectAction("continue", "Continue (undo the cancellation)", run=continue_subscription,
                     available=_status_is(SubscriptionStatus.CANCELED)),
        ObjectAction("delete", "Delete scheduled subscription", run=delete_scheduled, destructive=True,
                     confirm="The subscription has not started; deleting it means it never will.",
                     available=_status_is(SubscriptionStatus.SCHEDULED)),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).prefetch_related("phases__items")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        sub = self.get_object(request, object_id)
        page = {"title": f"{sub.name}: {sub.customer}", "subtitle": None} if sub else {}
        # nothing on the page is edited by hand: its actions are the buttons above
        page.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **page})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a customer is subscribed from its page ("Subscribe"), through the service

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return request.user.has_perm("subscriptions.change_subscription")

    @admin.display(description="starts", ordering="active_from")
    def starts(self, sub: Subscription) -> SafeString:
        return when(sub.active_from)

    @admin.display(description="ends", ordering="active_to")
    def ends(self, sub: Subscription) -> SafeString:
        return when(sub.active_to) if sub.active_to else format_html("{}", "open-ended")

    @admin.display(description="billed every", ordering="billing_cadence")
    def billed_every(self, sub: Subscription) -> str:
        return duration_text(sub.billing_cadence)

    @admin.display(description="billing anchor")
    def billing_anchor_at(self, sub: Subscription) -> SafeString:
        return when(sub.billing_anchor)

    @admin.display(description="current billing period")
    def current_billing_period(self, sub: Subscription) -> SafeString | str:
        if sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED):
            return "—"
        current = billing_period_at(sub, timezone.now())
        return period(current.start, current.end)

    @admin.display(description="timeline")
    def timeline(self, sub: Subscription) -> SafeString:
        rows = []
        for span in phase_spans(sub):
            for i, item in enumerate(item_spans(span) or [None]):
                rows.append((
                    span.phase.name if i == 0 else "", period(span.start, span.end) if i == 0 else "",
                    item.item.name if item else "—",
                    price_text(item.item.price_json, sub.currency) if item else "",
                    duration_text(item.item.billing_cadence) if item and item.item.billing_cadence else "one-time",
                    period(item.start, item.end) if item and (item.item.starts_at or item.item.ends_at) else "",
                ))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                rows)
        return format_html('<table class="om-timeline"><tr><th>phase</th><th>runs</th><th>item</th><th>price</th>'
                           "<th>billed every</th><th>item runs</th></tr>{}</table>", body)

    @admin.action(description="Cancel now")
    def cancel_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="cancel_now", title="Cancel subscriptions now",
                                    warning="These subscriptions end now: their entitlements end and nothing more "
                                            "is billed for them.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset, lambda s: subscription_cancel(subscription_id=s.pk),
                          done="Canceled {} now.")
        return None

    @admin.action(description="Cancel at the end of the billing period")
    def cancel_next_billing_cycle(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="cancel_next_billing_cycle",
                                    title="Cancel subscriptions at the end of their billing period",
                                    warning="These subscriptions end when their current billing period ends.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset,
                          lambda s: subscription_cancel(subscription_id=s.pk, timing=NEXT_BILLING_CYCLE),
                          done="Set {} to end at the end of the billing period.")
        return None

    @admin.action(description="Continue (undo a scheduled cancellation)")
    def continue_subscription(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        for_each_selected(self, request, queryset, lambda s: subscription_unschedule_cancelation(subscription_id=s.pk),
                          done="Undid the scheduled cancellation of {}.")
