"""The spec's three list shapes as DRF paginators: page envelopes, legacy offset/limit arrays, and plain arrays.

`features.list`, `entitlementsV1.list` and `grants.listAll` answer a plain array unless `page` or `pageSize`
is sent; every `*PaginatedResponse` endpoint always answers `{totalCount, page, pageSize, items}`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from openmeter_site.api.params import get_int

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Page numbers and offsets up to JavaScript's largest safe integer (clients echo them back); PostgreSQL's OFFSET
# is a bigint, and a page further than that is past any table, so it is empty.
MAX_PAGE = MAX_OFFSET_PARAM = 2**53 - 1
MAX_OFFSET = 2**62


@dataclass(frozen=True)
class Page:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_params(query: QueryDict) -> Page:
    return Page(
        page=get_int(query, "page", 1, 1, MAX_PAGE),
        page_size=get_int(query, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    )


def wants_page(query: QueryDict) -> bool:
    return "page" in query or "pageSize" in query


def page_envelope(items: Sequence[Any], total: int, page: Page) -> dict[str, Any]:
    return {"totalCount": total, "page": page.page, "pageSize": page.page_size, "items": list(items)}


def window(qs: QuerySet, offset: int, limit: int) -> list[Any]:
    return [] if offset > MAX_OFFSET else list(qs[offset : offset + limit])


def offset_window(qs: QuerySet, query: QueryDict) -> list[Any]:
    """The legacy `offset`/`limit` window."""
    offset = get_int(query, "offset", 0, 0, MAX_OFFSET_PARAM)
    limit = get_int(query, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    return window(qs, offset, limit)


class PagePagination(BasePagination):
    """The `*PaginatedResponse` envelope, always."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.page = page_params(request.query_params)
        self.total = queryset.count()
        return window(queryset, self.page.offset, self.page.page_size)

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return Response(page_envelope(data, self.total, self.page))


class PageOrOffsetPagination(PagePagination):
    """The envelope when `page`/`pageSize` is sent, else the legacy `offset`/`limit` plain array."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.enveloped = wants_page(request.query_params)
        if self.enveloped:
            return super().paginate_queryset(queryset, request, view)
        return offset_window(queryset, request.query_params)

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return super().get_paginated_response(data) if self.enveloped else Response(list(data))


class EnvelopeOrOffsetPagination(PagePagination):
    """The envelope, always; the legacy `offset`/`limit`, sent without `page`/`pageSize`, pick its items."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        query = request.query_params
        if wants_page(query) or ("offset" not in query and "limit" not in query):
            return super().paginate_queryset(queryset, request, view)
        rows = offset_window(queryset, query)
        self.total = queryset.count()
        self.page = Page(page=1, page_size=len(rows))
        return rows


class ArrayPagination(BasePagination):
    """A plain array of every row; `page`/`pageSize`, when sent, pick a window of it (still a plain array)."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        if not wants_page(request.query_params):
            return list(queryset)
        page = page_params(request.query_params)
        return window(queryset, page.offset, page.page_size)

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return Response(list(data))
