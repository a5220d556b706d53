"""Domain events customers publish through the outbox; apps above subscribe to them in `AppConfig.ready`."""

import datetime as dt
from typing import TypedDict

from openmeter_site.outbox.services import publish

CUSTOMER_DELETED = "customers.customer_deleted"


class CustomerDeleted(TypedDict):
    customer_id: str
    at: str  # RFC 3339: when it was deleted


def customer_deleted(customer_id: str, at: dt.datetime) -> None:
    """A customer was deleted: what belongs to it elsewhere ends (its entitlements)."""
    publish(CUSTOMER_DELETED, CustomerDeleted(customer_id=customer_id, at=at.isoformat()))
