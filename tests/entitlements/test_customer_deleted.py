"""Deleting a customer ends its entitlements through the `customers.customer_deleted` domain event (customers is
below entitlements, so it does not call entitlements itself)."""

import datetime as dt

import pytest
import time_machine

from entitlements.models import Entitlement
from entitlements.services import UsagePeriodInput, entitlement_create
from openmeter_site.outbox.models import DeliveryState, OutboxDelivery
from openmeter_site.outbox.services import relay_due
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DELETED_AT = T0 + dt.timedelta(days=10)


def test_deleting_a_customer_ends_its_entitlements_once_the_event_is_relayed(api):
    customer = CustomerFactory(key="acme")
    feature = FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    entitlement_create(customer=customer, feature=feature, type="metered",
                       usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
    # when the customer is deleted (the test's transaction never commits, so nothing is relayed on commit)
    with time_machine.travel(DELETED_AT, tick=False):
        assert api.delete("/api/v1/customers/acme").status_code == 204
    [delivery] = OutboxDelivery.objects.filter(handler="entitlements.end_for_deleted_customer")
    assert delivery.event.payload == {"customer_id": customer.pk, "at": DELETED_AT.isoformat()}
    assert Entitlement.objects.get().deleted_at is None
    # then the relay ends the entitlement as of the deletion, once however often it runs
    relayed_at = DELETED_AT + dt.timedelta(minutes=1)
    with time_machine.travel(relayed_at, tick=False):
        assert relay_due() >= 1
        assert relay_due() == 0
    entitlement = Entitlement.objects.get()
    assert (entitlement.active_to, entitlement.deleted_at) == (DELETED_AT, relayed_at)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DONE
