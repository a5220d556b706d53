"""Back office for features (plans and add-ons have their own admin modules)."""

from django.contrib import admin, messages

from catalog.features import feature_archive
from catalog.models import Feature


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "meter_slug", "archived_at", "created_at"]
    list_filter = [("archived_at", admin.EmptyFieldListFilter), "meter_slug"]
    search_fields = ["key", "name", "meter_slug"]
    readonly_fields = ["id", "key", "meter", "meter_slug", "meter_group_by_filters", "created_at", "updated_at",
                       "archived_at"]
    fields = ["id", "key", "name", "metadata", "meter", "meter_slug", "meter_group_by_filters",
              "advanced_meter_group_by_filters", "unit_cost", "created_at", "updated_at", "archived_at"]
    actions = ["archive"]

    def has_add_permission(self, request) -> bool:
        return False  # created through the API, which validates the meter and filters

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Archive selected features (no new entitlements)")
    def archive(self, request, queryset):
        count = 0
        for feature in queryset.filter(archived_at__isnull=True):
            feature_archive(feature=feature)
            count += 1
        self.message_user(request, f"Archived {count} feature(s).", level=messages.INFO)
