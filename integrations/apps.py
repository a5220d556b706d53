from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Apps (sandbox, Stripe, custom invoicing)"

    def ready(self) -> None:
        from integrations.metrics import stripe_sync_metrics
        from openmeter_site.ops.metrics import register_scrape

        register_scrape(stripe_sync_metrics)
