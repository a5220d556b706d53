"""Back office for metering: meters (rollup state, rebuild), subjects, and a read-only event browser."""

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

from metering import progress, services
from metering.models import Event, Meter, Subject
from metering.postgres.fold import progress_id
from openmeter_site.core.errors import InvalidInput


class MeterForm(forms.ModelForm):
    class Meta:
        model = Meter
        fields = [
            "slug",
            "name",
            "description",
            "aggregation",
            "event_type",
            "event_from",
            "value_property",
            "group_by",
            "metadata",
        ]

    def clean(self):
        data = super().clean()
        if self.instance._state.adding:
            try:
                services.meter_check_definition(
                    aggregation=data.get("aggregation") or "",
                    value_property=data.get("value_property"),
                    group_by=data.get("group_by") or {},
                )
            except InvalidInput as exc:
                raise forms.ValidationError(exc.detail) from exc
        return data


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    form = MeterForm
    list_display = [
        "slug",
        "name",
        "aggregation",
        "event_type",
        "value_property",
        "rollup_state",
        "created_at",
        "deleted_at",
    ]
    list_filter = ["aggregation", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name", "event_type"]
    readonly_fields = ["id", "rollup_state", "backfill_cursor", "created_at", "updated_at", "deleted_at"]
    fields = [
        "id",
        "slug",
        "name",
        "description",
        "aggregation",
        "event_type",
        "event_from",
        "value_property",
        "group_by",
        "metadata",
        "rollup_state",
        "backfill_cursor",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    actions = ["rebuild_rollups", "soft_delete"]

    def get_readonly_fields(self, request, obj=None):
        # slug, aggregation, event type and value property are fixed once created (as in the API)
        fixed = ["slug", "aggregation", "event_type", "event_from", "value_property", "group_by"] if obj else []
        return [*self.readonly_fields, *fixed]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # meters are soft-deleted (action), never removed with their history

    def save_model(self, request, obj, form, change):
        if change:
            services.meter_update(meter=obj, name=obj.name, description=obj.description, metadata=obj.metadata)
            return
        meter = services.meter_create(
            slug=obj.slug,
            aggregation=obj.aggregation,
            event_type=obj.event_type,
            name=obj.name,
            description=obj.description,
            metadata=obj.metadata,
            event_from=obj.event_from,
            value_property=obj.value_property,
            group_by=obj.group_by,
        )
        obj.pk = meter.pk

    @admin.display(description="Rollups")
    def rollup_state(self, obj: Meter) -> str:
        if obj.backfill_cursor is None:
            return "ready"
        found = progress.progress_get(progress_id(obj))
        if found is None or not found.total:
            return "building"
        return f"building ({100 * found.success // found.total}% of events)"

    @admin.action(description="Rebuild rollups of selected meters")
    def rebuild_rollups(self, request, queryset):
        for meter in queryset.filter(deleted_at__isnull=True):
            services.meter_rebuild_rollups(meter=meter)
        self.message_user(request, "Rollup rebuild started; queries read raw events until it ends.")

    @admin.action(description="Delete selected meters (soft)")
    def soft_delete(self, request, queryset):
        for meter in queryset.filter(deleted_at__isnull=True):
            services.meter_delete(meter=meter)
        self.message_user(request, "Meters deleted.", messages.SUCCESS)


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    list_display = ["key", "display_name", "stripe_customer_id", "created_at", "updated_at"]
    search_fields = ["key", "display_name", "stripe_customer_id"]
    readonly_fields = ["id", "created_at", "updated_at"]


class EstimatedCountPaginator(Paginator):
    """The unfiltered event table can hold millions of rows: use the planner's estimate instead of count(*)."""

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if query.where:
            return super().count
        with connection.cursor() as cur:
            cur.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'metering_event'")
            row = cur.fetchone()
        estimate = row[0] if row else -1
        return estimate if estimate > 10_000 else super().count


class EventTypeFilter(admin.SimpleListFilter):
    """Event types of the meters (a DISTINCT over the event table would scan it)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        types = Meter.objects.filter(deleted_at__isnull=True).values_list("event_type", flat=True).distinct()
        return [(t, t) for t in sorted(set(types))]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class EventSourceFilter(admin.SimpleListFilter):
    """Sources seen in the most recent events."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        recent = Event.objects.order_by("-seq").values_list("source", flat=True)[:1000]
        return [(s, s) for s in sorted(set(recent))]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events are history, written only by ingest."""

    list_display = ["seq", "time", "type", "subject", "source", "id", "ingested_at"]
    list_filter = [EventTypeFilter, EventSourceFilter, "time"]
    search_fields = ["=subject", "=id"]
    search_help_text = "Exact subject or event id"
    ordering = ["-seq"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
