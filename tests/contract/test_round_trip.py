"""A generated round trip over every create and update operation of the vendored OpenMeter spec.

For each POST/PUT/PATCH with a JSON body, a valid body (when the operation has one here, `SEEDS`) and bodies that
schemathesis generates from the request schema (seeded: `derandomize`, a few examples each) are sent to the real
server, with the resources the path names created first. Whatever the body, the answer is never a 5xx, a 4xx is a
problem+json, and every answer validates against the spec (the suite-wide hook in tests/conftest.py). A 2xx must
give back every input field that the response schema also has, and so must the resource read back with its GET.

What "gives back" means (the normalisation, the same for every operation):
- numbers and Numeric strings compare as decimals (`"10.50"` == `10.5`), ISO 8601 durations as durations;
- date-times compare as instants, at the server's resolution: a time may come back cut to its second (billing,
  subscriptions: the meters' resolution) or to its minute (entitlements and grants, as upstream truncates them);
- a null, an empty object or an empty list sent for an optional field may come back absent (optional fields without
  a value are left out, as the Go server does);
- input keys the response schema does not have are not compared (write-only inputs: API keys, secrets); where one
  key means another thing in the response than in the request (`IGNORED`), it is named with the reason;
- lists compare item by item when they have the same length; the server may order a list it owns (see `IGNORED`).
"""

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import isodate
import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, given, settings

from customers.models import Customer
from tests.contract.spec import _defs as spec_defs
from tests.contract.spec import operation_of, response_schema, spec
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, flat_fee_card, plan_body

pytestmark = pytest.mark.django_db

EXAMPLES = 2  # generated bodies per operation (plus its seed)
PROBLEM = "application/problem+json"


def _schemathesis_schema() -> Any:
    schema = schemathesis.openapi.from_path(str(spec_path()))
    schema.config.generation.update(codec="utf-8", allow_x00=False, allow_extra_parameters=False)
    return schema


def spec_path() -> Any:
    from tests.contract.spec import SPEC_PATH

    return SPEC_PATH


def write_operations() -> list[tuple[str, str]]:
    out = []
    for path, item in spec()["paths"].items():
        for method in ("post", "put", "patch"):
            operation = item.get(method)
            if operation and "application/json" in ((operation.get("requestBody") or {}).get("content") or {}):
                out.append((method.upper(), path))
    return sorted(out)


# --- the world each operation needs ------------------------------------------------------------------------

@dataclass
class World:
    """Resources that bodies and paths refer to, made once per test through the API."""

    api: Any
    ids: dict[str, str] = field(default_factory=dict)

    def post(self, path: str, body: Any, status: int = 201) -> dict[str, Any]:
        response = self.api.post(path, body, format="json")
        assert response.status_code == status, (path, response.content[:500])
        return response.json() if response.content else {}


def world(api) -> World:
    w = World(api)
    meter = MeterFactory(slug="rt_tokens", event_type="rt", value_property="$.value", group_by={"model": "$.model"})
    feature = FeatureFactory(key="rt_tokens", meter=meter)
    customer = CustomerFactory(key="rt-customer", subjects=["rt-subject"], currency="USD")
    w.ids.update(meter=meter.slug, feature=feature.key, feature_id=feature.pk, customer=customer.pk,
                 customer_key=customer.key, subject="rt-subject")
    return w


def _plan(w: World) -> None:
    plan = w.post("/api/v1/plans", plan_body("rt_plan", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="10")]}]))
    w.post(f"/api/v1/plans/{plan['id']}/publish", None, 200)
    w.ids["plan"] = plan["id"]


def _addon(w: World) -> None:
    addon = w.post("/api/v1/addons", {"key": "rt_addon", "name": "Seats", "currency": "USD",
                                       "instanceType": "multiple", "rateCards": [flat_fee_card(key="seat", amount="5")]})
    w.post(f"/api/v1/addons/{addon['id']}/publish", None, 200)
    w.ids["addon"] = addon["id"]


