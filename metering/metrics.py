"""Metering's figures on /metrics, read from the database at each scrape."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from metering.selectors import fold_backlog


def fold_backlog_metrics() -> Iterable[Metric]:
    pending, oldest_seconds = fold_backlog()
    yield GaugeMetricFamily("openmeter_events_pending", "Events stored but not yet folded into rollups", value=pending)
    yield GaugeMetricFamily("openmeter_events_pending_oldest_seconds",
                            "Age of the oldest event not yet folded into rollups (0 when none)", value=oldest_seconds)
