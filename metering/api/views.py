"""Metering endpoints: thin views and ViewSets doing HTTP only (parse, call a service or selector, render)."""

import ast
from typing import Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import renderers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metering import listeners, progress, selectors, services
from metering.api.filters import MeterFilter
from metering.api.serializers import (
    MeterCreateSerializer,
    MeterUpdateSerializer,
    SubjectUpsertSerializer,
    event_to_api,
    meter_to_api,
    query_result_to_api,
    subject_to_api,
    validate_meter_query,
)
from metering.event_store import EventFilter, event_store
from metering.meter_queries import MeterQueryParams, meter_group_by_values, meter_query, meter_subjects
from metering.models import Meter, Subject
from openmeter_site.api.pagination import ArrayPagination
from openmeter_site.api.params import get_datetime, get_deep_object, get_int, get_list, get_str
from openmeter_site.api.renderers import JSONRenderer
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.errors import DomainError, InvalidInput, NotFound
from openmeter_site.core.time import format_rfc3339
from openmeter_site.ops.metrics import EVENTS_INGESTED, INGEST_REJECTED


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else b""


class PlainTextRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else b""


def _json_param(value: str | None, name: str) -> Any:
    if value in (None, ""):
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{name}: not valid JSON: {exc}") from exc


# --- events -----------------------------------------------------------------------------------------------------


class EventsView(APIView):
    """`POST /api/v1/events` (events.ingest, HOT PATH) and `GET /api/v1/events` (events.list)."""

    throttle_scope = "ingest"  # OPENMETER_INGEST_RATE_LIMIT, not the general API limit

    def post(self, request: Request) -> Response:
        try:
            stored = services.events_ingest(body=request.body, content_type=request.META.get("CONTENT_TYPE"))
        except (DomainError, RequestDataTooBig):  # a 4xx problem: nothing of the batch is stored
            INGEST_REJECTED.inc()
            raise
        if stored:
            EVENTS_INGESTED.inc(stored)
            listeners.usage_ingested()
        return Response(status=204)

    def get(self, request: Request) -> Response:
        query = request.query_params
        now = timezone.now()
        filters = EventFilter(
            start=get_datetime(query, "from") or now - selectors.DEFAULT_LOOKBACK,
            end=get_datetime(query, "to"),
            ingested_from=get_datetime(query, "ingestedAtFrom"),
            ingested_to=get_datetime(query, "ingestedAtTo"),
            id_contains=get_str(query, "id"),
            subject_contains=get_str(query, "subject"),
            limit=get_int(query, "limit", 100, 1, 100),
        )
        client_id = get_str(query, "clientId")
        if client_id:
            progress.progress_set(client_id, total=1, success=0)
        events = selectors.event_list(filters=filters, customer_ids=get_list(query, "customerId"), now=now)
        if client_id:
            progress.progress_set(client_id, total=1, success=1)
        return Response([event_to_api(e) for e in events])


class EventsV2View(APIView):
    """`GET /api/v2/events` (events.listV2): cursor pagination, newest first."""

    def get(self, request: Request) -> Response:
        query = request.query_params
        limit = get_int(query, "limit", 100, 1, 100)
        filter_spec = _json_param(get_str(query, "filter"), "filter") or {}
        if not isinstance(filter_spec, dict):
            raise InvalidInput("filter: expected a JSON object")
        page = selectors.event_list_v2(filter_spec=filter_spec, cursor=get_str(query, "cursor"), limit=limit)
        body: dict[str, Any] = {"items": [event_to_api(e) for e in page.events]}
        if page.next_cursor is not None:
            body["nextCursor"] = page.next_cursor
        return Response(body)


# --- meters -----------------------------------------------------------------------------------------------------


class MeterViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/meters`: list (a plain array), create, get, update (PUT), delete. A meter's query, group-by values
    and subjects are views of their own below (queries over events, the query a hot path)."""

    filterset_class = MeterFilter
    pagination_class = ArrayPagination
    order_by = {"key": "slug", "name": "name", "aggregation": "aggregation", "createdAt": "created_at",
                "updatedAt": "updated_at"}
    default_order_by = "key"
    lookup_url_kwarg = "meter_id_or_slug"

    def get_queryset(self) -> QuerySet[Meter]:
        return selectors.meter_list_qs(include_deleted=True)

    def render(self, meter: Meter) -> dict[str, Any]:
        return meter_to_api(meter)

    def create(self, request: Request) -> Response:
        data = self.validated(MeterCreateSerializer).validated_data
        meter = services.meter_create(
            slug=data["slug"],
            aggregation=data["aggregation"],
            event_type=data["eventType"],
            name=data.get("name"),
            description=data.get("description"),
            metadata=data.get("metadata"),
            event_from=data.get("eventFrom"),
            value_property=data.get("valueProperty"),
            group_by=data.get("groupBy"),
        )
        return Response(meter_to_api(meter), status=201)

    def retrieve(self, request: Request, meter_id_or_slug: str) -> Response:
        return Response(meter_to_api(selectors.meter_get(id_or_slug=meter_id_or_slug)))

    def update(self, request: Request, meter_id_or_slug: str) -> Response:
        meter = selectors.meter_get(id_or_slug=meter_id_or_slug)
        data = self.validated(MeterUpdateSerializer).validated_data
        meter = services.meter_update(
            meter=meter,
            name=data.get("name"),
            description=data.get("description"),
            metadata=data.get("metadata"),
            group_by=data.get("groupBy"),
        )
        return Response(meter_to_api(meter))

    def destroy(self, request: Request, meter_id_or_slug: str) -> Response:
        services.meter_delete(meter=selectors.meter_get(id_or_slug=meter_id_or_slug))
        return Response(status=204)


def query_params_from_get(request: Request) -> dict[str, Any]:
    query = request.query_params
    params: dict[str, Any] = {
        key: query.get(key) for key in ("clientId", "from", "to", "windowSize", "windowTimeZone") if key in query
    }
    for key in ("subject", "filterCustomerId", "groupBy"):
        if key in query:
            params[key] = get_list(query, key)
    deep = get_deep_object(query, "filterGroupBy")
    if "filterGroupBy" in query:  # the Python client sends the dict's repr; accept it and JSON
        deep.update(_literal_object(query.get("filterGroupBy", ""), "filterGroupBy"))
    if deep:
        params["filterGroupBy"] = {k: v if isinstance(v, list) else [v] for k, v in deep.items()}
    advanced = _json_param(query.get("advancedMeterGroupByFilters"), "advancedMeterGroupByFilters")
    if advanced is not None:
        params["advancedMeterGroupByFilters"] = advanced
    return params


def _literal_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise InvalidInput(f"{name}: expected {name}[key]=value") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: expected {name}[key]=value")
    return value


class MeterQueryView(APIView):
    """`GET|POST /api/v1/meters/{meterIdOrSlug}/query` → MeterQueryResult, or CSV for `Accept: text/csv`."""

    renderer_classes = [JSONRenderer, CSVRenderer]

    def get(self, request: Request, meter_id_or_slug: str) -> Response:
        return self._query(request, meter_id_or_slug, query_params_from_get(request))

    def post(self, request: Request, meter_id_or_slug: str) -> Response:
        body = request.data if request.data not in (None, "") else {}
        return self._query(request, meter_id_or_slug, body)

    def _query(self, request: Request, meter_id_or_slug: str, raw: Any) -> Response:
        meter = selectors.meter_get(id_or_slug=meter_id_or_slug)
        params = MeterQueryParams.from_request(validate_meter_query(raw))
        result = meter_query(meter=meter, params=params)
        if request.accepted_renderer.format == "csv":
            return Response(result.to_csv())
        return Response(query_result_to_api(result.rows, params))


class MeterGroupByValuesView(APIView):
    """`GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values` → string[]."""

    def get(self, request: Request, meter_id_or_slug: str, group_by_key: str) -> Response:
        meter = selectors.meter_get(id_or_slug=meter_id_or_slug)
        query = request.query_params
        values = meter_group_by_values(
            meter=meter, key=group_by_key, start=get_datetime(query, "from"), end=get_datetime(query, "to")
        )
        return Response(values)


class MeterSubjectsView(APIView):
    """`GET /api/v1/meters/{meterIdOrSlug}/subjects` → string[]."""

    def get(self, request: Request, meter_id_or_slug: str) -> Response:
        meter = selectors.meter_get(id_or_slug=meter_id_or_slug)
        query = request.query_params
        return Response(meter_subjects(meter=meter, start=get_datetime(query, "from"), end=get_datetime(query, "to")))


# --- subjects -----------------------------------------------------------------------------------------------------


class SubjectViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/subjects`: list (a plain array), upsert (POST an array → 200), get, delete."""

    pagination_class = None
    lookup_url_kwarg = "subject_id_or_key"

    def get_queryset(self) -> QuerySet[Subject]:
        return Subject.objects.order_by("key")

    def render(self, subject: Subject) -> dict[str, Any]:
        return subject_to_api(subject)

    def create(self, request: Request) -> Response:
        if not isinstance(request.data, list):
            raise InvalidInput("expected an array of subjects")
        serializer = self.validated(SubjectUpsertSerializer, many=True)
        subjects = services.subjects_upsert(items=[SubjectUpsertSerializer.to_service(i) for i in serializer.validated_data])
        return Response([subject_to_api(s) for s in subjects])

    def retrieve(self, request: Request, subject_id_or_key: str) -> Response:
        return Response(subject_to_api(services.subject_get(id_or_key=subject_id_or_key)))

    def destroy(self, request: Request, subject_id_or_key: str) -> Response:
        services.subject_delete(subject=services.subject_get(id_or_key=subject_id_or_key))
        return Response(status=204)


# --- debug and progress -----------------------------------------------------------------------------------------


class DebugMetricsView(APIView):
    """`GET /api/v1/debug/metrics`: OpenMetrics text, events per subject since 00:00 UTC."""

    renderer_classes = [PlainTextRenderer, JSONRenderer]

    def get(self, request: Request) -> HttpResponse:
        midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        lines = [
            "# HELP openmeter_events_total Number of ingested events",
            "# TYPE openmeter_events_total counter",
        ]
        for subject, count in event_store().events_per_subject_since(midnight):
            lines.append(f'openmeter_events_total{{subject="{_label(subject)}"}} {count}')
        return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ProgressView(APIView):
    """`GET /api/v1/info/progress/{id}` → Progress."""

    def get(self, request: Request, progress_id: str) -> Response:
        found = progress.progress_get(progress_id)
        if found is None:
            raise NotFound(f"progress not found: {progress_id}")
        return Response(
            {
                "total": found.total,
                "success": found.success,
                "failed": found.failed,
                "updatedAt": format_rfc3339(found.updated_at),
            }
        )