def _subscription(w: World) -> None:
    _plan(w)
    sub = w.post("/api/v1/subscriptions", {"plan": {"key": "rt_plan"}, "customerId": w.ids["customer"]})
    w.ids["subscription"] = sub["id"]


def _entitlement(w: World) -> None:
    ent = w.post(f"/api/v2/customers/{w.ids['customer']}/entitlements", {
        "type": "metered", "featureKey": "rt_tokens", "usagePeriod": {"interval": "MONTH"}})
    w.ids["entitlement"] = ent["id"]


def _invoice(w: World) -> None:
    created = w.post(f"/api/v1/billing/customers/{w.ids['customer']}/invoices/pending-lines", {
        "currency": "USD", "lines": [{"name": "Setup", "period": {"from": "2026-03-01T00:00:00Z",
                                                                  "to": "2026-03-02T00:00:00Z"},
                                      "invoiceAt": "2026-03-01T00:00:00Z",
                                      "rateCard": {"price": {"type": "flat", "amount": "10"}}}]})
    w.ids["invoice"] = created["invoice"]["id"]


def _profile(w: World) -> None:
    default = next(p for p in w.api.get("/api/v1/billing/profiles").json()["items"] if p["default"])
    w.ids["profile"] = default["id"]
    w.ids["app"] = default["apps"]["invoicing"]["id"]


def _channel(w: World) -> None:
    channel = w.post("/api/v1/notification/channels", {"type": "WEBHOOK", "name": "Hooks",
                                                       "url": "https://hooks.example.com/openmeter"})
    w.ids["channel"] = channel["id"]


def _rule(w: World) -> None:
    _channel(w)
    rule = w.post("/api/v1/notification/rules", {"type": "invoice.created", "name": "Invoices",
                                                  "channels": [w.ids["channel"]]})
    w.ids["rule"] = rule["id"]


def _plan_addon(w: World) -> None:
    plan = w.post("/api/v1/plans", plan_body("rt_draft", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="10")]}]))
    w.ids["draft_plan"] = plan["id"]
    _addon(w)
    link = w.post(f"/api/v1/plans/{plan['id']}/addons", {"addonId": w.ids["addon"], "fromPlanPhase": "main"})
    w.ids["plan_addon"] = link["id"]


def _subscription_addon(w: World) -> None:
    _plan_addon(w)
    w.post(f"/api/v1/plans/{w.ids['draft_plan']}/publish", None, 200)
    sub = w.post("/api/v1/subscriptions", {"plan": {"key": "rt_draft"}, "customerId": w.ids["customer"]})
    w.ids["subscription"] = sub["id"]
    bought = w.post(f"/api/v1/subscriptions/{sub['id']}/addons", {
        "name": "Seats", "addon": {"id": w.ids["addon"]}, "quantity": 1, "timing": "immediate"})
    w.ids["subscription_addon"] = bought["id"]


# Path parameter → (what to make first, the id it takes). A parameter missing here is a 404 path: still checked.
PATH_IDS: dict[str, tuple[Callable[[World], None] | None, str]] = {
    "addonId": (_addon, "addon"), "planId": (_plan_addon, "draft_plan"), "planAddonId": (_plan_addon, "plan_addon"),
    "customerId": (None, "customer"), "customerIdOrKey": (None, "customer"), "meterIdOrSlug": (None, "meter"),
    "subscriptionId": (_subscription, "subscription"), "subscriptionAddonId": (_subscription_addon, "subscription_addon"),
    "invoiceId": (_invoice, "invoice"), "channelId": (_channel, "channel"), "ruleId": (_rule, "rule"),
    "id": (_profile, "profile"), "entitlementIdOrFeatureKey": (_entitlement, "entitlement"),
    "entitlementId": (_entitlement, "entitlement"), "subjectIdOrKey": (None, "subject"),
}
# paths whose {id} is an app's, not a billing profile's
APP_PATHS = ("/api/v1/apps/{id}", "/api/v1/apps/{id}/stripe/api-key", "/api/v1/apps/{id}/stripe/webhook")


