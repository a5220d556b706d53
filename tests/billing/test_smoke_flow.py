import datetime as dt

import pytest
import time_machine

from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_smoke(api):
    meter = MeterFactory(slug="tokens", event_type="request", value_property="$.tokens", group_by={})
    feature = FeatureFactory(key="tokens", meter=meter)
    customer = CustomerFactory(name="Acme Corp", subjects=["acme"])
    ingest([{"subject": "acme", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 150}}])
    with time_machine.travel(T0 + dt.timedelta(days=40), tick=False):
        r = api.post(f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines", {
            "currency": "USD",
            "lines": [
                {"name": "Tokens", "period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
                 "invoiceAt": "2026-02-01T00:00:00Z", "rateCard": {"featureKey": feature.key,
                 "price": {"type": "unit", "amount": "0.1"}}},
                {"name": "Platform fee", "period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
                 "invoiceAt": "2026-01-01T00:00:00Z", "price": {"type": "flat", "amount": "10"}},
            ],
        }, format="json")
        assert r.status_code == 201, r.json()
        body = r.json()
        assert body["isInvoiceNew"] is True
        r = api.post("/api/v1/billing/invoices/invoice", {"customerId": customer.pk}, format="json")
        assert r.status_code == 201, r.json()
        inv = r.json()[0]
        print(inv["status"], inv["statusDetails"], inv["totals"], inv["number"])
        assert inv["totals"]["total"] == "25"
