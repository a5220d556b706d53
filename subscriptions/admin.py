"""Back office for subscriptions: per customer, with a timeline of phases and items, and the state actions
(cancel now / at the next billing cycle, continue) calling the same services as the API. History is
read-only: subscriptions change through those actions or the API's edit operations."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from openmeter_site.core.errors import DomainError
from openmeter_site.core.time import format_rfc3339
from subscriptions.models import Subscription, SubscriptionAddon, SubscriptionStatus
from subscriptions.selectors import subscription_status_q
from subscriptions.services.addons import addon_quantity_timeline
from subscriptions.services.lifecycle import subscription_cancel, subscription_unschedule_cancelation
from subscriptions.services.timeline import item_spans, phase_spans


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

    @admin.display(description="quantity over time")
    def quantity_timeline(self, sa: SubscriptionAddon) -> str:
        return ", ".join(
            f"{s.quantity} from {s.start:%Y-%m-%d %H:%M}" + (f" to {s.end:%Y-%m-%d %H:%M}" if s.end else "")
            for s in addon_quantity_timeline(sa)
        )


def _when(value: Any) -> str:
    return format_rfc3339(value) or "open-ended"


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "name", "plan", "status", "currency", "active_from", "active_to", "billing_cadence"]
    list_filter = [SubscriptionStatusFilter, "currency", "billing_cadence"]
    list_select_related = ["customer", "plan"]
    search_fields = ["id", "customer__key", "customer__name", "customer__id", "plan__key", "name"]
    date_hierarchy = "active_from"
    readonly_fields = [
        "id", "customer", "plan", "name", "description", "currency", "status", "active_from", "active_to",
        "billing_cadence", "billing_anchor", "pro_rating_enabled", "settlement_mode", "timeline", "deleted_at",
    ]
    fields = readonly_fields
    inlines = [SubscriptionAddonInline]
    actions = ["cancel_now", "cancel_next_billing_cycle", "continue_subscription"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subscriptions are created through the API (plan checks, overlap checks, provisioning)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="timeline")
    def timeline(self, sub: Subscription) -> str:
        rows = []
        for span in phase_spans(sub):
            items = ", ".join(
                f"{i.item.key} ({_when(i.start)} → {_when(i.end)})" if i.item.starts_at or i.item.ends_at else i.item.key
                for i in item_spans(span)
            )
            rows.append((span.phase.key, _when(span.start), _when(span.end), items or "—"))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>phase</th><th>from</th><th>to</th><th>items</th></tr>{}</table>", body)

    def _run(self, request: HttpRequest, queryset: QuerySet, action: Any, verb: str) -> None:
        for sub in queryset:
            try:
                action(sub)
            except DomainError as exc:
                self.message_user(request, f"{sub.pk}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{sub.pk} {verb}", messages.SUCCESS)

    @admin.action(description="Cancel now")
    def cancel_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._run(request, queryset, lambda s: subscription_cancel(subscription_id=s.pk), "canceled")

    @admin.action(description="Cancel at the end of the billing period")
    def cancel_next_billing_cycle(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._run(
            request, queryset, lambda s: subscription_cancel(subscription_id=s.pk, timing="next_billing_cycle"),
            "will end at the end of its billing period",
        )

    @admin.action(description="Continue (undo a scheduled cancellation)")
    def continue_subscription(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._run(request, queryset, lambda s: subscription_unschedule_cancelation(subscription_id=s.pk), "continues")
