"""Integration figures on /metrics, read from the database at each scrape."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from integrations.stripe.retries import stripe_syncs_failed


def stripe_sync_metrics() -> Iterable[Metric]:
    yield GaugeMetricFamily("openmeter_stripe_syncs_failed",
                            "Invoices whose Stripe sync failed, waiting for a retry", value=stripe_syncs_failed())
