"""The official Python client `openmeter`, served in process: its requests go through a `requests` adapter to
Django's test client instead of a socket, so `time_machine` moves the server's clock too and every answer is
checked against the spec (tests/conftest.py). The scenarios compute upstream's numbers by hand in each test."""

import datetime as dt
import io
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
import time_machine
from corehttp.transport.requests import RequestsTransport
from django.test import Client as DjangoClient
from openmeter import Client
from urllib3 import HTTPResponse

from openmeter_site.core.models import ApiKey


class InProcessAdapter(requests.adapters.BaseAdapter):
    """Sends a `requests` request to the Django application in this process."""

    def __init__(self) -> None:
        super().__init__()
        self.django = DjangoClient()

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        url = urlsplit(request.url)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        answer = self.django.generic(
            request.method, url.path + (f"?{url.query}" if url.query else ""), body,
            content_type=request.headers.get("Content-Type", ""), headers=headers,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers.items())
        response.raw = HTTPResponse(body=io.BytesIO(answer.content), headers=dict(answer.headers.items()),
                                    status=answer.status_code, preload_content=False)
        response._content = answer.content
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def om(db) -> Iterator[Client]:
    _, key = ApiKey.issue("conformance")
    session = requests.Session()
    session.mount("http://", InProcessAdapter())
    with Client(endpoint="http://testserver", token=key, retry_total=0,
                transport=RequestsTransport(session=session, session_owner=False)) as client:
        yield client


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def at(when: dt.datetime):
    """The clock stands still at `when` (server and test alike)."""
    return time_machine.travel(when, tick=False)


# --- building blocks through the API --------------------------------------------------------------------------

def metered_feature(om: Client, key: str, aggregation: str = "SUM") -> None:
    """A meter on events of type `key` reading `$.value`, and a feature of the same key on it."""
    body = {"slug": key, "eventType": key, "aggregation": aggregation}
    if aggregation != "COUNT":
        body["valueProperty"] = "$.value"
    om.meters.create(body)
    om.features.create({"key": key, "name": key, "meterSlug": key})


def customer(om: Client, key: str, currency: str | None = "USD"):
    body = {"name": key.title(), "key": key, "usageAttribution": {"subjectKeys": [key]}}
    if currency:
        body["currency"] = currency
    return om.customers.create(body)


def usage(om: Client, subject: str, event_type: str, when: dt.datetime, value: object = 1, n: int = 0) -> None:
    om.events.ingest_events([{
        "specversion": "1.0", "id": f"{subject}-{event_type}-{iso(when)}-{n}", "source": "conformance",
        "type": event_type, "subject": subject, "time": iso(when), "data": {"value": value},
    }])


def default_workflow(om: Client, **invoicing: object) -> None:
    """The default billing profile (created on first use) with its invoicing settings changed."""
    from billing.services.profiles import billing_profile_default_ensure

    profile = om.billing_profiles.get(billing_profile_default_ensure().pk)
    om.billing_profiles.update(profile.id, {
        "name": profile.name, "supplier": {"name": profile.supplier.name}, "default": True,
        "workflow": {"invoicing": invoicing},
    })
