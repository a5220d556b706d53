from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"

    def ready(self) -> None:
        from customers.events import CUSTOMER_DELETED
        from entitlements.handlers import end_entitlements_of_deleted_customer
        from openmeter_site.outbox.registry import subscribe

        subscribe(CUSTOMER_DELETED, "entitlements.end_for_deleted_customer", end_entitlements_of_deleted_customer)
