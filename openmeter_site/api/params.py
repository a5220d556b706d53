"""Query-string parsing the way the SDKs send it: repeated keys for arrays, `name[key]=value` deepObjects,
RFC 3339 date-times. Every failure is an InvalidInput (400 problem)."""

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from django.http import QueryDict

from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import parse_rfc3339

_DEEP_OBJECT_RE = re.compile(r"^(?P<name>[^\[]+)\[(?P<key>[^\]]*)\]$")


def get_str(query: QueryDict, name: str, default: str | None = None) -> str | None:
    value = query.get(name)
    return value if value not in (None, "") else default


def get_list(query: QueryDict, name: str) -> list[str]:
    return [v for v in query.getlist(name) if v != ""]


def get_bool(query: QueryDict, name: str, default: bool = False) -> bool:
    return parse_bool(query.get(name), name, default)


def parse_bool(value: str | None, name: str, default: bool = False) -> bool:
    if value in (None, ""):
        return default
    if value.lower() in {"true", "1"}:
        return True
    if value.lower() in {"false", "0"}:
        return False
    raise InvalidInput(f"{name}: expected true or false, got {value!r}")


def get_int(query: QueryDict, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    value = query.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidInput(f"{name}: expected an integer, got {value!r}") from exc
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidInput(f"{name}: must be {bound}, got {number}")
    return number


def get_datetime(query: QueryDict, name: str) -> dt.datetime | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    return parse_rfc3339(value, name)


def get_choice(query: QueryDict, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
    value = get_str(query, name, default)
    allowed = list(choices)
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
    return value


def get_deep_object(query: QueryDict, name: str) -> dict[str, str]:
    """`filterGroupBy[model]=gpt-4&filterGroupBy[type]=input` → {"model": "gpt-4", "type": "input"}."""
    out: dict[str, str] = {}
    for raw_key in query:
        match = _DEEP_OBJECT_RE.match(raw_key)
        if match and match.group("name") == name:
            out[match.group("key")] = query.get(raw_key, "")
    return out


def reject_unknown(query: QueryDict, allowed: set[str]) -> None:
    """Used where a silent typo would change a billing answer."""
    unknown = sorted({k.split("[", 1)[0] for k in query} - allowed)
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")


def as_dict(query: QueryDict) -> dict[str, Any]:
    return {k: query.getlist(k) for k in query}
