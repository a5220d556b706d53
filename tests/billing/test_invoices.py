"""Invoice lifecycle through the HTTP API: pending lines → invoices → actions, with hand-computed totals."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from billing.models import Invoice, InvoiceEvent, InvoiceLine
from tests.billing.helpers import FEB, T0, customer, flat_line, iso, metered_feature, profile, usage_line
from tests.factories import FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
AFTER_CLOSE = FEB + dt.timedelta(hours=2)  # after the period and the 1h collection interval


def _pending(api, cust, currency: str, *lines: dict):
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": currency,
                 "lines": list(lines)}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def _invoice(api, cust, **body):
    r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk, **body}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def test_in_advance_flat_fee_and_in_arrears_usage_on_one_invoice(api):
    # given: 1,234 tokens in January at 0.01/token, a 49.99 platform fee in advance
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=d), "data": {"tokens": 617}}
            for d in (3, 20)])
    ingest([{"subject": "acme", "type": "tokens", "time": FEB + dt.timedelta(minutes=5), "data": {"tokens": 999}}])
    with time_machine.travel(AFTER_CLOSE, tick=False):
        created = _pending(api, cust, "USD", flat_line(amount="49.99"),
                           usage_line(feature.key, {"type": "unit", "amount": "0.01"}))
        assert created["isInvoiceNew"] is True
        assert created["invoice"]["status"] == "gathering"
        assert created["invoice"]["number"].startswith("GATHER-ACCO-USD-")
        assert created["invoice"]["statusDetails"]["availableActions"] == {"invoice": {}}
        # when
        [inv] = _invoice(api, cust)
    # then: 49.99 + 1,234 * 0.01 = 49.99 + 12.34 = 62.33; February's event is outside the period
    assert inv["totals"]["amount"] == "62.33"
    assert inv["totals"]["total"] == "62.33"
    lines = {line["name"]: line for line in inv["lines"]}
    assert lines["Tokens"]["quantity"] == "1234"
    assert lines["Tokens"]["children"][0]["perUnitAmount"] == "0.01"
    assert lines["Platform fee"]["totals"]["total"] == "49.99"
    # sandbox issues at once and marks it paid
    assert inv["status"] == "paid"
    assert inv["number"] == "OM-SANDBOX-ACCO-1"
    assert inv["issuedAt"] is not None
    # the gathering invoice is gone (no lines left)
    assert not Invoice.objects.filter(status="gathering", deleted_at__isnull=True).exists()


def test_invoice_total_is_sum_of_lines_with_tiers_package_and_commitment(api):
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 1500}}])
    graduated = {"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "100", "flatPrice": {"type": "flat", "amount": "5"}, "unitPrice": {"type": "unit", "amount": "0.10"}},
        {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0.05"}},
        {"flatPrice": {"type": "flat", "amount": "20"}, "unitPrice": {"type": "unit", "amount": "0.01"}}]}
    volume = {**graduated, "mode": "volume"}
    package = {"type": "package", "amount": "5", "quantityPerPackage": "1000"}
    minimum = {"type": "unit", "amount": "0.01", "minimumAmount": "100"}
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", usage_line(feature.key, graduated, name="graduated"),
                 usage_line(feature.key, volume, name="volume"), usage_line(feature.key, package, name="package"),
                 usage_line(feature.key, minimum, name="minimum"),
                 usage_line(feature.key, {"type": "unit", "amount": "0.02"}, name="discounted",
                            discounts={"percentage": {"percentage": 10}}))
        [inv] = _invoice(api, cust)
    totals = {line["name"]: Decimal(line["totals"]["total"]) for line in inv["lines"]}
    # graduated: 15 + 45 + 25 = 85; volume: 20 + 1500 * 0.01 = 35; package: ceil(1500/1000) = 2 * 5 = 10
    # minimum: 1500 * 0.01 = 15, topped up by 85 to 100; discounted: 1500 * 0.02 = 30 - 10% = 27
    assert totals == {"graduated": Decimal(85), "volume": Decimal(35), "package": Decimal(10),
                      "minimum": Decimal(100), "discounted": Decimal(27)}
    assert Decimal(inv["totals"]["total"]) == Decimal(257)
    assert Decimal(inv["totals"]["discountsTotal"]) == Decimal(3)
    minimum_line = next(line for line in inv["lines"] if line["name"] == "minimum")
    assert [c["category"] for c in minimum_line["children"]] == ["regular", "commitment"]


@pytest.mark.parametrize(("currency", "expected"), [("KWD", "0.864"), ("JPY", "88")])
def test_three_and_zero_decimal_currencies(api, currency, expected):
    # KWD: 7 * 0.12345 = 0.86415 → 0.864; JPY: 7 * 12.5 = 87.5 → 88
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 7}}])
    amount = "0.12345" if currency == "KWD" else "12.5"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, currency, usage_line(feature.key, {"type": "unit", "amount": amount}))
        [inv] = _invoice(api, cust)
    assert inv["currency"] == currency
    assert inv["totals"]["total"] == expected


def test_one_invoice_per_currency(api):
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        again = _pending(api, cust, "USD", flat_line(amount="5"))
        assert again["isInvoiceNew"] is False
        _pending(api, cust, "EUR", flat_line(amount="7"))
        invoices = _invoice(api, cust)
    assert sorted((i["currency"], i["totals"]["total"]) for i in invoices) == [("EUR", "7"), ("USD", "15")]


def test_manual_approval_then_approve_issues(api):
    profile(autoAdvance=False)
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        [inv] = _invoice(api, cust)
        assert inv["statusDetails"]["extendedStatus"] == "draft.manual_approval_needed"
        assert inv["status"] == "draft"
        assert inv["number"].startswith("DRAFT-ACCO-")
        assert "draftUntil" not in inv
        assert set(inv["statusDetails"]["availableActions"]) == {"approve", "delete"}
        assert inv["statusDetails"]["immutable"] is False
        # advance is not available: 400 naming the status and the allowed actions
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/advance")
        assert r.status_code == 400
        assert r["Content-Type"] == PROBLEM
        assert "draft.manual_approval_needed" in r.json()["detail"]
        assert r.json()["extensions"]["availableActions"] == ["approve", "delete"]
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/approve")
    assert r.status_code == 200, r.json()
    approved = r.json()
    assert approved["status"] == "paid"
    # manual: due date counted from issuing (P30D)
    assert approved["dueAt"] == iso(AFTER_CLOSE + dt.timedelta(days=30))
    trail = list(InvoiceEvent.objects.filter(invoice_id=inv["id"]).values_list("to_status", flat=True))
    assert trail[-3:] == ["payment_processing.pending", "payment_processing.booking_authorized_and_settled", "paid"]


def test_usage_invoice_waits_for_collection_then_snapshot_quantities(api):
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 100}}])
    with time_machine.travel(FEB + dt.timedelta(minutes=10), tick=False):
        _pending(api, cust, "USD", usage_line(feature.key, {"type": "unit", "amount": "1"}))
        [inv] = _invoice(api, cust)
        # the collection interval (PT1H) after the last invoiceAt has not passed yet
        assert inv["statusDetails"]["extendedStatus"] == "draft.waiting_for_collection"
        assert inv["collectionAt"] == iso(FEB + dt.timedelta(hours=1))
        assert "snapshotQuantities" in inv["statusDetails"]["availableActions"]
        assert api.post(f"/api/v1/billing/invoices/{inv['id']}/advance").status_code == 400
        # a late event arrives within the grace period
        ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=30), "data": {"tokens": 5}}])
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/snapshot-quantities")
    assert r.status_code == 200, r.json()
    # quantities are final, but the draft period counts from collectionAt: it waits for auto approval
    assert r.json()["statusDetails"]["extendedStatus"] == "draft.waiting_auto_approval"
    assert r.json()["draftUntil"] == iso(FEB + dt.timedelta(hours=1))
    assert r.json()["totals"]["total"] == "105"
    with time_machine.travel(FEB + dt.timedelta(hours=1), tick=False):
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/advance")
    assert r.json()["status"] == "paid"


def test_progressive_billing_splits_usage_lines_at_as_of(api):
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=d), "data": {"tokens": 60}}
            for d in (2, 20)])
    graduated = {"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "100", "unitPrice": {"type": "unit", "amount": "1"}},
        {"unitPrice": {"type": "unit", "amount": "0.5"}}]}
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        _pending(api, cust, "USD", usage_line(feature.key, graduated))
        [first] = _invoice(api, cust, asOf=iso(T0 + dt.timedelta(days=10)))
    # first part: 60 units in tier 1 = 60
    assert first["period"] == {"from": iso(T0), "to": iso(T0 + dt.timedelta(days=10))}
    assert first["totals"]["total"] == "60"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        [second] = _invoice(api, cust)
    # second part: units 60..120: 40 * 1 + 20 * 0.5 = 50 (whole period 120 units = 100 + 10 = 110 = 60 + 50)
    assert second["totals"]["total"] == "50"
    line = second["lines"][0]
    assert line["preLinePeriodQuantity"] == "60"
    assert line["quantity"] == "60"


def test_progressive_billing_only_splits_lines_of_growing_meters(api):
    # given: the same period priced from a SUM meter and from a LATEST meter (gauge), 30 units by Jan 5
    summed = metered_feature("tokens")
    gauge = FeatureFactory(key="gauge", meter=MeterFactory(slug="gauge_meter", aggregation="LATEST",
                                                          event_type="gauge", value_property="$.tokens", group_by={}))
    cust = customer()
    ingest([{"subject": "acme", "type": t, "time": T0 + dt.timedelta(days=4), "data": {"tokens": 30}}
            for t in ("tokens", "gauge")])
    unit = {"type": "unit", "amount": "1"}
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        _pending(api, cust, "USD", usage_line(summed.key, unit), usage_line(gauge.key, unit, name="Gauge"))
        # when: invoiced early
        [early] = _invoice(api, cust, asOf=iso(T0 + dt.timedelta(days=10)))
    # then: only the SUM line is billed so far (30 * 1 = 30); the gauge line waits whole for its period end
    assert [line["name"] for line in early["lines"]] == ["Tokens"]
    assert early["totals"]["total"] == "30"
    gauge_line = InvoiceLine.objects.get(name="Gauge")
    assert (gauge_line.period_start, gauge_line.period_end, gauge_line.split_group_id) == (T0, FEB, None)


def test_minimum_spend_of_a_progressively_billed_line_covers_the_whole_period(api):
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=d), "data": {"tokens": 10}}
            for d in (2, 20)])
    committed = {"type": "unit", "amount": "1", "minimumAmount": "100"}
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        _pending(api, cust, "USD", usage_line(feature.key, committed))
        [first] = _invoice(api, cust, asOf=iso(T0 + dt.timedelta(days=10)))
    # the first part bills its usage only: 10 * 1 = 10 (the minimum is settled on the last part)
    assert first["totals"]["total"] == "10"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        [last] = _invoice(api, cust)
    # the last part: 10 more tokens, and the shortfall of the whole period: 100 - (10 + 10) = 80 → 90
    assert last["totals"]["total"] == "90"
    top_up = next(c for c in last["lines"][0]["children"] if c["category"] == "commitment")
    assert (top_up["totals"]["total"], top_up["period"]) == ("80", {"from": iso(T0), "to": iso(FEB)})


def _model_feature(api, **filters) -> str:
    """A tokens feature on a meter grouped by model, created through the API with the given filters."""
    MeterFactory(slug="llm_tokens", event_type="llm", value_property="$.tokens", group_by={"model": "$.model"})
    r = api.post("/api/v1/features", {"key": "llm", "name": "LLM tokens", "meterSlug": "llm_tokens", **filters},
                 format="json")
    assert r.status_code == 201, r.json()
    return r.json()["key"]


def _llm_events(day: int, tokens_by_model: dict[str, int]) -> None:
    ingest([{"subject": "acme", "type": "llm", "time": T0 + dt.timedelta(days=day, hours=i),
             "data": {"tokens": tokens, "model": model}} for i, (model, tokens) in enumerate(tokens_by_model.items())])


def test_usage_line_counts_only_events_matching_the_features_advanced_filters(api):
    # given: a feature whose advancedMeterGroupByFilters allow gpt-4 and gpt-4o; its meterGroupByFilters
    # (gpt-3.5) are ignored, as upstream, because it has advanced ones
    key = _model_feature(api, meterGroupByFilters={"model": "gpt-3.5"},
                         advancedMeterGroupByFilters={"model": {"$in": ["gpt-4", "gpt-4o"]}})
    cust = customer()
    _llm_events(3, {"gpt-4": 100, "gpt-4o": 50, "gpt-3.5": 1000, "claude": 7})
    _llm_events(15, {"gpt-4": 25, "gpt-3.5": 400})
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", usage_line(key, {"type": "unit", "amount": "0.02"}))
        [inv] = _invoice(api, cust)
    # then: (100 + 50 + 25) tokens * 0.02 = 175 * 0.02 = 3.50; the 1,400 gpt-3.5 and 7 claude tokens are not billed
    assert inv["lines"][0]["quantity"] == "175"
    assert inv["totals"]["total"] == "3.5"


def test_progressive_billing_applies_advanced_filters_to_both_parts(api):
    # given: everything but gpt-3.5 counts, priced graduated so the second part depends on the first's quantity
    key = _model_feature(api, advancedMeterGroupByFilters={"model": {"$ne": "gpt-3.5"}})
    cust = customer()
    _llm_events(2, {"gpt-4": 10, "gpt-3.5": 5})
    _llm_events(20, {"gpt-4": 20, "gpt-3.5": 7, "claude": 3})
    graduated = {"type": "tiered", "mode": "graduated", "tiers": [
        {"upToAmount": "15", "unitPrice": {"type": "unit", "amount": "1"}},
        {"unitPrice": {"type": "unit", "amount": "0.5"}}]}
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        _pending(api, cust, "USD", usage_line(key, graduated))
        [first] = _invoice(api, cust, asOf=iso(T0 + dt.timedelta(days=10)))
    # first part: 10 gpt-4 tokens in tier 1 = 10
    assert first["lines"][0]["quantity"] == "10"
    assert first["totals"]["total"] == "10"
    with time_machine.travel(AFTER_CLOSE, tick=False):
        [second] = _invoice(api, cust)
    # second part: 20 + 3 = 23 tokens after 10: units 10..33 = 5 * 1 + 18 * 0.5 = 14 (whole: 15 + 9 = 24 = 10 + 14)
    line = second["lines"][0]
    assert (line["preLinePeriodQuantity"], line["quantity"]) == ("10", "23")
    assert second["totals"]["total"] == "14"


def test_invoice_pending_lines_with_nothing_to_invoice_is_400(api):
    cust = customer()
    r = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM


def test_create_line_items_rejects_bad_lines_without_writing(api):
    cust = customer()
    metered_feature()
    bad = [
        {**flat_line(), "period": {"from": iso(FEB), "to": iso(T0)}},
        usage_line("no_such_feature", {"type": "unit", "amount": "1"}),
        usage_line("tokens", {"type": "tiered", "mode": "graduated", "tiers": [
            {"upToAmount": "10", "unitPrice": {"type": "unit", "amount": "1"}}]}),
        usage_line("tokens", {"type": "package", "amount": "1", "quantityPerPackage": "0"}),
        usage_line("tokens", {"type": "unit", "amount": "-1"}),
        {**flat_line(), "rateCard": {"price": None}},
    ]
    for line in bad:
        r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "USD", "lines": [line]},
                     format="json")
        assert r.status_code == 400, line
        assert r["Content-Type"] == PROBLEM
    r = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines", {"currency": "XXQ",
                 "lines": [flat_line()]}, format="json")
    assert r.status_code == 400
    assert not InvoiceLine.objects.exists()
    assert not Invoice.objects.exists()


def test_sandbox_target_payment_status_then_void(api):
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        gathering = Invoice.objects.get(status="gathering")
        # the metadata is copied from the profile to the invoice in OpenMeter; here set on the draft before issuing
        profile(autoAdvance=False)
        [inv] = _invoice(api, cust)
        Invoice.objects.filter(pk=inv["id"]).update(metadata={"openmeter.io/sandbox/target-payment-status": "failed"})
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/approve")
        assert r.json()["statusDetails"]["extendedStatus"] == "payment_processing.failed"
        assert r.json()["status"] == "payment_processing"
        assert "void" in r.json()["statusDetails"]["availableActions"]
        partial = api.post(f"/api/v1/billing/invoices/{inv['id']}/void", {"action": {"percentage": 50, "action": {
            "type": "discard"}}, "reason": "half"}, format="json")
        assert partial.status_code == 400
        assert Invoice.objects.get(pk=inv["id"]).status == "payment_processing.failed"
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/void", {"action": {"percentage": 100, "action": {
            "type": "discard"}}, "reason": "customer left"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "voided"
    assert r.json()["voidedAt"] == iso(AFTER_CLOSE)
    assert gathering.pk != inv["id"]
    # void again: not available
    r = api.post(f"/api/v1/billing/invoices/{inv['id']}/void", {"action": {"percentage": 100, "action": {
        "type": "discard"}}, "reason": "again"}, format="json")
    assert r.status_code == 400
    assert "voided" in r.json()["detail"]


def test_delete_draft_only(api):
    profile(autoAdvance=False)
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        _pending(api, cust, "EUR", flat_line(amount="10"))
        invoices = _invoice(api, cust)
        draft, other = invoices
        assert api.delete(f"/api/v1/billing/invoices/{draft['id']}").status_code == 204
        deleted = api.get(f"/api/v1/billing/invoices/{draft['id']}").json()
        assert deleted["statusDetails"]["extendedStatus"] == "deleted"
        assert deleted["deletedAt"] is not None
        api.post(f"/api/v1/billing/invoices/{other['id']}/approve")
        r = api.delete(f"/api/v1/billing/invoices/{other['id']}")
    assert r.status_code == 400
    listed = api.get("/api/v1/billing/invoices").json()
    assert [i["id"] for i in listed["items"]] == [other["id"]]
    assert api.get("/api/v1/billing/invoices?includeDeleted=true").json()["totalCount"] == 2


def test_invoice_list_filters_and_expand(api):
    cust, other = customer(), customer(name="Globex", subjects=("globex",))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        _invoice(api, cust)
        _pending(api, other, "USD", flat_line(amount="10"))
    everything = api.get("/api/v1/billing/invoices").json()
    assert everything["totalCount"] == 2
    assert "lines" not in everything["items"][0]
    paid = api.get("/api/v1/billing/invoices?statuses=paid&expand=lines").json()
    assert [i["customer"]["name"] for i in paid["items"]] == ["Acme Corp"]
    assert len(paid["items"][0]["lines"]) == 1
    gathering = api.get(f"/api/v1/billing/invoices?customers={other.pk.lower()}&extendedStatuses=gathering").json()
    assert gathering["totalCount"] == 1
    assert api.get("/api/v1/billing/invoices?statuses=draft").json()["totalCount"] == 0
    by_name = api.get("/api/v1/billing/invoices?orderBy=customer.name&order=DESC").json()
    assert [i["customer"]["name"] for i in by_name["items"]] == ["Globex", "Acme Corp"]
    assert api.get("/api/v1/billing/invoices/01G65Z755AFWAKHE12NY0CQ9FH").status_code == 404


def test_invoice_list_time_filters_read_the_query_as_the_sdks_send_it(api):
    # given Acme's invoice, created and issued at AFTER_CLOSE, and Globex's gathering invoice a day later
    cust, other = customer(), customer(name="Globex", subjects=("globex",))
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        issued = _invoice(api, cust)[0]["id"]
    with time_machine.travel(AFTER_CLOSE + dt.timedelta(days=1), tick=False):
        gathering = _pending(api, other, "USD", flat_line(amount="10"))["invoice"]["id"]

    def ids(query: str) -> list[str]:
        response = api.get(f"/api/v1/billing/invoices?{query}")
        assert response.status_code == 200, response.content
        return [i["id"] for i in response.json()["items"]]

    # then bounds are inclusive and any offset is read as the instant it names
    assert ids(f"createdBefore={iso(AFTER_CLOSE)}") == [issued]
    assert ids("createdAfter=2026-02-02T04:00:00%2B02:00") == [gathering]  # 02:00Z on Feb 2
    assert ids(f"issuedAfter={iso(AFTER_CLOSE - dt.timedelta(hours=1))}") == [issued]
    assert ids(f"issuedBefore={iso(AFTER_CLOSE - dt.timedelta(hours=1))}") == []
    # lists are repeated keys
    assert ids("statuses=gathering&statuses=paid") == [issued, gathering]
    # a bad value is the usual 400 problem naming the parameter
    bad = api.get("/api/v1/billing/invoices?issuedAfter=yesterday")
    assert (bad.status_code, bad["Content-Type"]) == (400, PROBLEM)
    assert bad.json()["detail"].startswith("issuedAfter: invalid RFC 3339 date-time 'yesterday'")


def test_invoice_numbers_are_gap_free_per_profile(api):
    customers = [customer(name=f"Cust {n}", subjects=(f"s{n}",)) for n in range(3)]
    with time_machine.travel(AFTER_CLOSE, tick=False):
        for c in customers:
            _pending(api, c, "USD", flat_line(amount="1"))
        # a failing request in between must not burn a number
        bad = api.post("/api/v1/billing/invoices/invoice", {"customerId": customers[0].pk, "filters": {
            "lineIds": ["01G65Z755AFWAKHE12NY0CQ9FH"]}}, format="json")
        assert bad.status_code == 400
        numbers = [_invoice(api, c)[0]["number"] for c in customers]
    assert numbers == ["OM-SANDBOX-CU0-1", "OM-SANDBOX-CU1-2", "OM-SANDBOX-CU2-3"]


def test_invalid_draft_then_retry(api):
    # given: a usage line whose feature is archived before collection
    from catalog.models import Feature

    feature = metered_feature()
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", usage_line(feature.key, {"type": "unit", "amount": "1"}))
        Feature.objects.filter(pk=feature.pk).update(archived_at=AFTER_CLOSE)
        [inv] = _invoice(api, cust)
        # then: validation fails, the issue is shown, retry is the way out
        assert inv["statusDetails"]["extendedStatus"] == "draft.invalid"
        assert inv["statusDetails"]["failed"] is True
        assert "retry" in inv["statusDetails"]["availableActions"]
        assert feature.key in inv["validationIssues"][0]["message"]
        assert inv["validationIssues"][0]["severity"] == "critical"
        # when: the feature is back and the invoice is retried
        Feature.objects.filter(pk=feature.pk).update(archived_at=None)
        r = api.post(f"/api/v1/billing/invoices/{inv['id']}/retry")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "paid"
    assert r.json()["validationIssues"] == []


def test_gathering_invoice_shows_usage_to_date(api):
    feature = metered_feature()
    cust = customer()
    ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 30}}])
    with time_machine.travel(T0 + dt.timedelta(days=5), tick=False):
        created = _pending(api, cust, "USD", usage_line(feature.key, {"type": "unit", "amount": "0.5"}))
        # 30 * 0.5 = 15 so far
        assert created["invoice"]["totals"]["total"] == "15"
        ingest([{"subject": "acme", "type": "tokens", "time": T0 + dt.timedelta(days=2), "data": {"tokens": 10}}])
        got = api.get(f"/api/v1/billing/invoices/{created['invoice']['id']}").json()
    # 40 * 0.5 = 20, nothing stored
    assert got["totals"]["total"] == "20"
    assert got["lines"][0]["quantity"] == "40"
    assert Invoice.objects.get(pk=got["id"]).total == 0


def test_invoice_expand_values_follow_the_spec(api):
    cust = customer()
    with time_machine.travel(AFTER_CLOSE, tick=False):
        _pending(api, cust, "USD", flat_line(amount="10"))
        [inv] = _invoice(api, cust)
    # `preceding` is a spec value: accepted; with no credit notes there is no preceding document to show
    got = api.get(f"/api/v1/billing/invoices/{inv['id']}?expand=preceding&expand=lines")
    assert got.status_code == 200
    assert "preceding" not in got.json()
    assert len(got.json()["lines"]) == 1
    listed = api.get("/api/v1/billing/invoices?expand=preceding")
    assert [i["id"] for i in listed.json()["items"]] == [inv["id"]]
    for path in (f"/api/v1/billing/invoices/{inv['id']}?expand=everything", "/api/v1/billing/invoices?expand=line"):
        bad = api.get(path)
        assert bad.status_code == 400
        assert bad["Content-Type"] == PROBLEM
