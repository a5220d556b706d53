"""Serializer fields for the spec's wire types."""

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from rest_framework import serializers

from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.fields import fits_column, normalized
from openmeter_site.core.ids import KEY_RE
from openmeter_site.core.time import format_rfc3339, parse_rfc3339


def decimal_to_str(value: Decimal) -> str:
    """`Decimal('10.5000')` → `"10.5"`, never an exponent."""
    text = format(normalized(value), "f")
    return "0" if text in {"-0", ""} else text


class RFC3339Field(serializers.Field):
    default_error_messages = {"invalid": "invalid RFC 3339 date-time"}

    def to_internal_value(self, data: Any) -> dt.datetime:
        try:
            return parse_rfc3339(data, self.field_name or "time")
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.detail) from exc

    def to_representation(self, value: dt.datetime) -> str | None:
        return format_rfc3339(value)


class NumericField(serializers.Field):
    """The spec's `Numeric`: a decimal string in JSON, a Decimal in Python. Numbers are accepted too."""

    def __init__(self, *, min_value: Decimal | None = None, **kwargs: Any) -> None:
        self.min_value = min_value
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, str | int | Decimal):
            raise serializers.ValidationError("expected a decimal number as a string, e.g. \"12.50\"")
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation as exc:
            raise serializers.ValidationError(f"not a decimal number: {data!r}") from exc
        if not value.is_finite():
            raise serializers.ValidationError("must be a finite number")
        if not fits_column(value):  # what the NUMERIC columns hold; prices in JSON are kept to it too
            raise serializers.ValidationError("out of range: must be less than 1E+19 in magnitude")
        if self.min_value is not None and value < self.min_value:
            raise serializers.ValidationError(f"must be at least {self.min_value}")
        return value

    def to_representation(self, value: Decimal) -> str:
        return decimal_to_str(Decimal(value))


class MetadataField(serializers.DictField):
    """`Metadata`: a map of string to string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.CharField(allow_blank=True))
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


INT32_MAX = 2**31 - 1  # the largest value of an integer column (quantities, versions)


class KeyField(serializers.RegexField):
    """A resource key as the spec writes it (feature and rate card keys): `^[a-z0-9]+(?:_[a-z0-9]+)*$`, at most 64."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(KEY_RE, **kwargs)


def plain_json(value: Any) -> Any:
    """Free-form JSON as it can be stored and sent back: the parser reads fractional numbers as Decimal (for
    money), and these objects are not money, so a fraction or a number beyond 64-bit integers becomes a JSON
    double, as upstream stores it."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -(2**63) <= value < 2**63:
            return value
        value = Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > 300:  # a double holds up to about 1.8e308
            raise serializers.ValidationError("number out of range: at most 1e300 in magnitude")
        if value == value.to_integral_value() and -(2**63) <= value < 2**63:
            return int(value)
        return float(value)  # beyond 64-bit integers JSON readers use doubles anyway
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    return value


class JSONObjectField(serializers.DictField):
    """A free-form JSON object the server stores as given (tax config, subject metadata, annotations)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return plain_json(super().to_internal_value(data))
