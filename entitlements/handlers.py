"""Entitlements' reactions to domain events of the apps below it (registered in `EntitlementsConfig.ready`)."""

import datetime as dt

from customers.models import Customer
from entitlements.services import entitlements_end_for_customer
from openmeter_site.outbox.models import OutboxEvent


def end_entitlements_of_deleted_customer(event: OutboxEvent) -> None:
    """Its entitlements end when it was deleted (idempotent: ended ones are skipped)."""
    customer = Customer.objects.get(pk=event.payload["customer_id"])
    entitlements_end_for_customer(customer=customer, at=dt.datetime.fromisoformat(event.payload["at"]))
