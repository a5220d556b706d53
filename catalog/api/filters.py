"""List filters of the catalog endpoints (query parameters as the spec names them)."""

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import FilterSet

from catalog.models import Addon, CatalogStatus, Feature, Plan, PlanAddon
from catalog.services.versioning import status_q
from openmeter_site.api.filters import ChoiceListParamFilter, IncludeFilter, ListParamFilter
from openmeter_site.api.params import get_deep_object
from openmeter_site.core.errors import InvalidInput

ADDON_STATUSES = [CatalogStatus.DRAFT.value, CatalogStatus.ACTIVE.value, CatalogStatus.ARCHIVED.value]


class FeatureFilter(FilterSet):
    meterSlug = ListParamFilter(field_name="meter_slug", lookup_expr="in", param="meterSlug")
    includeArchived = IncludeFilter(field_name="archived_at", param="includeArchived")

    class Meta:
        model = Feature
        fields: list[str] = []


class _VersionFilter(FilterSet):
    """The filters plans and add-ons share: id, key, keyVersion[key]=version (a deepObject, read in
    `filter_queryset`), status, currency; deleted versions are left out unless asked for."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")
    id = ListParamFilter(lookup_expr="in", param="id")
    key = ListParamFilter(lookup_expr="in", param="key")
    currency = ListParamFilter(lookup_expr="in", param="currency")

    def with_statuses(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        now = timezone.now()
        wanted = Q()
        for s in value:
            wanted |= status_q(s, now)
        return qs.filter(wanted)

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        key_versions = Q()
        for raw_key in self.data:
            if raw_key.startswith("keyVersion["):
                key = raw_key[len("keyVersion[") : -1]
                versions = self.data.getlist(raw_key)
                if not all(v.isdigit() for v in versions):
                    raise InvalidInput(f"keyVersion[{key}]: versions must be integers")
                key_versions |= Q(key=key, version__in=[int(v) for v in versions])
        qs = super().filter_queryset(queryset)
        return qs.filter(key_versions) if get_deep_object(self.data, "keyVersion") else qs


class PlanFilter(_VersionFilter):
    status = ChoiceListParamFilter(method="with_statuses", param="status", choices=CatalogStatus.values)

    class Meta:
        model = Plan
        fields: list[str] = []


class AddonFilter(_VersionFilter):
    status = ChoiceListParamFilter(method="with_statuses", param="status", choices=ADDON_STATUSES)

    class Meta:
        model = Addon
        fields: list[str] = []


class PlanAddonFilter(FilterSet):
    """`id` and `key` name the add-on."""

    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")
    id = ListParamFilter(field_name="addon_id", lookup_expr="in", param="id")
    key = ListParamFilter(field_name="addon__key", lookup_expr="in", param="key")

    class Meta:
        model = PlanAddon
        fields: list[str] = []
