"""Notification figures on /metrics, read from the database at each scrape."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from notifications.models import DeliveryState, NotificationDelivery


def webhook_delivery_metrics() -> Iterable[Metric]:
    failed = NotificationDelivery.objects.filter(state=DeliveryState.FAILED).count()
    yield GaugeMetricFamily("openmeter_webhook_deliveries_failed",
                            "Webhook deliveries that used up their attempts (FAILED until resent)", value=failed)
