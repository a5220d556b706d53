"""V2 (customer-based) entitlements through HTTP: create, value, grants, override, delete, reset, history."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from entitlements.models import Entitlement, Grant, UsageReset
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def at(days=0, hours=0, minutes=0):
    return T0 + dt.timedelta(days=days, hours=hours, minutes=minutes)


def z(when):
    return when.isoformat().replace("+00:00", "Z")


@pytest.fixture
def setup(db):
    meter = MeterFactory(slug="tokens", group_by={"model": "$.model"})
    feature = FeatureFactory(key="gpt_tokens", meter=meter, meter_group_by_filters={"model": "gpt-4"})
    customer = CustomerFactory(key="acme", subjects=["acme-api"])
    return customer, feature


def use(subject, when, tokens, model="gpt-4"):
    ingest([{"subject": subject, "time": when, "data": {"tokens": tokens, "model": model}}])


def create_metered(api, customer, **extra):
    period = {"interval": "MONTH", "anchor": "2026-03-01T00:00:00Z"}
    body = {"type": "metered", "featureKey": "gpt_tokens", "usagePeriod": period, **extra}
    return api.post(f"/api/v2/customers/{customer.key}/entitlements", body, format="json")


def grant(api, customer, amount, **extra):
    body = {"amount": amount, "effectiveAt": "2026-03-01T00:00:00Z", **extra}
    response = api.post(f"/api/v2/customers/{customer.key}/entitlements/gpt_tokens/grants", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def value(api, customer, when):
    response = api.get(f"/api/v2/customers/{customer.key}/entitlements/gpt_tokens/value",
                       {"time": when.isoformat().replace("+00:00", "Z")})
    assert response.status_code == 200, response.json()
    return response.json()


def test_metered_entitlement_full_flow(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        created = create_metered(api, customer, measureUsageFrom="CURRENT_PERIOD_START")
        assert created.status_code == 201, created.json()
        body = created.json()
        assert body["type"] == "metered"
        assert body["customerId"] == customer.pk and body["customerKey"] == "acme"
        assert body["usagePeriod"] == {"interval": "MONTH", "anchor": "2026-03-01T00:00:00Z", "intervalISO": "P1M"}
        assert body["currentUsagePeriod"] == {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
        assert body["measureUsageFrom"] == "2026-03-01T00:00:00Z"
        g1 = grant(api, customer, 100, priority=2)
        g2 = grant(api, customer, 50, priority=1, expiration={"duration": "DAY", "count": 10})
        assert g2["expiresAt"] == "2026-03-11T00:00:00Z"
        assert g1["maxRolloverAmount"] == 100  # V2 default: the amount
    # usage: 30 by the key subject, 40 by the attributed subject, 999 on another model (filtered out)
    use("acme", at(days=1), 30)
    use("acme-api", at(days=2), 40)
    use("acme", at(days=2), 999, model="gpt-3")
    use("someone-else", at(days=2), 500)
    with time_machine.travel(at(days=5), tick=False):
        v = value(api, customer, at(days=5))
    # 70 burns g2 first (priority 1): g2 = 50 - 50 = 0, g1 = 100 - 20 = 80
    assert v == {"hasAccess": True, "balance": 80, "usage": 70, "overage": 0, "totalAvailableGrantAmount": 150,
                 "grantBalances": {g1["id"]: 80, g2["id"]: 0}}
    # after g2 expired (day 10), 90 more usage: g1 80 → 0, overage 10
    use("acme", at(days=12), 90)
    with time_machine.travel(at(days=13), tick=False):
        v = value(api, customer, at(days=13))
    assert (v["balance"], v["usage"], v["overage"], v["hasAccess"]) == (0, 160, 10, False)
    # a past time is evaluated as of that time
    with time_machine.travel(at(days=13), tick=False):
        assert value(api, customer, at(days=1, hours=12))["usage"] == 30


def test_decimal_amounts_are_exact(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        assert create_metered(api, customer).status_code == 201
        grant(api, customer, "10.1")
        grant(api, customer, Decimal("0.2"))
    use("acme", at(hours=1), 0.3)
    with time_machine.travel(at(days=1), tick=False):
        v = value(api, customer, at(days=1))
    # 10.1 + 0.2 - 0.3 = 10.0 exactly
    assert Decimal(str(v["balance"])) == Decimal("10")


def test_soft_limit_keeps_access_in_overage(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        assert create_metered(api, customer, isSoftLimit=True).status_code == 201
        grant(api, customer, 10)
    use("acme", at(hours=1), 25)
    with time_machine.travel(at(days=1), tick=False):
        v = value(api, customer, at(days=1))
    assert (v["hasAccess"], v["balance"], v["overage"]) == (True, 0, 15)


def test_issue_after_reset_is_a_grant_reissued_each_period(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        body = create_metered(api, customer, issue={"amount": 20, "priority": 3}).json()
        assert body["issueAfterReset"] == 20 and body["issue"] == {"amount": 20, "priority": 3}
    issued = Grant.objects.get(entitlement_id=body["id"])
    assert (issued.amount, issued.min_rollover_amount, issued.max_rollover_amount, issued.priority) == (20, 20, 20, 3)
    use("acme", at(days=3), 25)
    with time_machine.travel(at(days=40), tick=False):
        # March: 25 of 20 → overage 5 (forgiven at the April 1 reset); April: 20 again, no usage
        assert value(api, customer, at(days=20))["overage"] == 5
        v = value(api, customer, at(days=40))
    assert (v["balance"], v["usage"], v["overage"]) == (20, 0, 0)


def test_values_are_right_before_the_reset_job_ran(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        create_metered(api, customer)
        grant(api, customer, 100, maxRolloverAmount=30)
    use("acme", at(days=3), 40)
    use("acme", at(days=33), 5)
    assert not UsageReset.objects.exists()
    with time_machine.travel(at(days=35), tick=False):
        v = value(api, customer, at(days=35))
        ent = api.get("/api/v2/customers/acme/entitlements/gpt_tokens").json()
    # March: 100 - 40 = 60, rolled to min(30, 60) = 30 on April 1; April: 30 - 5 = 25
    assert (v["balance"], v["usage"]) == (25, 5)
    assert ent["currentUsagePeriod"] == {"from": "2026-04-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}
    assert ent["lastReset"] == "2026-04-01T00:00:00Z"


def test_second_active_entitlement_is_409_and_writes_nothing(api, setup):
    customer, _ = setup
    assert create_metered(api, customer).status_code == 201
    response = create_metered(api, customer)
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert Entitlement.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"type": "metered", "featureKey": "no_such_feature", "usagePeriod": {"interval": "DAY"}}, 404, "feature"),
        ({"type": "metered", "featureKey": "gpt_tokens"}, 400, "usagePeriod"),
        ({"type": "metered", "featureKey": "gpt_tokens", "usagePeriod": {"interval": "FORTNIGHT"}}, 400, "interval"),
        ({"type": "metered", "featureKey": "plain", "usagePeriod": {"interval": "DAY"}}, 400, "meter"),
        ({"type": "metered", "featureKey": "averaged", "usagePeriod": {"interval": "DAY"}}, 400, "AVG"),
        ({"type": "static", "featureKey": "plain"}, 400, "config"),
        ({"type": "static", "featureKey": "plain", "config": "[1, 2]"}, 400, "config"),
        ({"type": "boolean"}, 400, "featureKey"),
        ({"type": "metered", "featureKey": "gpt_tokens", "usagePeriod": {"interval": "DAY"}, "issueAfterReset": -1},
         400, "issueAfterReset"),
        ({"type": "metered", "featureKey": "gpt_tokens", "usagePeriod": {"interval": "DAY"},
          "grants": [{"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z",
                      "expiration": {"duration": "DECADE", "count": 1}}]},
         400, "duration"),
        ({"type": "unknown", "featureKey": "gpt_tokens"}, 400, "type"),
    ],
)
def test_bad_entitlement_input_is_4xx_and_writes_nothing(api, setup, body, status, needle):
    customer, _ = setup
    FeatureFactory(key="plain", meter=None)
    FeatureFactory(key="averaged", meter=MeterFactory(slug="avg_meter", aggregation="AVG"))
    response = api.post(f"/api/v2/customers/{customer.key}/entitlements", body, format="json")
    assert response.status_code == status, response.json()
    assert response["Content-Type"] == PROBLEM
    assert needle in response.json()["detail"]
    assert Entitlement.objects.count() == 0
    assert Grant.objects.count() == 0


def test_unknown_customer_is_404(api, setup):
    response = api.post("/api/v2/customers/nobody/entitlements", {"type": "boolean", "featureKey": "gpt_tokens"},
                        format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_value_of_an_unknown_customer_is_404_of_no_entitlement_no_access_and_a_deleted_one_is_read_as_of_before(
        api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        created = create_metered(api, customer).json()
        grant(api, customer, 100)
    use("acme", at(days=1), 30)
    with time_machine.travel(at(days=2), tick=False):
        for url in ["/api/v2/customers/nobody/entitlements/gpt_tokens/value",
                    "/api/v1/customers/nobody/entitlements/gpt_tokens/value"]:
            response = api.get(url)
            assert response.status_code == 404, url
            assert response["Content-Type"] == PROBLEM
        # a customer with no such entitlement has no access (upstream's NoAccessValue), nothing else
        for url in ["/api/v2/customers/acme/entitlements/no_such_feature/value",
                    "/api/v2/customers/acme/entitlements/01J0000000000000000000000X/value",
                    "/api/v1/customers/acme/entitlements/no_such_feature/value"]:
            response = api.get(url)
            assert (response.status_code, response.json()) == (200, {"hasAccess": False}), url
        assert api.delete(f"/api/v2/customers/acme/entitlements/{created['id']}").status_code == 204
        # deleted: nothing of the feature is live now ...
        assert api.get("/api/v2/customers/acme/entitlements/gpt_tokens/value").json() == {"hasAccess": False}
        # ... but a read at a time it was active gives that time's value: 100 - 30
        before = api.get("/api/v2/customers/acme/entitlements/gpt_tokens/value",
                         {"time": z(at(days=1, hours=12))}).json()
    assert (before["hasAccess"], before["balance"], before["usage"]) == (True, 70, 30)
    customer.deleted_at = at(days=3)
    customer.save(update_fields=["deleted_at"])
    with time_machine.travel(at(days=4), tick=False):
        assert api.get("/api/v2/customers/acme/entitlements/gpt_tokens/value").status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"amount": -5, "effectiveAt": "2026-03-01T00:00:00Z"}, "amount"),
        ({"amount": "abc", "effectiveAt": "2026-03-01T00:00:00Z"}, "amount"),
        ({"amount": 5}, "effectiveAt"),
        ({"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z", "priority": 0}, "priority"),
        ({"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z", "expiration": {"duration": "DAY", "count": 0}}, "count"),
        ({"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z", "expiration": {"duration": "MINUTE", "count": 1}},
         "duration"),
        ({"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z", "minRolloverAmount": 10, "maxRolloverAmount": 5},
         "minRolloverAmount"),
        ({"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z", "recurrence": {"interval": "P0D"}}, "interval"),
    ],
)
def test_bad_grant_input_is_400_and_writes_nothing(api, setup, body, needle):
    customer, _ = setup
    create_metered(api, customer)
    response = api.post("/api/v2/customers/acme/entitlements/gpt_tokens/grants", body, format="json")
    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == PROBLEM
    assert needle in response.json()["detail"]
    assert Grant.objects.count() == 0


def test_grants_on_a_boolean_entitlement_are_rejected(api, setup):
    _customer, _ = setup
    FeatureFactory(key="sso", meter=None)
    api.post("/api/v2/customers/acme/entitlements", {"type": "boolean", "featureKey": "sso"}, format="json")
    response = api.post("/api/v2/customers/acme/entitlements/sso/grants",
                        {"amount": 5, "effectiveAt": "2026-03-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert Grant.objects.count() == 0


def test_boolean_and_static_values_and_customer_access(api, setup):
    customer, _ = setup
    FeatureFactory(key="sso", meter=None)
    FeatureFactory(key="limits", meter=None)
    assert api.post("/api/v2/customers/acme/entitlements", {"type": "boolean", "featureKey": "sso"},
                    format="json").status_code == 201
    static = api.post("/api/v2/customers/acme/entitlements",
                      {"type": "static", "featureKey": "limits", "config": '{"seats": 5}'}, format="json")
    assert static.status_code == 201
    assert static.json()["config"] == '{"seats": 5}'
    assert api.get("/api/v2/customers/acme/entitlements/sso/value").json() == {"hasAccess": True}
    assert api.get("/api/v2/customers/acme/entitlements/limits/value").json() == {
        "hasAccess": True, "config": '{"seats": 5}'}
    create_metered(api, customer)
    access = api.get("/api/v1/customers/acme/access")
    assert access.status_code == 200
    entitlements = access.json()["entitlements"]
    assert set(entitlements) == {"sso", "limits", "gpt_tokens"}
    assert entitlements["gpt_tokens"]["hasAccess"] is False  # no grants: balance 0
    assert entitlements["sso"] == {"hasAccess": True}
    # the V1 customer value by feature key
    assert api.get("/api/v1/customers/acme/entitlements/sso/value").json() == {"hasAccess": True}


def test_override_replaces_the_active_entitlement(api, setup):
    customer, _ = setup
    old = create_metered(api, customer).json()
    response = api.put("/api/v2/customers/acme/entitlements/gpt_tokens/override",
                       {"type": "metered", "featureKey": "gpt_tokens", "usagePeriod": {"interval": "DAY"},
                        "isSoftLimit": True}, format="json")
    assert response.status_code == 201, response.json()
    new = response.json()
    assert new["id"] != old["id"] and new["isSoftLimit"] is True
    assert Entitlement.objects.get(pk=old["id"]).deleted_at is not None
    assert api.get("/api/v2/customers/acme/entitlements/gpt_tokens").json()["id"] == new["id"]
    # override of something that does not exist is 404
    missing = api.put("/api/v2/customers/acme/entitlements/other_feature/override",
                      {"type": "boolean", "featureKey": "gpt_tokens"}, format="json")
    assert missing.status_code == 404


def test_delete_ends_the_entitlement(api, setup):
    customer, _ = setup
    created = create_metered(api, customer).json()
    assert api.delete(f"/api/v2/customers/acme/entitlements/{created['id']}").status_code == 204
    assert api.get("/api/v2/customers/acme/entitlements").json()["totalCount"] == 0
    listed = api.get("/api/v2/customers/acme/entitlements", {"includeDeleted": "true"}).json()
    assert listed["items"][0]["deletedAt"]
    assert create_metered(api, customer).status_code == 201  # the feature is free again


def test_lists_and_get_by_id(api, setup):
    customer, _ = setup
    other = CustomerFactory(key="other")
    FeatureFactory(key="sso", meter=None)
    metered = create_metered(api, customer).json()
    api.post("/api/v2/customers/other/entitlements", {"type": "boolean", "featureKey": "sso"}, format="json")
    page = api.get("/api/v2/entitlements").json()
    assert page["totalCount"] == 2
    assert [e["featureKey"] for e in api.get("/api/v2/entitlements", {"customerKeys": "other"}).json()["items"]] == ["sso"]
    assert [e["featureKey"] for e in api.get("/api/v2/entitlements", {"customerIds": other.pk}).json()["items"]] == ["sso"]
    by_id = api.get("/api/v2/entitlements", {"customerIds": [other.pk.lower(), "01G65Z755AFWAKHE12NY0CQ9FH"]}).json()
    assert [e["featureKey"] for e in by_id["items"]] == ["sso"]  # ids in any case
    assert [e["type"] for e in api.get("/api/v2/entitlements", {"entitlementType": "metered"}).json()["items"]] == [
        "metered"]
    assert [e["featureKey"] for e in api.get("/api/v2/entitlements", {"feature": "gpt_tokens"}).json()["items"]] == [
        "gpt_tokens"]
    assert api.get(f"/api/v2/entitlements/{metered['id']}").json()["id"] == metered["id"]
    assert api.get("/api/v2/entitlements/01J0000000000000000000000X").status_code == 404
    # V1 list: a plain array unless paged, with subjectKey
    v1 = api.get("/api/v1/entitlements").json()
    assert isinstance(v1, list) and {e["subjectKey"] for e in v1} == {"acme-api", "other"}
    assert api.get("/api/v1/entitlements", {"page": 1}).json()["totalCount"] == 2
    assert api.get("/api/v1/entitlements", {"subject": "acme-api"}).json()[0]["featureKey"] == "gpt_tokens"


def test_grant_lists_both_shapes_and_void(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        create_metered(api, customer)
        g1 = grant(api, customer, 100)
        g2 = grant(api, customer, 50, metadata={"reason": "promo"})
    use("acme", at(days=1), 30)
    with time_machine.travel(at(days=2), tick=False):
        per_entitlement = api.get("/api/v2/customers/acme/entitlements/gpt_tokens/grants").json()
        assert per_entitlement["totalCount"] == 2
        assert api.get("/api/v2/grants", {"customer": "acme"}).json()["totalCount"] == 2
        assert api.get("/api/v2/grants", {"feature": "gpt_tokens", "pageSize": 1}).json()["pageSize"] == 1
        v1 = api.get("/api/v1/grants").json()
        assert isinstance(v1, list) and len(v1) == 2
        assert api.get("/api/v1/grants", {"page": 1, "pageSize": 1}).json()["totalCount"] == 2
        # void g1 at day 2: it burnt 30 before (burnt stays), the rest is gone
        assert api.delete(f"/api/v1/grants/{g1['id']}").status_code == 204
        assert api.delete(f"/api/v1/grants/{g1['id']}").status_code == 409
        v = value(api, customer, at(days=2))
        listed = {g["id"]: g for g in api.get("/api/v2/grants", {"includeDeleted": "true"}).json()["items"]}
    assert listed[g1["id"]]["voidedAt"] == "2026-03-03T00:00:00Z"
    assert listed[g2["id"]]["metadata"] == {"reason": "promo"}
    # g1 burnt 30 (created first, same priority); g1 voided → only g2's 50 left
    assert (v["balance"], v["usage"], v["totalAvailableGrantAmount"]) == (50, 30, 80)
    assert api.delete("/api/v1/grants/01J0000000000000000000000X").status_code == 404


def test_create_with_inline_grants_uses_v2_grant_defaults(api, setup):
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        response = create_metered(api, customer, grants=[
            {"amount": 30, "effectiveAt": "2026-03-01T00:00:00Z", "priority": 2},
            {"amount": "12.5", "effectiveAt": "2026-03-02T00:00:00Z", "expiration": {"duration": "WEEK", "count": 1},
             "minRolloverAmount": 1, "metadata": {"source": "inline"}},
        ])
        assert response.status_code == 201, response.json()
        grants = api.get("/api/v2/customers/acme/entitlements/gpt_tokens/grants").json()["items"]
    assert [(g["amount"], g["maxRolloverAmount"], g["minRolloverAmount"]) for g in grants] == [(30, 30, 0), (12.5, 12.5, 1)]
    assert grants[1]["expiresAt"] == "2026-03-09T00:00:00Z"
    assert grants[1]["metadata"] == {"source": "inline"}
    use("acme", at(days=3), 20)
    with time_machine.travel(at(days=4), tick=False):
        v = value(api, customer, at(days=4))
    # priority 1 (the 12.5) burns first: 12.5 gone, then 7.5 from the 30 → 22.5
    assert (v["balance"], v["usage"]) == (22.5, 20)


def test_usage_past_1e19_is_answered_exactly_and_kept_in_snapshots(api, setup):
    # given a grant of 9999999999999999999 tokens and three events of 9E+18 in the period: 2.7E+19, more than one
    # value (and a NUMERIC(38, 19) column) may hold
    customer, _ = setup
    with time_machine.travel(at(), tick=False):
        assert create_metered(api, customer, isSoftLimit=True).status_code == 201
        grant(api, customer, "9999999999999999999")
    for minute in range(3):
        use("acme", at(days=1, minutes=minute), "9000000000000000000")
    # when the value is read four days later (a checkpoint older than the grace window is saved), then again
    # from that checkpoint
    with time_machine.travel(at(days=5), tick=False):
        first, second = value(api, customer, at(days=5)), value(api, customer, at(days=5))
    # then both answer 2.7E+19 used, 0 left and 27000000000000000000 - 9999999999999999999 over
    for answer in (first, second):
        assert (answer["usage"], answer["balance"], answer["overage"]) == (
            27000000000000000000, 0, 17000000000000000001)
        assert answer["hasAccess"] is True  # a soft limit
    snapshot = Entitlement.objects.get().snapshots.order_by("at").last()
    assert (snapshot.usage, snapshot.overage) == (Decimal("27000000000000000000"), Decimal("17000000000000000001"))
