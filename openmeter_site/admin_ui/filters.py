"""Changelist filters in a billing person's words: whether a record was deleted, archived, voided, revoked
("By deleted: no / yes" where Django says "By deleted at: Empty / Not empty"), and durations as words ("1 month",
where Django lists the stored `P1M`)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from openmeter_site.admin_ui.display import duration_text


def happened_filter(field: str, title: str, *, no: str = "no", yes: str = "yes") -> type[admin.SimpleListFilter]:
    """Whether the time `field` is set: `happened_filter("deleted_at", "deleted")` lists "no" and "yes"."""

    class HappenedFilter(admin.SimpleListFilter):
        parameter_name = field.removesuffix("_at")

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [("no", no), ("yes", yes)]

        def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
            if self.value() in ("no", "yes"):
                return queryset.filter(**{f"{field}__isnull": self.value() == "no"})
            return queryset

    HappenedFilter.title = title
    return HappenedFilter


def duration_filter(field: str, title: str) -> type[admin.SimpleListFilter]:
    """The durations `field` holds, each as words ("every 1 month")."""

    class DurationFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            stored = model_admin.get_queryset(request).order_by().values_list(field, flat=True).distinct()
            return [(value, duration_text(value)) for value in sorted(v for v in stored if v)]

        def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    DurationFilter.title = title
    return DurationFilter
