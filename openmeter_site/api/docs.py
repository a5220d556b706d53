"""The API's documentation: OpenMeter's own spec (vendored beside this module, the contract the server follows),
served as JSON with its server URL pointing at this server, and rendered by Swagger UI from the static files of the
drf-spectacular-sidecar package (no CDN). Both are public, like the spec itself."""

import copy
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

SPEC_PATH = Path(__file__).with_name("openapi.yaml")


@cache
def vendored_spec() -> dict[str, Any]:
    return yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def spec_for(server_url: str) -> dict[str, Any]:
    spec = copy.copy(vendored_spec())  # shallow: only `servers` is replaced
    spec["servers"] = [{"url": server_url, "description": "This server"}]
    return spec


@require_GET
def openapi_json(request: HttpRequest) -> HttpResponse:
    """`GET /api/openapi.json`: the spec, its paths (`/api/v1/...`) relative to this server's origin."""
    server_url = request.build_absolute_uri("/").rstrip("/")
    return HttpResponse(orjson.dumps(spec_for(server_url)), content_type="application/json")


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    """`GET /api/docs`: Swagger UI over /api/openapi.json."""
    return render(request, "api/docs.html")
