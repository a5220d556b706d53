"""Prometheus metrics at `/metrics` (text format 0.0.4).

Two kinds of figures:
- counters and histograms of this process's own work (requests, ingest), kept by prometheus_client. Under
  gunicorn and Celery each process writes them to PROMETHEUS_MULTIPROC_DIR (bin/run and the container set it), and
  a scrape adds up every process's files, so any worker answers for all of them;
- gauges read from the database at scrape time (fold backlog, failed webhook deliveries and Stripe syncs): the
  same figure whichever web server or container is scraped. Each app registers its own in `AppConfig.ready`
  (`register_scrape`), so this module names no app above it.

Access: the bearer token OPENMETER_METRICS_TOKEN, or a client address in OPENMETER_METRICS_ALLOWED_NETWORKS
(loopback by default).
"""

import hmac
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "openmeter_http_requests", "HTTP requests answered, by route pattern, method and status",
    ["route", "method", "status"], registry=_REGISTRY,
)
HTTP_DURATION = Histogram(
    "openmeter_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern, method and status",
    ["route", "method", "status"], registry=_REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_INGESTED = Counter(
    "openmeter_events_ingested", "Events stored by ingest requests (duplicates of stored events not counted)",
    registry=_REGISTRY,
)
INGEST_REJECTED = Counter(
    "openmeter_ingest_rejected", "Ingest requests refused as invalid (a refused batch stores none of its events)",
    registry=_REGISTRY,
)

ScrapeReader = Callable[[], Iterable[Metric]]
_SCRAPE_READERS: list[ScrapeReader] = []


def register_scrape(reader: ScrapeReader) -> ScrapeReader:
    """Register a function that returns metric families read at each scrape (usually from the database)."""
    if reader not in _SCRAPE_READERS:
        _SCRAPE_READERS.append(reader)
    return reader


class _ScrapeCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        for reader in _SCRAPE_READERS:
            try:
                yield from reader()
            except Exception:  # one failing source (database down) must not hide the others
                logger.exception("metrics: %s failed", reader.__qualname__)


_SCRAPE = _ScrapeCollector()
_REGISTRY.register(_SCRAPE)


def observe_request(*, route: str, method: str, status: int, duration: float) -> None:
    labels = (route, method, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(duration)


def exposition() -> bytes:
    """The scrape body: every process's counters (multiprocess mode) or this one's, then the scrape-time gauges."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(_REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_SCRAPE)
    return generate_latest(registry)


def client_allowed(request: HttpRequest) -> bool:
    token = settings.OPENMETER_METRICS_TOKEN
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.OPENMETER_METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`."""
    if not client_allowed(request):
        return HttpResponse("metrics: not allowed from this address without the token\n", status=403,
                            content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
