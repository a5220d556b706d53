"""RFC 7807 problems with the exact content type `application/problem+json` (the JS SDK compares it literally)."""

import logging
import math
import re
import sys
from http import HTTPStatus
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.views import csrf, defaults
from rest_framework import exceptions as drf_exceptions

from openmeter_site.core.db.availability import DATABASE_RETRY_AFTER_SECONDS, database_unavailable
from openmeter_site.core.errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
UNIQUE_VIOLATION = "23505"
# PostgreSQL's numeric_value_out_of_range and datetime_field_overflow: a value the column or the type cannot hold
OUT_OF_RANGE_SQLSTATES = {"22003", "22008"}
YEAR_OUT_OF_RANGE_RE = re.compile(r"^year -?\d+ is out of range")


def problem_response(
    status: int, detail: str, *, request: HttpRequest | None = None, extensions: dict[str, Any] | None = None
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": f"urn:request:{request.path}" if request is not None else "urn:request",
    }
    if extensions:
        body["extensions"] = extensions
    response = HttpResponse(orjson.dumps(body, default=str), status=status, content_type=PROBLEM_CONTENT_TYPE)
    if status == 401:
        response["WWW-Authenticate"] = "Bearer"  # API keys and portal tokens are both bearer tokens
    return response


def database_unavailable_problem(request: HttpRequest | None) -> HttpResponse:
    """503 while PostgreSQL cannot be reached or is restarting: clients that retry on 5xx retry, and say so."""
    response = problem_response(503, "the database is unavailable, retry later", request=request)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def _flatten(errors: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error dict/list → [{field, code, message}] with dotted field paths."""
    out: list[dict[str, str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            field = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}.{field}".strip(".") if field else prefix)
    elif isinstance(errors, list):
        if all(isinstance(e, drf_exceptions.ErrorDetail | str) for e in errors):
            for e in errors:
                out.append({"field": prefix, "code": getattr(e, "code", "invalid"), "message": str(e)})
        else:
            for i, value in enumerate(errors):
                out += _flatten(value, f"{prefix}[{i}]")
    else:
        out.append({"field": prefix, "code": getattr(errors, "code", "invalid"), "message": str(errors)})
    return out


def validation_problem(errors: Any, request: HttpRequest | None) -> HttpResponse:
    items = _flatten(errors)
    detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in items)
    return problem_response(400, detail or "invalid request", request=request, extensions={"validationErrors": items})


def django_exception_problem(exc: Exception, request: HttpRequest | None) -> HttpResponse | None:
    """Django's own request errors as problems: a bad Host header, too many query fields and the like
    (SuspiciousOperation), PermissionDenied, Http404, the database being unreachable (a 503), a unique key a
    concurrent request took first (a 409) and a value out of range (a 400). None for anything else."""
    if database_unavailable(exc):
        logger.warning("database unavailable on %s: %s", request.path if request else "-", exc)
        return database_unavailable_problem(request)
    if isinstance(exc, IntegrityError) and getattr(exc.__cause__, "sqlstate", None) == UNIQUE_VIOLATION:
        # the services check for duplicates first and turn the races they know into a 409; this is any other
        logger.warning("unique violation on %s: %s", request.path if request else "-", exc)
        return problem_response(409, "conflicts with a concurrent change: read the resource again", request=request)
    if _out_of_range(exc):
        logger.warning("out of range on %s: %s", request.path if request else "-", exc)
        return problem_response(400, f"a value in the request, or one computed from it, is out of range: {exc}",
                                request=request)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, "request body too large", request=request)
    if isinstance(exc, SuspiciousOperation):
        return problem_response(400, str(exc) or "bad request", request=request)
    if isinstance(exc, PermissionDenied):
        return problem_response(403, str(exc) or "permission denied", request=request)
    if isinstance(exc, Http404):
        return problem_response(404, str(exc) or "not found", request=request)
    return None


def _out_of_range(exc: Exception) -> bool:
    """A date-time or a number beyond what Python or PostgreSQL can hold, reached from the request's values (an
    instant near year 9999 plus a period, a sum of amounts): the inputs are checked where they come in, and this
    answers a 400 for the arithmetic they lead to, rather than a 500."""
    if isinstance(exc, OverflowError):
        return True
    if isinstance(exc, ValueError) and YEAR_OUT_OF_RANGE_RE.match(str(exc)):
        return True
    return isinstance(exc, DataError) and getattr(exc.__cause__, "sqlstate", None) in OUT_OF_RANGE_SQLSTATES


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    request = context.get("request")
    if isinstance(exc, DomainError):
        return problem_response(exc.status, exc.detail, request=request, extensions=exc.extensions)
    if isinstance(exc, drf_exceptions.ValidationError):
        return validation_problem(exc.detail, request)
    django_problem = django_exception_problem(exc, request)
    if django_problem is not None:
        return django_problem
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return problem_response(401, "a valid API key is required (Authorization: Bearer <key>)", request=request)
    if isinstance(exc, drf_exceptions.Throttled):
        response = problem_response(429, "rate limit of this API key exceeded, retry later", request=request)
        response["Retry-After"] = str(math.ceil(getattr(exc, "wait", None) or 1))
        return response
    if isinstance(exc, drf_exceptions.APIException):
        return problem_response(exc.status_code, str(exc.detail), request=request)
    return None


# Django's error handlers (urls.py handler400/403/404/500 and CSRF_FAILURE_VIEW) also answer errors raised
# before any view runs, e.g. DisallowedHost from CommonMiddleware. Under /api/ they answer problems; elsewhere
# (the admin) Django's HTML pages.


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception or SuspiciousOperation())
    if exception is not None and (problem := django_exception_problem(exception, request)) is not None:
        return problem
    return problem_response(400, str(exception or "") or "bad request", request=request)


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    exception = exception or PermissionDenied()
    if not request.path.startswith("/api/"):
        return defaults.permission_denied(request, exception)
    return django_exception_problem(exception, request) or problem_response(403, str(exception), request=request)


def csrf_failure_view(request: HttpRequest, reason: str = "") -> HttpResponse:
    if not request.path.startswith("/api/"):
        return csrf.csrf_failure(request, reason=reason)
    return problem_response(403, f"CSRF verification failed: {reason}" if reason else "CSRF verification failed",
                            request=request)


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception or Http404())
    return problem_response(404, f"no route for {request.method} {request.path}", request=request)


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Django calls it while handling the exception, so `sys.exc_info()` is that exception: one that a middleware
    raised (a session read in the admin) or a view outside /api/. The database being unreachable is a 503."""
    if database_unavailable(sys.exc_info()[1]):
        if request.path.startswith("/api/"):
            return database_unavailable_problem(request)
        response = HttpResponse("<h1>Service unavailable</h1><p>The database is unavailable, retry later.</p>",
                                status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    return problem_response(500, "", request=request)
