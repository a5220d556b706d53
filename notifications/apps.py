from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from billing.events import INVOICE_CHANGED
        from metering.listeners import on_usage_ingested
        from notifications.handlers import notify_invoice_changed
        from notifications.hooks import usage_ingested
        from notifications.metrics import webhook_delivery_metrics
        from openmeter_site.ops.metrics import register_scrape
        from openmeter_site.outbox.registry import subscribe

        register_scrape(webhook_delivery_metrics)
        subscribe(INVOICE_CHANGED, "notifications.invoice_events", notify_invoice_changed)
        on_usage_ingested(usage_ingested)
