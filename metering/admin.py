"""Back office for metering: meters (a typed form through the meter services; each meter's page runs a usage
query with a table and a chart), subjects, and the event browser (by subject or customer, with a chosen meter's
value per event)."""

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from customers.models import Customer
from metering import progress, services
from metering.admin_usage import MeterUsageForm, default_usage_query, run_usage_query
from metering.event_store import event_store
from metering.models import Event, Meter, MeterAggregation, Subject
from metering.postgres.events import event_readings
from metering.selectors import customers_of_subjects, meter_list_qs, subject_customers_for
from openmeter_site.admin_ui.actions import (
    ActionForm,
    ObjectAction,
    ObjectActionsMixin,
    confirm_bulk,
    editor_response,
    for_each_selected,
)
from openmeter_site.admin_ui.display import EMPTY, quantity, quantity_text, when
from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.admin_ui.forms import FieldsetsForm, KeyValueField
from openmeter_site.core.errors import DomainError, InvalidInput, ServiceUnavailable
from openmeter_site.core.ids import KEY_RE, is_ulid

METER_FIELDS = (("slug", "slug"), ("valueProperty", "value_property"), ("groupBy", "group_by"),
                ("aggregation", "aggregation"), ("eventType", "event_type"), ("meter with slug", "slug"))