def path_for(w: World, template: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "type":
            return "sandbox"
        if name == "eventId":
            return "01J0000000000000000000000X"
        make, key = PATH_IDS[name]
        if name == "id" and template in APP_PATHS:
            make, key = _profile, "app"
        if key not in w.ids and make is not None:
            make(w)
        return w.ids[key]

    if "{subscriptionAddonId}" in template:
        _subscription_addon(w)  # its own subscription, with the add-on bought
    return re.sub(r"\{([^}]+)\}", value, template)


# --- the comparison ----------------------------------------------------------------------------------------

# (method, path template) → input keys (dotted, `[]` for list items) that do not come back as sent, and why
IGNORED: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/api/v1/billing/profiles"): {"apps": "app ids in, app references ({id}) out"},
    ("PUT", "/api/v1/customers/{customerIdOrKey}/apps"): {"": "upsert answers the customer's app data as stored"},
}


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith("P"):
        return None
    try:
        return isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None


def _same_scalar(sent: Any, got: Any) -> bool:
    if sent == got:
        return True
    if (a := _instant(sent)) is not None and (b := _instant(got)) is not None:
        return b in (a, a.replace(microsecond=0), a.replace(second=0, microsecond=0))
    if (a := _duration(sent)) is not None and (b := _duration(got)) is not None:
        return a == b
    a, b = _decimal(sent), _decimal(got)
    return a is not None and b is not None and a == b and not isinstance(sent, bool)


def _properties(schema: Any) -> dict[str, Any] | None:
    """The properties a (resolved) object schema allows, merged over allOf/anyOf/oneOf."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return _properties(spec_defs()[schema["$ref"].split("/")[-1]])
    props = dict(schema.get("properties") or {})
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key) or ():
            props.update(_properties(part) or {})
    return props


def _items(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return _items(spec_defs()[schema["$ref"].split("/")[-1]])
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key) or ():
            if (found := _items(part)) is not None:
                return found
    return schema.get("items")


def echo_mismatches(sent: Any, got: Any, schema: Any, ignored: dict[str, str], where: str = "") -> list[str]:
    """Where a field sent does not come back equal (see the module docstring for what equal means)."""
    if where in ignored:
        return []
    if isinstance(sent, dict):
        props = _properties(schema)
        if props is None or not isinstance(got, dict):
            return [] if props is None else [f"{where or '$'}: sent an object, got {got!r:.80}"]
        out = []
        for key, value in sent.items():
            if key not in props:
                continue
            here = f"{where}.{key}" if where else key
            if key not in got:
                if value in (None, {}, []) or here in ignored:
                    continue
                out.append(f"{here}: sent {value!r:.80}, absent in the answer")
                continue
            out += echo_mismatches(value, got[key], props[key], ignored, here)
        return out
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [f"{where}: sent {len(sent)} items, got {got!r:.80}"]
        return [m for s, g in zip(sent, got, strict=True)
                for m in echo_mismatches(s, g, _items(schema), ignored, f"{where}[]")]
    if sent is None and got is None:
        return []
    return [] if _same_scalar(sent, got) else [f"{where}: sent {sent!r:.80}, got {got!r:.80}"]


# --- one operation -----------------------------------------------------------------------------------------

def read_back_path(method: str, template: str, path: str, answer: Any) -> str | None:
    """The GET that reads what was written: the same path (PUT/PATCH), or the created resource's path."""
    if method in ("PUT", "PATCH"):
        found = operation_of("GET", path)
        return path if found is not None and found[0] == template else None
    if isinstance(answer, dict) and isinstance(answer.get("id"), str):
        candidate = f"{path}/{answer['id']}"
        found = operation_of("GET", candidate)
        if found is not None and found[0].count("{") == template.count("{") + 1:
            return candidate
    return None


