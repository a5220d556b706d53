"""Issue 12's behaviours through the official Python client `openmeter`, against the real HTTP stack (gunicorn)."""

import datetime as dt

import pytest
from corehttp.exceptions import ClientAuthenticationError
from django.utils import timezone
from openmeter import Client

from tests.factories import FeatureFactory, MeterFactory, flat_fee_card, ingest, plan_body

pytestmark = pytest.mark.django_db(transaction=True)


def test_issue_12_behaviours_through_the_python_client(live_server_url, api_key):
    client = Client(endpoint=live_server_url, token=api_key, retry_total=0)

    # 2. currency subunits are decimal digits
    subunits = {c.code: c.subunits for c in client.currencies.list_currencies()}
    assert (subunits["USD"], subunits["JPY"], subunits["BHD"]) == (2, 0, 3)

    # 1. a feature created with meterSlug keeps its name
    MeterFactory(slug="pc_tokens", event_type="pc", value_property="$.tokens")
    feature = client.features.create({"key": "pc_tokens", "name": "Client tokens", "meterSlug": "pc_tokens"})
    assert (feature.name, client.features.get(feature.id).name) == ("Client tokens", "Client tokens")

    # 7. a paid subscription gives a customer without a currency the plan's currency
    customer = client.customers.create({"name": "Client Corp", "key": "client-corp",
                                        "usageAttribution": {"subjectKeys": ["client-corp"]}})
    assert getattr(customer, "currency", None) is None
    plan = client.plans.create(plan_body("pc_plan", currency="EUR", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="10")]}]))
    client.plans.publish(plan.id)
    client.subscriptions.create({"plan": {"key": "pc_plan"}, "customerKey": "client-corp"})
    assert client.customers.get("client-corp").currency == "EUR"

    # 3 and 4. a usage discount lowers the quantity; a minimum spend top-up is a charge, not an amount
    FeatureFactory(key="pc_metered", meter=MeterFactory(slug="pc_metered", event_type="pcm", value_property="$.n"))
    start = (timezone.now() - dt.timedelta(days=40)).replace(microsecond=0)
    end = start + dt.timedelta(days=30)
    ingest([{"subject": "client-corp", "type": "pcm", "time": start + dt.timedelta(days=1), "data": {"n": 15}}])
    period = {"from": start.isoformat(), "to": end.isoformat()}
    client.customer_invoice.create_pending_invoice_line(customer.id, {"currency": "EUR", "lines": [
        {"name": "Calls", "period": period, "invoiceAt": end.isoformat(),
         "rateCard": {"featureKey": "pc_metered", "price": {"type": "unit", "amount": "2", "minimumAmount": "50"},
                      "discounts": {"usage": {"quantity": "5"}}}}]})
    [invoice] = client.invoices.invoice_pending_lines_action({"customerId": customer.id})
    [line] = [line for line in invoice.lines if line.name == "Calls"]
    # 15 used, 5 free: 10 x 2 = 20, topped up to the minimum 50 by a 30 charge
    assert (line.quantity, line.metered_quantity) == ("10", "15")
    assert line.discounts.usage[0].quantity == "5"
    assert (line.totals.amount, line.totals.charges_total, line.totals.total) == ("20", "30", "50")

    # 14. a value read before the entitlement existed: no access and nothing else
    client.customer_entitlements_v2.post("client-corp", {"type": "boolean", "featureKey": "pc_tokens"})
    before = client.customer_entitlement_v2.get_customer_entitlement_value(
        "client-corp", "pc_tokens", time=timezone.now() - dt.timedelta(days=1))
    assert before.has_access is False
    assert before.balance is None and before.usage is None

    # 15. a request without a valid key is refused with a bearer challenge
    with pytest.raises(ClientAuthenticationError) as refused:
        Client(endpoint=live_server_url, token="om_wrong", retry_total=0).currencies.list_currencies()
    assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"
