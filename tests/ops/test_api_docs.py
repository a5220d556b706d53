"""/api/docs renders OpenMeter's spec with Swagger UI from package static files; /api/openapi.json is that spec,
its server URL this server."""

import re

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from tests.contract.spec import spec as vendored_spec


@pytest.mark.django_db
def test_openapi_json_is_the_vendored_spec_pointing_at_this_server(settings):
    settings.ALLOWED_HOSTS = ["billing.example.test"]
    # given no API key (the spec is public, as OpenMeter's own)
    response = APIClient().get("/api/openapi.json", HTTP_HOST="billing.example.test:8443", secure=True)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    served = response.json()
    assert served["servers"] == [{"url": "https://billing.example.test:8443", "description": "This server"}]
    assert served["info"]["title"] == "OpenMeter API"
    assert served["paths"].keys() == vendored_spec()["paths"].keys()
    assert served["paths"]["/api/v1/events"]["post"]["operationId"] == "ingestEvents"
    # real request bodies, not the bodiless views a generator saw
    assert "requestBody" in served["paths"]["/api/v1/meters"]["post"]


@pytest.mark.django_db
def test_api_docs_page_loads_swagger_ui_from_our_static_files_only():
    response = APIClient().get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'url: "/api/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/"), asset  # no CDN
        assert finders.find(asset.removeprefix("/static/")), asset  # shipped by a package, collected by collectstatic
    assert "http://" not in html and "https://" not in html


@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_the_spec_in_a_browser_without_the_network(browser, live_server_url):
    context = browser.new_context(base_url=live_server_url)
    off_site: list[str] = []
    context.route("**/*", lambda route: (off_site.append(route.request.url), route.abort())
                  if not route.request.url.startswith(live_server_url) else route.continue_())
    page = context.new_page()
    try:
        page.goto("/api/docs")
        page.get_by_text("OpenMeter API", exact=False).first.wait_for(timeout=60_000)
        page.locator(".opblock-summary-path[data-path='/api/v1/subscriptions']").first.wait_for(timeout=60_000)
        assert page.locator(".servers select option").first.inner_text() == f"{live_server_url} - This server"
    finally:
        context.close()
    assert off_site == []  # nothing fetched from anywhere but this server
