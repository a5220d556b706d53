"""Portal token management (API key) and the portal meter query (portal token only)."""

from typing import Any

from django.http import QueryDict
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metering.models import Meter, WindowSize
from metering.query import QuerySpec
from openmeter_site.api.params import get_choice, get_datetime, get_deep_object, get_int, get_list, get_str
from openmeter_site.core.errors import InvalidInput
from openmeter_site.core.time import format_rfc3339, parse_time_zone
from portal import services
from portal.api.auth import IsPortalToken, PortalTokenAuthentication
from portal.api.serializers import (
    PortalTokenCreateSerializer,
    PortalTokenInvalidateSerializer,
    portal_token_to_api,
    row_to_api,
)

PORTAL_QUERY_PARAMS = {"clientId", "from", "to", "windowSize", "windowTimeZone", "filterGroupBy", "groupBy"}
NOT_ON_PORTAL = {"subject", "filterCustomerId", "advancedMeterGroupByFilters"}


class PortalTokenListView(APIView):
    def get(self, request: Request) -> Response:
        limit = get_int(request.query_params, "limit", 25, 1, 100)
        tokens = services.portal_token_list_qs()[:limit]
        return Response([portal_token_to_api(t) for t in tokens])

    def post(self, request: Request) -> Response:
        serializer = PortalTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        token, raw = services.portal_token_create(
            subject=d["subject"], allowed_meter_slugs=d.get("allowedMeterSlugs"), expires_at=d.get("expiresAt")
        )
        return Response(portal_token_to_api(token, raw))  # 200, as the spec says (not 201)


class PortalTokenInvalidateView(APIView):
    def post(self, request: Request) -> Response:
        serializer = PortalTokenInvalidateSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        services.portal_tokens_invalidate(token_id=d.get("id"), subject=d.get("subject"))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _query_spec(meter: Meter, query: QueryDict) -> QuerySpec:
    sent = {k.split("[", 1)[0] for k in query}
    if refused := sorted(sent & NOT_ON_PORTAL):
        raise InvalidInput(f"{', '.join(refused)}: not available on the portal query (it is scoped to the token's subject)")
    if unknown := sorted(sent - PORTAL_QUERY_PARAMS):
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")
    start, end = get_datetime(query, "from"), get_datetime(query, "to")
    if start and end and start > end:
        raise InvalidInput("from: must not be after to")
    group_by = get_list(query, "groupBy")
    for key in group_by:
        if key != "subject" and key not in meter.group_by:
            raise InvalidInput(f"groupBy: meter {meter.slug} has no group-by key {key!r}")
    filters = get_deep_object(query, "filterGroupBy")
    for key in filters:
        if key not in meter.group_by:
            raise InvalidInput(f"filterGroupBy: meter {meter.slug} has no group-by key {key!r}")
    return QuerySpec(
        meter=meter,
        start=start,
        end=end,
        window_size=get_choice(query, "windowSize", WindowSize.values),
        time_zone=parse_time_zone(get_str(query, "windowTimeZone")),
        group_by=group_by,
        group_filters={k: [v] for k, v in filters.items()},
    )


class PortalMeterQueryView(APIView):
    """`GET /api/v1/portal/meters/{meterSlug}/query`: the token's subject only, its allowed meters only."""

    authentication_classes = [PortalTokenAuthentication]
    permission_classes = [IsPortalToken]

    def get(self, request: Request, meter_slug: str) -> Response:
        token = request.auth
        meter = services.portal_meter(token=token, slug=meter_slug)
        spec = _query_spec(meter, request.query_params)
        rows = services.portal_query(token=token, spec=spec)
        body: dict[str, Any] = {"data": [row_to_api(r) for r in rows]}
        if spec.start:
            body["from"] = format_rfc3339(spec.start)
        if spec.end:
            body["to"] = format_rfc3339(spec.end)
        if spec.window_size:
            body["windowSize"] = spec.window_size
        return Response(body)