def exchange(w: World, method: str, template: str, path: str, body: Any) -> None:
    response = getattr(w.api, method.lower())(path, body, format="json")
    status = response.status_code
    assert status < 500, f"{method} {template} → {status} for {body!r:.300}: {response.content[:300]!r}"
    if status >= 400:
        assert response["Content-Type"] == PROBLEM, f"{method} {template} → {status} {response['Content-Type']}"
        return
    answer = response.json() if response.content else None
    operation = operation_of(method, path)
    assert operation is not None
    schema = response_schema(operation[1], status, "application/json")
    ignored = IGNORED.get((method, template), {})
    if answer is None or schema is None:
        return
    mismatches = echo_mismatches(body, answer, schema, ignored)
    assert not mismatches, f"{method} {template} answered {status} but did not give back: {mismatches}"
    read = read_back_path(method, template, path, answer)
    if read is not None:
        again = w.api.get(read)
        assert again.status_code == 200, (read, again.content[:300])
        get_schema = response_schema(operation_of("GET", read)[1], 200, "application/json")
        mismatches = echo_mismatches(body, again.json(), get_schema, ignored)
        assert not mismatches, f"GET {read} after {method} {template} did not give back: {mismatches}"


OPERATIONS = write_operations()


def test_the_round_trip_covers_every_create_and_update_operation():
    assert len(OPERATIONS) == 56
    assert {name for _, path in OPERATIONS for name in re.findall(r"\{([^}]+)\}", path)} <= {*PATH_IDS, "type",
                                                                                             "eventId"}


@pytest.fixture(scope="module")
def generated() -> Any:
    return _schemathesis_schema()


