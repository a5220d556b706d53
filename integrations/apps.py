from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Apps (sandbox, Stripe, custom invoicing)"

    def ready(self) -> None:
        from billing.plugins import AppPlugin, register_app_type, register_default_app
        from integrations.api.serializers import app_to_api
        from integrations.custom_invoicing import CustomInvoicingBackend
        from integrations.metrics import stripe_sync_metrics
        from integrations.models import AppType
        from integrations.sandbox import SandboxBackend, sandbox_app_ensure
        from integrations.stripe.invoicing import StripeInvoicingBackend, stripe_invoice_url
        from openmeter_site.ops.metrics import register_scrape

        register_scrape(stripe_sync_metrics)
        register_app_type(AppPlugin(AppType.SANDBOX, SandboxBackend, remote=False, to_api=app_to_api))
        register_app_type(AppPlugin(AppType.CUSTOM_INVOICING, CustomInvoicingBackend, remote=False, to_api=app_to_api,
                                    manual_payments=True))
        register_app_type(AppPlugin(AppType.STRIPE, StripeInvoicingBackend, remote=True, to_api=app_to_api,
                                    invoice_url=stripe_invoice_url))
        register_default_app(sandbox_app_ensure)
