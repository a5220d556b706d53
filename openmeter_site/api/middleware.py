import logging
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse

from openmeter_site.api.converters import encode_segment
from openmeter_site.api.problems import django_exception_problem, problem_response

logger = logging.getLogger(__name__)


def _raw_path(request: HttpRequest) -> str | None:
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    scope_raw = getattr(request, "scope", {}).get("raw_path") if hasattr(request, "scope") else None
    if scope_raw:
        return scope_raw.decode("latin-1")
    return None


def _has_nul(request: HttpRequest) -> bool:
    return "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "")


class RawPathMiddleware:
    """Route on segments as the client encoded them, so `a%2Fb` stays one path parameter."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = _raw_path(request)
        if raw and raw.startswith("/api/") and "%" in raw:
            segments = [encode_segment(unquote(s, encoding="utf-8", errors="replace")) for s in raw.split("/")]
            request.path_info = "/".join(segments)
        return self.get_response(request)


class ApiProblemMiddleware:
    """Exceptions a view leaves unhandled under /api/ become problems, also with DEBUG on: Django's request errors
    (e.g. TooManyFieldsSent from a query with too many parameters) their 4xx, anything else a 500. A NUL
    character in the path or query is a 400 up front: no database column can hold one, so no parameter could
    ever match it. Errors raised before any view (DisallowedHost) go to urls.py's handler400 and its siblings.

    DRF adds `Allow` to every response of its views; under /api/ it stays only on a 405 and on an answer to OPTIONS,
    where it means something (elsewhere the Go server sends none)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        if _has_nul(request):
            return problem_response(400, "NUL characters (%00) are not supported in the path or query", request=request)
        response = self.get_response(request)
        if response.status_code != 405 and request.method != "OPTIONS" and "Allow" in response:
            del response["Allow"]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        problem = django_exception_problem(exception, request)
        if problem is not None:
            logger.warning("%s on %s %s: %s", type(exception).__name__, request.method, request.path, exception)
            return problem
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "", request=request)
