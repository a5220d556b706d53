from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing.handlers import sync_changed_subscription
        from billing.selectors import usage_needed_since
        from metering.retention import on_events_needed
        from openmeter_site.outbox.registry import subscribe
        from subscriptions.events import SUBSCRIPTION_CHANGED

        subscribe(SUBSCRIPTION_CHANGED, "billing.sync_subscription", sync_changed_subscription)
        on_events_needed(usage_needed_since)  # events under an invoice not issued yet are kept