@pytest.mark.parametrize(("method", "template"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_bodies_round_trip(api, generated, method, template):
    w = world(api)
    path = path_for(w, template)
    seed = SEEDS.get((method, template))
    if seed is not None:
        exchange(w, method, template, path, seed(w))
    strategy = generated[template][method].as_strategy()

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        if case.media_type == "application/json":
            exchange(w, method, template, path, case.body)

    run()


# --- valid bodies, so that every operation that can be is also exercised past validation -----------------

SEEDS: dict[tuple[str, str], Callable[[World], Any]] = {
    ("POST", "/api/v1/customers"): lambda w: {
        "name": "Round Trip Inc", "key": "round-trip", "description": "seed", "primaryEmail": "billing@example.com",
        "currency": "EUR", "usageAttribution": {"subjectKeys": ["rt-one", "rt-two"]}, "metadata": {"tier": "gold"},
        "billingAddress": {"country": "DE", "city": "Berlin", "line1": "Unter den Linden 1"}},
    ("PUT", "/api/v1/customers/{customerIdOrKey}"): lambda w: {
        "name": "Renamed Inc", "key": "rt-customer", "usageAttribution": {"subjectKeys": ["rt-subject"]},
        "currency": "USD", "metadata": {"a": "b"}},
    ("POST", "/api/v1/meters"): lambda w: {
        "slug": "rt_calls", "name": "Calls", "eventType": "call", "aggregation": "SUM", "valueProperty": "$.n",
        "groupBy": {"region": "$.region"}, "description": "seed", "eventFrom": "2026-01-01T00:00:00Z"},
    ("PUT", "/api/v1/meters/{meterIdOrSlug}"): lambda w: {
        "name": "Tokens", "description": "updated", "groupBy": {"model": "$.model", "team": "$.team"}},
    ("POST", "/api/v1/features"): lambda w: {
        "key": "rt_feature", "name": "Round trip", "meterSlug": "rt_tokens", "meterGroupByFilters": {"model": "a"},
        "metadata": {"k": "v"}},
    ("POST", "/api/v1/plans"): lambda w: plan_body("rt_seed", description="seed", phases=[
        {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="12.5")]}]),
    ("PUT", "/api/v1/plans/{planId}"): lambda w: {
        "name": "Draft", "billingCadence": "P1M", "phases": [
            {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="11")]}]},
    ("POST", "/api/v1/addons"): lambda w: {
        "key": "rt_addon_seed", "name": "Extra", "currency": "USD", "instanceType": "single",
        "rateCards": [flat_fee_card(key="extra", amount="3")]},
    ("PUT", "/api/v1/addons/{addonId}"): lambda w: {
        "name": "Seats 2", "instanceType": "multiple", "rateCards": [flat_fee_card(key="seat", amount="6")]},
    ("POST", "/api/v1/plans/{planId}/addons"): lambda w: {"addonId": _fresh_addon(w), "fromPlanPhase": "main",
                                                         "maxQuantity": 3},
    ("PUT", "/api/v1/plans/{planId}/addons/{planAddonId}"): lambda w: {"fromPlanPhase": "main", "maxQuantity": 2},
    ("POST", "/api/v1/subscriptions"): lambda w: {
        "customerId": _fresh_customer(w), "name": "Seeded", "description": "seed",
        "customPlan": {"name": "Bespoke", "currency": "USD", "billingCadence": "P1M", "phases": [
            {"key": "main", "name": "Main", "duration": None, "rateCards": [flat_fee_card(amount="20")]}]}},
    ("POST", "/api/v2/customers/{customerIdOrKey}/entitlements"): lambda w: {
        "type": "boolean", "featureKey": _fresh_feature(w), "metadata": {"x": "y"}},
    ("POST", "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants"): lambda w: {
        "amount": 100, "priority": 3, "effectiveAt": _this_minute(), "minRolloverAmount": 5,
        "maxRolloverAmount": 50, "metadata": {"why": "seed"}},
    ("POST", "/api/v1/billing/profiles"): lambda w: {
        "name": "Seeded profile", "description": "seed", "default": False, "supplier": {"name": "Acme GmbH"},
        "workflow": {"invoicing": {"autoAdvance": False, "dueAfter": "P14D"}},
        "apps": {"tax": _app(w), "invoicing": _app(w), "payment": _app(w)}},
    ("PUT", "/api/v1/billing/profiles/{id}"): lambda w: {
        "name": "Default", "supplier": {"name": "Supplier"}, "default": True,
        "workflow": {"collection": {"interval": "PT2H"}}},
    ("POST", "/api/v1/notification/channels"): lambda w: {
        "type": "WEBHOOK", "name": "Seed hooks", "url": "https://hooks.example.com/seed", "disabled": True},
    ("POST", "/api/v1/billing/customers/{customerId}/invoices/pending-lines"): lambda w: {
        "currency": "USD", "lines": [{"name": "Tokens", "period": {"from": "2026-03-01T00:00:00Z",
                                                                   "to": "2026-04-01T00:00:00Z"},
                                      "invoiceAt": "2026-04-01T00:00:00Z",
                                      "rateCard": {"featureKey": "rt_tokens",
                                                   "price": {"type": "unit", "amount": "0.5"}}}]},
    ("POST", "/api/v1/subjects"): lambda w: [{"key": "rt-seed-subject", "displayName": "Seed"}],
    ("POST", "/api/v1/portal/tokens"): lambda w: {"subject": "rt-subject", "allowedMeterSlugs": ["rt_tokens"]},
}


def _this_minute() -> str:
    return timezone.now().replace(second=0, microsecond=0).isoformat().replace("+00:00", "Z")


def _fresh_addon(w: World) -> str:
    addon = w.post("/api/v1/addons", {"key": "rt_other", "name": "Other", "currency": "USD", "instanceType": "single",
                                       "rateCards": [flat_fee_card(key="other", amount="1")]})
    w.post(f"/api/v1/addons/{addon['id']}/publish", None, 200)
    return addon["id"]


def _fresh_customer(w: World) -> str:
    return Customer.objects.create(name="Fresh", key="rt-fresh").pk


def _fresh_feature(w: World) -> str:
    return FeatureFactory(key="rt_flag").key


def _app(w: World) -> str:
    if "app" not in w.ids:
        _profile(w)
    return w.ids["app"]
