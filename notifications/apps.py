from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications.metrics import webhook_delivery_metrics
        from openmeter_site.ops.metrics import register_scrape

        register_scrape(webhook_delivery_metrics)
