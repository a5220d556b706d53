"""The outbox's backlog on /metrics, read from the database at each scrape."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from openmeter_site.outbox.selectors import outbox_backlog


def outbox_backlog_metrics() -> Iterable[Metric]:
    waiting, oldest_seconds = outbox_backlog()
    yield GaugeMetricFamily("openmeter_outbox_backlog",
                            "Outbox deliveries not done yet (pending or failed)", value=waiting)
    yield GaugeMetricFamily("openmeter_outbox_backlog_oldest_seconds",
                            "Age of the oldest event with a delivery not done yet (0 when none)", value=oldest_seconds)
