"""The meter list's filters (query parameters as the spec names them)."""

from django_filters import FilterSet

from metering.models import Meter
from openmeter_site.api.filters import IncludeFilter


class MeterFilter(FilterSet):
    includeDeleted = IncludeFilter(field_name="deleted_at", param="includeDeleted")

    class Meta:
        model = Meter
        fields: list[str] = []
