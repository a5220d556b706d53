from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        from customers.services import register_delete_guard
        from subscriptions.services.lifecycle import refuse_deleting_a_subscribed_customer

        register_delete_guard(refuse_deleting_a_subscribed_customer)
