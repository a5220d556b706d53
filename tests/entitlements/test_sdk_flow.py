"""The main flow through the official Python client against the real HTTP server."""

import datetime as dt

import pytest
from corehttp.exceptions import ResourceExistsError, ResourceNotFoundError
from openmeter import Client

from tests.factories import MeterFactory, ingest

pytestmark = pytest.mark.django_db(transaction=True)


def test_customer_feature_entitlement_grant_value_with_the_python_client(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key, retry_total=0)
    MeterFactory(slug="sdk_tokens", event_type="sdk_request", group_by={"model": "$.model"})
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    anchor = now - dt.timedelta(days=1)

    customer = client.customers.create({"name": "SDK Corp", "key": "sdk-corp",
                                        "usageAttribution": {"subjectKeys": ["sdk-subject"]}})
    assert customer.key == "sdk-corp"
    assert client.customers.get("sdk-corp").id == customer.id
    assert client.customers.list(key="sdk-corp").total_count == 1
    updated = client.customers.update("sdk-corp", {"name": "SDK Corp 2", "key": "sdk-corp",
                                                   "usageAttribution": {"subjectKeys": ["sdk-subject"]}})
    assert updated.name == "SDK Corp 2"

    feature = client.features.create({"key": "sdk_tokens", "name": "SDK tokens", "meterSlug": "sdk_tokens",
                                      "meterGroupByFilters": {"model": "gpt-4"}})
    assert client.features.get(feature.id).key == "sdk_tokens"
    assert [f["key"] for f in client.features.list()] == ["sdk_tokens"]

    entitlement = client.customer_entitlements_v2.post(
        "sdk-corp",
        {"type": "metered", "featureKey": "sdk_tokens", "usagePeriod": {"interval": "MONTH", "anchor": anchor},
         "measureUsageFrom": "CURRENT_PERIOD_START"},
    )
    assert entitlement["type"] == "metered"
    with pytest.raises(ResourceExistsError):
        client.customer_entitlements_v2.post(
            "sdk-corp", {"type": "metered", "featureKey": "sdk_tokens", "usagePeriod": {"interval": "MONTH"}})
    grant = client.customer_entitlement_v2.create_customer_entitlement_grant(
        "sdk-corp", "sdk_tokens", {"amount": 1000, "priority": 1, "effectiveAt": anchor.isoformat()})
    assert grant.amount == 1000

    ingest([{"subject": "sdk-subject", "time": now - dt.timedelta(hours=2), "data": {"tokens": 250, "model": "gpt-4"}},
            {"subject": "sdk-corp", "time": now - dt.timedelta(hours=1), "data": {"tokens": 50, "model": "gpt-4"}},
            {"subject": "sdk-corp", "time": now - dt.timedelta(hours=1), "data": {"tokens": 7, "model": "other"}}],
           type="sdk_request")

    value = client.customer_entitlement_v2.get_customer_entitlement_value("sdk-corp", "sdk_tokens")
    # 1000 - (250 + 50) = 700; the "other" model is outside the feature's filter
    assert (value.has_access, value.balance, value.usage, value.overage) == (True, 700, 300, 0)
    assert value.grant_balances == {grant.id: 700}
    v1 = client.customer_entitlement.get_customer_entitlement_value("sdk-corp", "sdk_tokens")
    assert v1.balance == 700
    access = client.customer.get_customer_access("sdk-corp")
    assert access.entitlements["sdk_tokens"].balance == 700

    history = client.customer_entitlement_v2.get_customer_entitlement_history("sdk-corp", "sdk_tokens", window_size="DAY")
    assert sum(w.usage for w in history.windowed_history) == 300

    grants = client.customer_entitlement_v2.get_grants("sdk-corp", "sdk_tokens")
    assert grants.total_count == 1
    assert client.grants_v2.list(customer=["sdk-corp"]).total_count == 1
    assert client.entitlements_v2.list(customer_keys=["sdk-corp"]).total_count == 1
    assert client.entitlements_v2.get(entitlement["id"])["id"] == entitlement["id"]

    client.customer_entitlement_v2.reset_customer_entitlement("sdk-corp", "sdk_tokens", {"retainAnchor": True})
    after_reset = client.customer_entitlement_v2.get_customer_entitlement_value("sdk-corp", "sdk_tokens")
    assert (after_reset.balance, after_reset.usage) == (700, 0)  # maxRolloverAmount defaults to the amount in V2

    client.grants.delete(grant.id)
    assert client.customer_entitlement_v2.get_customer_entitlement_value("sdk-corp", "sdk_tokens").has_access is False

    replaced = client.customer_entitlements_v2.override(
        "sdk-corp", "sdk_tokens", {"type": "boolean", "featureKey": "sdk_tokens"})
    assert replaced["type"] == "boolean"
    client.customer_entitlements_v2.delete("sdk-corp", "sdk_tokens")
    with pytest.raises(ResourceNotFoundError):
        client.customer_entitlements_v2.get("sdk-corp", "nothing_here")
    client.features.delete(feature.id)
    client.customers.delete("sdk-corp")
    with pytest.raises(ResourceNotFoundError):
        client.customers.update("sdk-corp", {"name": "x", "key": "sdk-corp"})
