"""Back office for the outbox: what is waiting or failed, why, and a retry."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from openmeter_site.outbox.models import DeliveryState, OutboxDelivery, OutboxEvent
from openmeter_site.outbox.services import deliveries_retry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "topic", "handler", "state", "attempts", "next_attempt_at", "event_created_at", "error"]
    list_filter = ["state", "handler", "event__topic"]
    search_fields = ["event__id", "handler", "last_error"]
    list_select_related = ["event"]
    fields = ["event", "handler", "state", "attempts", "next_attempt_at", "delivered_at", "last_error"]
    actions = ["retry_now"]

    @admin.display(description="topic", ordering="event__topic")
    def topic(self, obj: OutboxDelivery) -> str:
        return obj.event.topic

    @admin.display(description="event created", ordering="event__created_at")
    def event_created_at(self, obj: OutboxDelivery) -> Any:
        return obj.event.created_at

    @admin.display(description="last error")
    def error(self, obj: OutboxDelivery) -> str:
        lines = obj.last_error.strip().splitlines()
        return lines[-1][:200] if lines else ""

    @admin.action(description="Deliver selected again now (fresh attempt budget)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxDelivery]) -> None:
        count = deliveries_retry(delivery_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} delivery(ies) queued again; done ones are left alone.")


DELIVERY_COLUMNS = ("handler", "state", "attempts", "next_attempt_at", "delivered_at", "last_error")


class DeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    fields = DELIVERY_COLUMNS
    readonly_fields = DELIVERY_COLUMNS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "topic", "created_at", "undelivered"]
    list_filter = ["topic"]
    search_fields = ["id", "topic"]
    fields = ["id", "topic", "payload", "created_at"]
    inlines = [DeliveryInline]

    @admin.display(description="waiting or failed")
    def undelivered(self, obj: OutboxEvent) -> int:
        return sum(1 for d in obj.deliveries.all() if d.state != DeliveryState.DONE)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).prefetch_related("deliveries")