class MeterCreateForm(FieldsetsForm):
    name = forms.CharField(max_length=256)
    slug = forms.RegexField(KEY_RE, max_length=64, label="Key", help_text="Used in the API and by features; fixed "
                                                                          "once created.")
    description = forms.CharField(max_length=1024, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    event_type = forms.CharField(max_length=256, help_text="The CloudEvents type this meter counts, e.g. prompt.")
    aggregation = forms.ChoiceField(choices=MeterAggregation.choices, initial=MeterAggregation.SUM)
    value_property = forms.CharField(max_length=512, required=False, label="Value",
                                     help_text="JSONPath into the event's data, e.g. $.tokens (not for COUNT).")
    group_by = KeyValueField(label="Group by", help_text="A name and the JSONPath of its value, e.g. model → "
                                                         "$.model.")
    metadata = KeyValueField()
    show_when = {"value_property": ("aggregation", tuple(a for a in MeterAggregation.values if a != "COUNT"))}


class MeterEditForm(ActionForm):
    name = forms.CharField(max_length=256)
    description = forms.CharField(max_length=1024, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    group_by = KeyValueField(label="Group by", help_text="Changing it rebuilds the meter's rollups (queries stay "
                                                         "exact meanwhile).")
    metadata = KeyValueField()


def _edit_meter(request: HttpRequest, meter: Meter, data: dict[str, Any]) -> str:
    services.meter_update(meter=meter, name=data["name"], description=data["description"] or None,
                          metadata=data["metadata"], group_by=data["group_by"])
    return f"Meter {meter.slug} saved."


def _rebuild(request: HttpRequest, meter: Meter, data: dict[str, Any]) -> str:
    services.meter_rebuild_rollups(meter=meter)
    return "Rollup rebuild started; queries read raw events until it ends."


def _delete_meter(request: HttpRequest, meter: Meter, data: dict[str, Any]) -> HttpResponse:
    services.meter_delete(meter=meter)
    messages.success(request, f"Meter {meter.slug} deleted; its events are kept.")
    return HttpResponseRedirect(reverse("admin:metering_meter_changelist"))


@admin.register(Meter)
class MeterAdmin(ObjectActionsMixin, admin.ModelAdmin):
    change_form_template = "admin/metering/meter/change_form.html"
    list_display = ["name", "slug", "aggregation", "event_type", "value_property", "rollup_state", "events_link"]
    list_display_links = ["name", "slug"]
    list_filter = ["aggregation", happened_filter("deleted_at", "deleted")]
    search_fields = ["slug", "name", "event_type"]
    fields = [("name", "slug"), ("aggregation", "event_type"), ("value_property", "event_from"), "group_by_rows",
              "description", "metadata_rows", ("rollup_state", "created"), "id"]
    readonly_fields = ["name", "slug", "aggregation", "event_type", "value_property", "event_from", "group_by_rows",
                       "description", "metadata_rows", "rollup_state", "created", "id"]
    actions = ["rebuild_rollups", "soft_delete"]
    object_actions = (
        ObjectAction("edit", "Edit", run=_edit_meter, form=MeterEditForm,
                     initial=lambda m: {"name": m.name, "description": m.description, "group_by": m.group_by,
                                        "metadata": m.metadata},
                     available=lambda m: m.deleted_at is None),
        ObjectAction("rebuild", "Rebuild rollups", run=_rebuild, available=lambda m: m.deleted_at is None,
                     confirm="Queries read raw events (slower, same results) until the rebuild ends."),
        ObjectAction("delete", "Delete", run=_delete_meter, destructive=True, available=lambda m: m.deleted_at is None,
                     confirm="The meter stops counting and leaves the API; its events are kept. Features priced on "
                             "it stop metering."),
    )

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request)  # changes go through the Edit action

    def has_object_action_permission(self, request, obj) -> bool:
        return super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # meters are soft-deleted (action), never removed with their history

    @admin.display(description="group by")
    def group_by_rows(self, meter: Meter) -> str:
        return ", ".join(f"{key} → {path}" for key, path in sorted(meter.group_by.items())) or "—"

    @admin.display(description="metadata")
    def metadata_rows(self, meter: Meter) -> str:
        return ", ".join(f"{k}: {v}" for k, v in (meter.metadata or {}).items()) or "—"

    @admin.display(description="created", ordering="created_at")
    def created(self, meter: Meter) -> str:
        return when(meter.created_at)

    @admin.display(description="events")
    def events_link(self, meter: Meter) -> str:
        return format_html('<a href="{}?meter={}">browse</a>', reverse("admin:metering_event_changelist"), meter.slug)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Meters", **(extra_context or {})})

    @admin.display(description="Rollups")
    def rollup_state(self, obj: Meter) -> str:
        if event_store().aggregates_ready(meter=obj):
            return "ready"
        try:
            found = progress.progress_get(progress.meter_build_id(obj.pk))
        except ServiceUnavailable:
            found = None
        if found is None or not found.total:
            return "building"
        return f"building ({100 * found.success // found.total}% of events)"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise Http404("not allowed")
        form = MeterCreateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            try:
                meter = services.meter_create(
                    slug=d["slug"], name=d["name"], description=d["description"] or None, metadata=d["metadata"],
                    aggregation=d["aggregation"], event_type=d["event_type"],
                    value_property=d["value_property"] or None, group_by=d["group_by"])
            except DomainError as exc:
                field = next((f for wire, f in METER_FIELDS if exc.detail.startswith(wire)), None)
                form.add_error(field, exc.detail)
            else:
                messages.success(request, f"Meter {meter.slug} created; it counts the events already stored too.")
                return HttpResponseRedirect(reverse("admin:metering_meter_change", args=[meter.pk]))
        return editor_response(self, request, form=form, title="Add meter", original=None, submit="Create meter",
                               cancel_url=reverse("admin:metering_meter_changelist"))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        meter = self.get_object(request, object_id)
        if meter is None:
            return super().change_view(request, object_id, form_url, extra_context)
        query = request.GET if "usage-start" in request.GET else default_usage_query(timezone.get_current_timezone())
        form = MeterUsageForm(query, meter=meter)
        usage = run_usage_query(meter, form) if form.is_valid() and meter.deleted_at is None else {}
        context = {"title": f"{meter.name} ({meter.slug})", "subtitle": None, "usage_form": form, "usage": usage}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    @admin.action(description="Rebuild rollups of selected meters")
    def rebuild_rollups(self, request, queryset):
        for meter in queryset.filter(deleted_at__isnull=True):
            services.meter_rebuild_rollups(meter=meter)
        self.message_user(request, "Rollup rebuild started; queries read raw events until it ends.")

    @admin.action(description="Delete selected meters (soft)")
    def soft_delete(self, request, queryset):
        confirmation = confirm_bulk(self, request, queryset, action="soft_delete", title="Delete meters",
                                    warning="The meters stop counting and leave the API; their events are kept.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset.filter(deleted_at__isnull=True),
                          lambda meter: services.meter_delete(meter=meter), done="Deleted {}.")
        return None


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
            cur.execute(  # the sum over the monthly partitions (-1: never analyzed)
                "SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'metering_event'::regclass"
            )
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


class MeterFilter(admin.SimpleListFilter):
    """Choose a meter: its events only, with the value it reads from each (and its group-by values)."""

    title = "meter (shows its value per event)"
    parameter_name = "meter"

    def lookups(self, request, model_admin):
        return [(m.slug, f"{m.name} ({m.aggregation})") for m in meter_list_qs()]

    def queryset(self, request, queryset):
        meter = self.meter()
        return queryset.filter(type=meter.event_type) if meter else queryset

    def meter(self) -> Meter | None:
        return meter_list_qs().filter(slug=self.value()).first() if self.value() else None


class CustomerFilter(admin.SimpleListFilter):
    """`?customer=<id>`: the customer's events, through usage attribution (its key and subject keys). Shown while
    set; a customer hub links here, and the search box finds customers by key or name too."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request, model_admin):
        customer = Customer.objects.filter(pk=self.value()).first() if self.value() else None
        return [(customer.pk, str(customer))] if customer else []

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(subject__in=customer_subjects([self.value()]))


def customer_subjects(customer_ids: list[str]) -> list[str]:
    try:
        return list(subject_customers_for(customer_ids=customer_ids))
    except InvalidInput:  # an unknown or deleted customer has no events
        return []


class EventChangeList(ChangeList):
    """Reads, for the page's events only, the customer each is attributed to and the chosen meter's readings."""

    def get_results(self, request):
        super().get_results(request)
        events = list(self.result_list)
        owners = customers_of_subjects(e.subject for e in events)
        names = dict(Customer.objects.filter(pk__in=set(owners.values())).values_list("pk", "name"))
        meter = next((f.meter() for f in self.filter_specs if isinstance(f, MeterFilter)), None)
        readings = event_readings(meter=meter, refs=[str(e.seq) for e in events]) if meter else {}
        for event in events:
            owner = owners.get(event.subject)
            event.customer = (owner, names.get(owner, owner)) if owner else None
            event.reading = readings.get(str(event.seq))


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events are history, written only by ingest."""

    list_display = ["event_time", "subject", "customer_link", "type", "data_text", "id", "source", "ingested"]
    list_display_links = ["event_time"]
    list_filter = [MeterFilter, CustomerFilter, EventTypeFilter, EventSourceFilter, "time"]
    search_fields = ["=subject", "=id"]
    search_help_text = "A subject or an event id (exact), or a customer's key, id or name: its events"
    ordering = ["-time", "-seq"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100
    fields = [("event_time", "ingested"), ("subject", "customer_link"), ("type", "source"), "id", "data_pretty",
              "readings"]
    readonly_fields = ["event_time", "ingested", "subject", "customer_link", "type", "source", "id", "data_pretty",
                       "readings"]

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Events", **(extra_context or {})})

    def get_list_display(self, request):
        if request.GET.get(MeterFilter.parameter_name):
            return ["event_time", "subject", "customer_link", "meter_value", "meter_groups", "type", "data_text",
                    "id", "source"]
        return self.list_display

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        customers = Customer.objects.filter(deleted_at__isnull=True).filter(
            Q(key=term) | Q(name__iexact=term) | (Q(pk=term.upper()) if is_ulid(term) else Q(pk__in=[])))
        subjects = customer_subjects(list(customers.values_list("pk", flat=True)))
        return queryset.filter(Q(subject=term) | Q(id=term) | Q(subject__in=subjects)), False

    @admin.display(description="time", ordering="time")
    def event_time(self, event: Event) -> str:
        return when(event.time)

    @admin.display(description="ingested", ordering="ingested_at")
    def ingested(self, event: Event) -> str:
        return when(event.ingested_at)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        title = {"title": f"Event {event.id}", "subtitle": None} if event else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **title})

    def get_object(self, request, object_id, from_field=None):
        event = super().get_object(request, object_id, from_field)
        if event is not None:
            owner = customers_of_subjects([event.subject]).get(event.subject)
            event.customer = (owner, Customer.objects.get(pk=owner).name) if owner else None
        return event

    @admin.display(description="data")
    def data_pretty(self, event: Event) -> str:
        return format_html('<pre class="om-json">{}</pre>', json.dumps(event.data, indent=2, sort_keys=True))

    @admin.display(description="counted by")
    def readings(self, event: Event) -> str:
        """What each live meter of the event's type reads from it."""
        lines = []
        for meter in meter_list_qs().filter(event_type=event.type):
            reading = event_readings(meter=meter, refs=[str(event.seq)]).get(str(event.seq))
            value = "not counted (no value)" if reading is None or reading.value is None else reading.value
            groups = ", ".join(f"{k}: {v}" for k, v in (reading.groups if reading else {}).items())
            lines.append(format_html("<div>{} ({}): <strong>{}</strong>{}</div>", meter.name, meter.aggregation,
                                     quantity_text(value) if isinstance(value, Decimal) else value,
                                     f" — {groups}" if groups else ""))
        return format_html_join("", "{}", ((line,) for line in lines)) if lines else "no meter counts events of this type"

    @admin.display(description="customer")
    def customer_link(self, event: Event) -> str:
        customer = getattr(event, "customer", None)
        if customer is None:
            return EMPTY
        return format_html('<a href="{}">{}</a>', reverse("admin:customers_customer_change", args=[customer[0]]),
                           customer[1])

    @admin.display(description="value")
    def meter_value(self, event: Event) -> str:
        reading = getattr(event, "reading", None)
        if reading is None or reading.value is None:
            return format_html('<span class="om-empty" title="{}">not counted</span>',
                               "the event has no value this meter can read")
        return quantity(reading.value) if isinstance(reading.value, Decimal) else reading.value

    @admin.display(description="groups")
    def meter_groups(self, event: Event) -> str:
        reading = getattr(event, "reading", None)
        groups = reading.groups if reading else {}
        return ", ".join(f"{k}: {v if v is not None else '—'}" for k, v in groups.items()) or EMPTY

    @admin.display(description="data")
    def data_text(self, event: Event) -> str:
        text = json.dumps(event.data, separators=(", ", ": ")) if event.data is not None else ""
        return format_html('<code class="om-json" title="{}">{}</code>', text, Truncator(text).chars(60))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
