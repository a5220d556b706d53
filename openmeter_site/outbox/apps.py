from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "openmeter_site.outbox"
    label = "outbox"
    verbose_name = "Domain events (outbox)"

    def ready(self) -> None:
        from openmeter_site.ops.metrics import register_scrape
        from openmeter_site.outbox.metrics import outbox_backlog_metrics

        register_scrape(outbox_backlog_metrics)
