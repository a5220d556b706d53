"""The two operations middlewares, first in MIDDLEWARE."""

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from openmeter_site.core.models import ApiKey
from openmeter_site.ops import logs, metrics, probes

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": probes.healthz,
    "/readyz": probes.readyz,
    "/metrics": metrics.metrics_view,
}


def _route(request: HttpRequest) -> str:
    """The URL pattern that answered (bounded label values), not the path."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route
    if request.path in PROBES:
        return request.path.lstrip("/")
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _api_key_name(request: HttpRequest) -> str | None:
    auth = getattr(request, "auth", None)  # DRF sets it on the Django request too
    return auth.name if isinstance(auth, ApiKey) else None


class RequestLogMiddleware:
    """Outermost: takes or makes the request id (returned in X-Request-Id), then writes the request's log line and
    its metrics once the response is ready, whatever answered it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = logs.request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        token = logs.request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            duration = time.monotonic() - started
            response[logs.REQUEST_ID_HEADER] = request_id
            route = _route(request)
            metrics.observe_request(route=route, method=request.method or "", status=response.status_code,
                                    duration=duration)
            logs.log_request(method=request.method or "", path=request.path, route=route,
                             status=response.status_code, duration=duration, api_key=_api_key_name(request),
                             remote_addr=request.META.get("REMOTE_ADDR"), probe=request.path in PROBES)
            return response
        finally:
            logs.request_id_var.reset(token)


class ProbesMiddleware:
    """/healthz, /readyz and /metrics, answered before host validation, HTTPS redirects and sessions: load balancers,
    container health checks and Prometheus address the server by its IP over plain HTTP."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path)
        if view is not None and request.method in {"GET", "HEAD"}:
            return view(request)
        return self.get_response(request)
