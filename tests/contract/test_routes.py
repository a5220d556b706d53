"""Every operation of OpenMeter's spec has a route here that accepts its method (the SDKs build URLs from it)."""

import re

import pytest
from django.urls import Resolver404, resolve

from tests.contract.spec import spec

METHODS = ("get", "post", "put", "patch", "delete")


def operations() -> list[tuple[str, str]]:
    return sorted((m.upper(), path) for path, item in spec()["paths"].items() for m in METHODS if m in item)


def concrete(path: str) -> str:
    """`/api/v1/meters/{meterIdOrSlug}` → a path with a sample value in each parameter."""
    return re.sub(r"\{[^}]+\}", "01G65Z755AFWAKHE12NY0CQ9FH", path)


def test_spec_has_the_153_operations_the_sdks_use():
    assert len(operations()) == 153


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda v: v)
def test_operation_is_routed_with_its_method(method, path):
    try:
        match = resolve(concrete(path))
    except Resolver404:
        pytest.fail(f"no route for {method} {path}")
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    assert view_class is not None, f"{path} is not a class-based view"
    actions = getattr(match.func, "actions", None)
    allowed = set(actions) if actions else {m for m in METHODS if hasattr(view_class, m)}
    assert method.lower() in allowed, f"{method} {path} routes to {view_class.__name__}, which allows {sorted(allowed)}"
