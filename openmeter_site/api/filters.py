"""django-filter filters that read the query string the way the SDKs send it (see `params.py`): repeated keys for
lists, `true`/`1`/`false`/`0` booleans. A bad value is the same 400 problem as everywhere
else: the field raises `InvalidInput` naming the query parameter while the filter form cleans it."""

from typing import Any

import django_filters
from django import forms

from openmeter_site.api.params import parse_bool


class _ParamField(forms.Field):
    def __init__(self, *, param: str, **kwargs: Any) -> None:
        self.param = param
        super().__init__(**kwargs)  # django-filter passes required=False


class BooleanParamField(_ParamField):
    def clean(self, value: Any) -> bool:  # absent: False
        return parse_bool(value, self.param)


class ListParamField(_ParamField):
    widget = forms.SelectMultiple  # every value of a repeated key

    def clean(self, value: Any) -> list[str]:
        return [v for v in value or [] if v != ""]


class BooleanParamFilter(django_filters.Filter):
    """A flag; a `method` filter is called with False when the flag is absent."""

    field_class = BooleanParamField


class ListParamFilter(django_filters.Filter):
    field_class = ListParamField
