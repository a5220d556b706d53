"""Portal token management (API key) and the portal meter query (portal token only)."""

from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metering.api.serializers import query_result_to_api, validate_meter_query
from metering.api.views import CSVRenderer, query_params_from_get
from metering.meter_queries import MeterQueryParams
from openmeter_site.api.params import get_int
from openmeter_site.api.renderers import JSONRenderer
from openmeter_site.api.routers import ResourceViewSet
from openmeter_site.core.errors import InvalidInput
from portal import services
from portal.api.auth import IsPortalToken, PortalTokenAuthentication
from portal.api.serializers import (
    PortalTokenCreateSerializer,
    PortalTokenInvalidateSerializer,
    portal_token_to_api,
)

# The portal answers for the token's subject only: these would widen or re-scope the query.
NOT_ON_PORTAL = ("subject", "filterCustomerId")


class PortalTokenViewSet(ResourceViewSet):
    """`/api/v1/portal/tokens`: list (the newest `limit`, a plain array), create, and `invalidate`."""

    pagination_class = None

    def list(self, request: Request) -> Response:
        limit = get_int(request.query_params, "limit", 25, 1, 100)
        return Response([portal_token_to_api(t) for t in services.portal_token_list_qs()[:limit]])

    def create(self, request: Request) -> Response:
        d = self.validated(PortalTokenCreateSerializer).validated_data
        token, raw = services.portal_token_create(
            subject=d["subject"], allowed_meter_slugs=d.get("allowedMeterSlugs"), expires_at=d.get("expiresAt")
        )
        return Response(portal_token_to_api(token, raw))  # 200, as the spec says (not 201)

    @action(detail=False, methods=["post"])
    def invalidate(self, request: Request) -> Response:
        d = self.validated(PortalTokenInvalidateSerializer, request.data or {}).validated_data
        services.portal_tokens_invalidate(token_id=d.get("id"), subject=d.get("subject"))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _query_params(request: Request) -> MeterQueryParams:
    """The meter query's own parsing (GET form → MeterQueryRequest shape → params), minus the scoping params."""
    raw = query_params_from_get(request)
    if refused := [name for name in NOT_ON_PORTAL if name in raw]:
        raise InvalidInput(f"{', '.join(refused)}: not available on the portal query (it is scoped to the token's subject)")
    return MeterQueryParams.from_request(validate_meter_query(raw))


class PortalMeterQueryView(APIView):
    """`GET /api/v1/portal/meters/{meterSlug}/query`: the token's subject only, its allowed meters only."""

    authentication_classes = [PortalTokenAuthentication]
    permission_classes = [IsPortalToken]
    renderer_classes = [JSONRenderer, CSVRenderer]

    def get(self, request: Request, meter_slug: str) -> Response:
        token = request.auth
        meter = services.portal_meter(token=token, slug=meter_slug)
        params = _query_params(request)
        result = services.portal_query(token=token, meter=meter, params=params)
        if request.accepted_renderer.format == "csv":
            return Response(result.to_csv())
        return Response(query_result_to_api(result.rows, params))
