from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"

    def ready(self) -> None:
        from metering.metrics import fold_backlog_metrics
        from openmeter_site.ops.metrics import register_scrape

        register_scrape(fold_backlog_metrics)
