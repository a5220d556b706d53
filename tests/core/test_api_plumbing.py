import orjson
import pytest
import requests
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client

from openmeter_site.core.models import ApiKey

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def test_request_without_key_is_401_problem(client):
    response = client.get("/api/v1/info/currencies")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert "API key" in body["detail"]


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/info/currencies"), ("post", "/api/v1/meters"), ("delete", "/api/v1/features/01J0000000000000000000000"),
    ("get", "/api/v1/portal/meters/tokens/query"),
])
def test_a_401_carries_a_bearer_challenge_and_no_allow_header(client, method, path):
    response = getattr(client, method)(path, HTTP_AUTHORIZATION="Bearer om_not_a_key")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "Allow" not in response


def test_allow_is_only_on_a_405_and_an_options_answer(api):
    assert "Allow" not in api.get("/api/v1/info/currencies")
    assert api.delete("/api/v1/info/currencies")["Allow"] == "GET, HEAD, OPTIONS"


def test_revoked_key_is_rejected(client):
    key, raw = ApiKey.issue("to-revoke")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    assert client.get("/api/v1/info/currencies").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get("/api/v1/info/currencies").status_code == 401


def test_key_is_stored_hashed_and_last_use_recorded(api, api_key):
    key = ApiKey.objects.get()
    assert api_key not in (key.key_hash, key.prefix)
    assert key.last_used_at is None
    api.get("/api/v1/info/currencies")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_unknown_route_is_404_problem(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["status"] == 404


def test_wrong_method_is_405_problem(api):
    response = api.delete("/api/v1/info/currencies")
    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM


def test_currencies_are_a_plain_array_with_subunits_as_decimal_digits(api):
    # upstream answers GOBL's definitions, where subunits is the number of decimal digits of the minor unit
    response = api.get("/api/v1/info/currencies")
    assert response.status_code == 200
    by_code = {c["code"]: c for c in response.json()}
    assert by_code["USD"] == {"code": "USD", "name": "US Dollar", "symbol": "$", "subunits": 2}
    assert by_code["JPY"]["subunits"] == 0
    assert by_code["BHD"]["subunits"] == 3
    assert by_code["KWD"]["subunits"] == 3


@pytest.mark.django_db(transaction=True)
def test_live_server_unhandled_404_and_encoded_slash(live_server_url, api_key):
    response = requests.get(f"{live_server_url}/api/v1/nothing%2Fhere", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM


def test_a_host_header_not_in_allowed_hosts_is_a_400_problem(api):
    # DisallowedHost is raised in CommonMiddleware, before any view, so Django's handler400 answers it
    response = api.get("/api/v1/info/currencies", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400
    assert body["title"] == "Bad Request"
    assert "Invalid HTTP_HOST header: 'evil.example'" in body["detail"]


def test_a_bad_host_header_outside_the_api_keeps_djangos_html_page(client):
    response = client.get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_too_many_query_parameters_is_a_400_problem_not_a_500(api):
    # Django's TooManyFieldsSent (a SuspiciousOperation) is raised inside the view when it first reads the query
    query = "&".join(f"p{i}=1" for i in range(1001))
    response = api.get(f"/api/v1/features?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["status"] == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]


def test_a_csrf_failure_under_the_api_is_a_403_problem(rf):
    # every /api/ view is CSRF-exempt today; a view that is not would fail through CSRF_FAILURE_VIEW
    request = rf.post("/api/v1/anything")
    response = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, lambda r: HttpResponse(), (), {})
    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM
    body = orjson.loads(response.content)
    assert body["status"] == 403
    assert body["detail"] == "CSRF verification failed: CSRF cookie not set."


def test_a_csrf_failure_in_the_admin_keeps_djangos_html_page():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db(transaction=True)
def test_live_server_bad_host_header_is_a_400_problem(live_server_url):
    response = requests.get(f"{live_server_url}/api/v1/info/currencies", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400
    assert "Invalid HTTP_HOST header: 'evil.example'" in body["detail"]


def test_options_answers_the_allowed_methods_on_every_path_of_the_spec(api):
    # the ViewSets declare no serializer_class, from which DRF's default metadata described a view: a 500
    from tests.contract.test_routes import concrete, operations

    methods_by_path: dict[str, set[str]] = {}
    for method, path in operations():
        if path.startswith("/api/v1/portal/meters/"):
            continue  # portal tokens only
        methods_by_path.setdefault(concrete(path), set()).add(method)
    for path, methods in methods_by_path.items():
        response = api.options(path)
        assert response.status_code == 200, (path, response.content)
        assert response.content == b""
        assert methods <= set(response["Allow"].split(", ")), (path, response["Allow"])
