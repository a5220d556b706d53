"""django-filter filters that read the query string the way the SDKs send it (see `params.py`): repeated keys for
lists, `true`/`1`/`false`/`0` booleans, RFC 3339 date-times. A bad value is the same 400 problem as everywhere
else: the field raises `InvalidInput` naming the query parameter while the filter form cleans it.
`OrderByFilter` orders a list by the spec's `order` and `orderBy`."""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from openmeter_site.api.params import get_choice, parse_bool
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import parse_rfc3339


class _ParamField(forms.Field):
    def __init__(self, *, param: str, **kwargs: Any) -> None:
        self.param = param
        super().__init__(**kwargs)  # django-filter passes required=False


class BooleanParamField(_ParamField):
    def __init__(self, *, default: bool = False, **kwargs: Any) -> None:
        self.default = default
        super().__init__(**kwargs)

    def clean(self, value: Any) -> bool:
        return parse_bool(value, self.param, self.default)


class ListParamField(_ParamField):
    widget = forms.SelectMultiple  # every value of a repeated key

    def clean(self, value: Any) -> list[str]:
        return [v for v in value or [] if v != ""]


class IdListParamField(ListParamField):
    def clean(self, value: Any) -> list[str]:
        return [v.upper() for v in super().clean(value)]


class ChoiceListParamField(ListParamField):
    def __init__(self, *, choices: Sequence[str], **kwargs: Any) -> None:
        self.allowed = list(choices)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> list[str]:
        values = super().clean(value)
        if unknown := sorted(set(values) - set(self.allowed)):
            raise InvalidInput(f"{self.param}: must be one of {', '.join(self.allowed)}, got {', '.join(unknown)}")
        return values


class DateTimeParamField(_ParamField):
    def clean(self, value: Any) -> dt.datetime | None:
        return None if value in (None, "") else parse_rfc3339(value, self.param)


class BooleanParamFilter(django_filters.Filter):
    """A flag; a `method` filter is called with `default` (False unless given) when the flag is absent."""

    field_class = BooleanParamField


class IncludeFilter(BooleanParamFilter):
    """`includeDeleted`, `includeArchived`, ...: rows whose `field_name` is set are left out unless the flag is true."""

    def filter(self, qs: QuerySet, value: bool) -> QuerySet:
        return qs if value else qs.filter(**{f"{self.field_name}__isnull": True})


class ListParamFilter(django_filters.Filter):
    field_class = ListParamField


class IdListParamFilter(django_filters.Filter):
    """A list of ULIDs as sent, in any case (ULIDs are stored upper-case): `customerId=01j…&customerId=01J…`."""

    field_class = IdListParamField


class ChoiceListParamFilter(django_filters.Filter):
    """A list whose values must be among `choices` (anything else is the 400 problem naming them)."""

    field_class = ChoiceListParamField


class DateTimeParamFilter(django_filters.Filter):
    field_class = DateTimeParamField


class OrderByFilter(BaseFilterBackend):
    """`order=ASC|DESC` and `orderBy=<spec enum>` onto the view's `order_by` (a view without one keeps its order)."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        order_by: Mapping[str, str] = getattr(view, "order_by", {})
        if not order_by:
            return queryset
        query = request.query_params
        key = get_choice(query, "orderBy", order_by.keys(), view.default_order_by) or view.default_order_by
        direction = get_choice(query, "order", ["ASC", "DESC", "asc", "desc"], "ASC") or "ASC"
        prefix = "-" if direction.upper() == "DESC" else ""
        return queryset.order_by(f"{prefix}{order_by[key]}", f"{prefix}pk")  # the pk breaks ties


class TextParamFilter(django_filters.CharFilter):
    """A text filter that keeps the value as sent (surrounding spaces too); empty means no filter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("strip", False)
        super().__init__(*args, **kwargs)
