"""The router of the API's ViewSets: OpenMeter's paths have no trailing slash and their path parameters use the
`seg` converter (a segment that may hold any percent-encoded character)."""

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.serializers import BaseSerializer
from rest_framework.viewsets import GenericViewSet

from openmeter_site.api.pagination import PagePagination

S = TypeVar("S", bound=BaseSerializer)


class Router(SimpleRouter):
    def __init__(self) -> None:
        super().__init__(trailing_slash=False, use_regex_path=False)


class ResourceViewSet(GenericViewSet):
    """A resource with the usual verbs: `list`, `create`, `retrieve`, `update` (PUT), `destroy`, and `@action`s.

    A list is filtered by `filterset_class` (the spec's query parameters), ordered by `order`/`orderBy` through
    `order_by` (the spec's orderBy values → model fields; `default_order_by` when none is sent) and paginated by
    `pagination_class` (the page envelope unless the endpoint says otherwise); `render` gives one row's body."""

    lookup_value_converter = "seg"
    pagination_class = PagePagination
    order_by: Mapping[str, str] = {}
    default_order_by = ""

    def render(self, obj: Any) -> Any:
        raise NotImplementedError

    def validated(self, serializer_class: type[S], data: Any = None, **kwargs: Any) -> S:
        """The request body (or `data`) validated by `serializer_class`; an invalid one is the 400 problem."""
        serializer = serializer_class(data=self.request.data if data is None else data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer

    def rendered_page(self, qs: QuerySet) -> Response:
        page = self.paginate_queryset(qs)
        if page is None:  # a plain array of every row
            return Response([self.render(obj) for obj in qs])
        return self.get_paginated_response([self.render(obj) for obj in page])


class ListMixin:
    """`list`: the filtered, ordered, paginated and rendered rows of `get_queryset()`."""

    def list(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.rendered_page(self.filter_queryset(self.get_queryset()))
