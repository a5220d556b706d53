"""Typed forms and form fields for the back office, so that no operator edits JSON by hand: metadata as key/value rows,
ISO 8601 durations as a number and a unit, currencies from ISO 4217, times in the operator's zone."""

import re
from collections.abc import Mapping
from typing import Any

from babel import Locale
from django import forms
from django.core.exceptions import ValidationError
from django.utils.datastructures import MultiValueDict

from openmeter_site.core.lengths import DESCRIPTION_LENGTH
from openmeter_site.core.money import known_currencies

EXTRA_ROWS = 3


class KeyValueWidget(forms.Widget):
    template_name = "admin/admin_ui/widgets/key_value.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        pairs = list(value.items()) if isinstance(value, dict) else list(value or [])
        context["widget"]["rows"] = [(str(k), "" if v is None else str(v)) for k, v in pairs] + [("", "")] * EXTRA_ROWS
        return context

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> list[tuple[str, str]]:
        assert isinstance(data, MultiValueDict)  # form data (request.POST) always is
        keys, values = data.getlist(f"{name}__key"), data.getlist(f"{name}__value")
        return [(k.strip(), v) for k, v in zip(keys, values, strict=False) if k.strip() or v.strip()]

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return f"{name}__key" not in data


class KeyValueField(forms.Field):
    """String-to-string metadata, edited as rows of key and value. An empty row is ignored."""

    widget = KeyValueWidget

    def __init__(self, *, max_key_length: int = 256, max_value_length: int = 1024, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.max_key_length, self.max_value_length = max_key_length, max_value_length

    def prepare_value(self, value: Any) -> Any:
        return value or {}

    def to_python(self, value: Any) -> dict[str, str]:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        result: dict[str, str] = {}
        for key, val in value or []:
            if not key:
                raise ValidationError(f"The value {val!r} has no key.")
            if key in result:
                raise ValidationError(f"The key {key!r} is given twice.")
            if len(key) > self.max_key_length or len(val) > self.max_value_length:
                raise ValidationError(f"{key!r}: keys are at most {self.max_key_length} characters, values at most "
                                      f"{self.max_value_length}.")
            result[key] = val
        return result

    def has_changed(self, initial: Any, data: Any) -> bool:
        return (initial or {}) != self.to_python(data)


DURATION_UNITS = [("PT{}M", "minutes"), ("PT{}H", "hours"), ("P{}D", "days"), ("P{}W", "weeks"), ("P{}M", "months"),
                  ("P{}Y", "years")]
_SINGLE_UNIT = re.compile(r"^(P|PT)(\d+)([YMWDH])$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def _in_one_unit(value: str) -> tuple[int, str] | None:
    """P1Y6M → 18 months, P1W3D → 10 days, PT1H30M → 90 minutes: several units of one kind in the smallest of
    them. Months and days do not mix (a month has no fixed number of days): None."""
    match = _ISO_DURATION.match(value)
    if not match:
        return None
    years, months, weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
    kinds = [(years * 12 + months, "P{}M"), (weeks * 7 + days, "P{}D"), (hours * 60 + minutes, "PT{}M")]
    given = [(n, unit) for n, unit in kinds if n]
    return given[0] if len(given) == 1 else None


class DurationWidget(forms.MultiWidget):
    def __init__(self, attrs: dict[str, Any] | None = None, default_unit: str = "P{}D") -> None:
        self.default_unit = default_unit  # the unit offered while the number is empty
        super().__init__([forms.NumberInput(attrs={"min": 0, "style": "width:6em"}),
                          forms.Select(choices=DURATION_UNITS)], attrs)

    def decompress(self, value: str | None) -> list[Any]:
        match = _SINGLE_UNIT.match(value or "")
        if not match:
            in_one_unit = _in_one_unit(value or "")
            return list(in_one_unit) if in_one_unit else [None, self.default_unit]
        prefix, number, unit = match.groups()
        return [int(number), f"{prefix}{{}}{unit}"]


class DurationField(forms.MultiValueField):
    """An ISO 8601 duration (P30D, P1M, PT1H) entered as a number and a unit."""

    widget = DurationWidget

    def __init__(self, *, default_unit: str = "P{}D", **kwargs: Any) -> None:
        fields = (forms.IntegerField(min_value=0, max_value=100_000, required=False),
                  forms.ChoiceField(choices=DURATION_UNITS))
        kwargs.setdefault("widget", DurationWidget(default_unit=default_unit))
        super().__init__(fields, require_all_fields=False, **kwargs)

    def compress(self, data_list: list[Any]) -> str | None:
        if not data_list or data_list[0] in (None, ""):
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return None
        number, unit = data_list
        return unit.format(number)


class DescriptionField(forms.CharField):
    """A description as the API takes it: optional, at most the spec's 1024 characters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", DESCRIPTION_LENGTH)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "cols": 60}))
        super().__init__(**kwargs)


class CurrencyField(forms.ChoiceField):
    """An ISO 4217 code in use today; lower case is refused, as the API refuses it."""

    def __init__(self, **kwargs: Any) -> None:
        choices = [("", "—")] if not kwargs.get("required", True) else []
        super().__init__(choices=choices + [(c, c) for c in sorted(known_currencies())], **kwargs)


class FieldsetsForm(forms.Form):
    """A form shown in groups on an editor page (`actions.editor_response`): `fieldsets` is (title, description,
    field names); `show_when` lets the page (admin_ui/editor.js) show a field only for some choices of another."""

    fieldsets: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # field → (the choice field it depends on, the choices under which it is shown); the page hides the rest
    show_when: Mapping[str, tuple[str, tuple[str, ...]]] = {}

    def choice_field(self, name: str) -> forms.ChoiceField:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        return field

    def groups(self) -> list[dict[str, Any]]:
        sets = self.fieldsets or (("", "", tuple(self.fields)),)
        return [
            {"title": title, "description": description,
             "rows": [{"field": self[name], "when": self.show_when.get(name)} for name in names]}
            for title, description, names in sets
        ]


NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}  # babel territories that are no country


def country_choices() -> list[tuple[str, str]]:
    names = Locale("en").territories
    countries = sorted(((code, f"{name} ({code})") for code, name in names.items()
                        if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES), key=lambda c: c[1])
    return [("", "—"), *countries]


class CountryField(forms.ChoiceField):
    """An ISO 3166 two-letter country, chosen by its name."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(choices=country_choices, **kwargs)


class LocalDateTimeField(forms.DateTimeField):
    """A moment entered in the operator's time zone (the browser's date-time picker), stored as an aware datetime."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {**super().widget_attrs(widget), "step": 60}
