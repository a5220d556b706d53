from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "openmeter_site.core"
    label = "core"
    verbose_name = "Access"

    def ready(self) -> None:
        from openmeter_site.core.metrics import job_run_metrics
        from openmeter_site.ops.metrics import register_scrape

        register_scrape(job_run_metrics)
