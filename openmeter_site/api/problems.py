"""RFC 7807 problems with the exact content type `application/problem+json` (the JS SDK compares it literally)."""

import logging
from http import HTTPStatus
from typing import Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions

from openmeter_site.core.errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


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


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    request = context.get("request")
    if isinstance(exc, DomainError):
        return problem_response(exc.status, exc.detail, request=request, extensions=exc.extensions)
    if isinstance(exc, drf_exceptions.ValidationError):
        return validation_problem(exc.detail, request)
    if isinstance(exc, Http404):
        return problem_response(404, str(exc) or "not found", request=request)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, "request body too large", request=request)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return problem_response(401, "a valid API key is required (Authorization: Bearer <key>)", request=request)
    if isinstance(exc, drf_exceptions.APIException):
        return problem_response(exc.status_code, str(exc.detail), request=request)
    return None


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception or Http404())
    return problem_response(404, f"no route for {request.method} {request.path}", request=request)


def server_error_view(request: HttpRequest) -> HttpResponse:
    return problem_response(500, "", request=request)
