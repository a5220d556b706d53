"""Back office for features: created on a typed form through `feature_create` (the API's service), read-only
afterwards (as upstream, a feature never changes), archived with a confirmation (never deleted)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from catalog.admin_forms import FeatureCreateForm
from catalog.admin_inputs import service_errors
from catalog.features import feature_archive, feature_create
from catalog.models import Feature, RateCard
from metering.selectors import meter_list_qs
from openmeter_site.admin_ui.actions import ObjectAction, ObjectActionsMixin, confirm_bulk, editor_response
from openmeter_site.admin_ui.display import money_text, when
from openmeter_site.admin_ui.filters import happened_filter
from openmeter_site.core.errors import DomainError

FEATURE_FIELDS = (("key", "key"), ("meterSlug", "meter"), ("meterGroupByFilters", "group_by_filters"),
                  ("advancedMeterGroupByFilters", "advanced_filters"), ("unitCost", "unit_cost"))


def filters_text(feature: Feature) -> str:
    advanced = feature.advanced_meter_group_by_filters or {}
    if advanced:
        return "; ".join(f"{key} {' and '.join(f'{op} {value}' for op, value in spec.items())}"
                         for key, spec in advanced.items())
    return ", ".join(f"{key} = {value}" for key, value in (feature.meter_group_by_filters or {}).items())


def unit_cost_text(feature: Feature) -> str:
    cost = feature.unit_cost or {}
    if cost.get("type") == "manual":
        return f"{money_text(cost.get('amount'), 'USD', exact=True)} per unit"
    if cost.get("type") == "llm":
        return "LLM prices: " + ", ".join(f"{k} {v}" for k, v in cost.items() if k != "type")
    return ""


def _archive(request: HttpRequest, feature: Feature, data: dict[str, Any]) -> str:
    feature_archive(feature=feature)
    return f"Feature {feature.key} is archived: existing entitlements keep working, new ones are refused."


@admin.register(Feature)
class FeatureAdmin(ObjectActionsMixin, admin.ModelAdmin):
    list_display = ["name", "key", "meter_slug", "filters", "unit_cost_shown", "state", "created"]
    list_display_links = ["name", "key"]
    list_filter = [happened_filter("archived_at", "archived"), "meter_slug"]
    search_fields = ["key", "name", "meter_slug"]
    fields = [("name", "key"), ("meter_link", "state"), "filters", "unit_cost_shown", "metadata_rows",
              "used_by", ("created", "archived"), "id"]
    readonly_fields = ["name", "key", "meter_link", "state", "filters", "unit_cost_shown", "metadata_rows",
                       "used_by", "created", "archived", "id"]
    actions = ["archive"]
    object_actions = (
        ObjectAction("archive", "Archive", run=_archive, destructive=True,
                     confirm="An archived feature can no longer be granted: existing entitlements keep working, "
                             "plans that price it can no longer be published.",
                     available=lambda f: f.archived_at is None),
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)  # features never change (as upstream)

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archived instead

    @admin.display(description="filters")
    def filters(self, feature: Feature) -> str:
        return filters_text(feature) or "—"

    @admin.display(description="unit cost")
    def unit_cost_shown(self, feature: Feature) -> str:
        return unit_cost_text(feature) or "—"

    @admin.display(description="status")
    def state(self, feature: Feature) -> str:
        status = "archived" if feature.archived_at else "active"
        return format_html('<span class="om-status om-status-{}">{}</span>', status, status)

    @admin.display(description="created", ordering="created_at")
    def created(self, feature: Feature) -> str:
        return when(feature.created_at)

    @admin.display(description="archived", ordering="archived_at")
    def archived(self, feature: Feature) -> str:
        return when(feature.archived_at)

    @admin.display(description="meter")
    def meter_link(self, feature: Feature) -> str:
        if feature.meter_id is None:
            return "none (not metered)"
        return format_html('<a href="{}">{}</a>', reverse("admin:metering_meter_change", args=[feature.meter_id]),
                           feature.meter_slug)

    @admin.display(description="metadata")
    def metadata_rows(self, feature: Feature) -> str:
        return ", ".join(f"{k}: {v}" for k, v in (feature.metadata or {}).items()) or "—"

    @admin.display(description="priced in")
    def used_by(self, feature: Feature) -> str:
        cards = RateCard.objects.filter(feature=feature).select_related("phase__plan", "addon")
        owners = sorted({str(c.phase.plan if c.phase else c.addon) for c in cards})
        return ", ".join(owners) or "no plan or add-on"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Features", **(extra_context or {})})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        feature = self.get_object(request, object_id)
        title = {"title": feature.name, "subtitle": None} if feature else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **title})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise Http404("not allowed")
        meters = [(m.slug, f"{m.name} ({m.slug}, {m.aggregation})") for m in meter_list_qs()]
        form = FeatureCreateForm(request.POST if request.method == "POST" else None, meters=meters)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            try:
                feature = feature_create(
                    key=d["key"], name=d["name"], meter_slug=d["meter"] or None, metadata=d["metadata"],
                    meter_group_by_filters=d["group_by_filters"] or None,
                    advanced_meter_group_by_filters=d["advanced_filters"] or None, unit_cost=form.unit_cost_input())
            except DomainError as exc:
                for field, message in service_errors(exc, prefix="", fields=FEATURE_FIELDS):
                    form.add_error(field, message)
            else:
                messages.success(request, f"Feature {feature.key} created.")
                return HttpResponseRedirect(reverse("admin:catalog_feature_change", args=[feature.pk]))
        return editor_response(self, request, form=form, title="Add feature", original=None, submit="Create feature",
                               cancel_url=reverse("admin:catalog_feature_changelist"))

    @admin.action(description="Archive selected features (no new entitlements)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Feature]) -> HttpResponse | None:
        live = queryset.filter(archived_at__isnull=True)
        confirmation = confirm_bulk(self, request, live, action="archive", title="Archive features",
                                    warning="Archived features can no longer be granted; existing entitlements "
                                            "keep working.")
        if confirmation is not None:
            return confirmation
        count = 0
        for feature in live:
            feature_archive(feature=feature)
            count += 1
        self.message_user(request, f"Archived {count} feature(s).", level=messages.INFO)
        return None
