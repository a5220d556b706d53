"""No API input is a 500 for being longer than its database column (issue 13, item 5).

Generated over every write operation of the spec: each one's valid request body (stored with a 2xx first), then
every string in it, and every key of its free-form maps, replaced by a string longer than any CharField of any
model. The answer must not be a 500; a 400 names the field and leaves the database as it was. When the 400 says
the field holds at most N characters, N characters must then be accepted (not a 500): the limit is the column's.
"""

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.db import connection, models, transaction
from rest_framework.test import APIClient

from billing.models import Invoice
from billing.services.profiles import ProfileApps, billing_profile_create
from notifications.services.channels import channel_create
from notifications.services.events import EventSubject, event_create
from notifications.services.rules import rule_create
from openmeter_site.core.models import ApiKey
from tests.billing.helpers import custom_invoicing_app, flat_line, profile
from tests.contract.test_routes import operations
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, addon_body, flat_fee_card, plan_body, usage_card

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def char_columns() -> Iterator[models.CharField]:
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField) and field.max_length:
                yield field


TOO_LONG = "x" * (max(field.max_length for field in char_columns()) + 1)
MAX_LENGTH_RE = re.compile(r"(?:no more than|at most) (\d+) characters")


@dataclass
class World:
    """One of everything the write operations refer to, made through the API and the services."""

    customer: str
    custom_customer: str
    plan: str
    draft_plan: str
    plan_addon: str
    addon: str
    other_addon: str
    draft_addon: str
    subscription: str
    subscription_addon: str
    profile: str
    sandbox_app: str
    draft_invoice: str
    issued_invoice: str
    custom_draft: str
    custom_draft_line: str
    custom_issuing: str
    entitlement: str
    channel: str
    rule: str
    event: str
    portal_token: str


def ok(response) -> dict:
    assert 200 <= response.status_code < 300, response.content
    return response.json() if response.content else {}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built once for the module and committed; each test's requests run in its own transaction on top of it.
    The tables are emptied afterwards, as after a transactional test."""
    with django_db_blocker.unblock():
        _, raw = ApiKey.issue("world")
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            with time_machine.travel(NOW, tick=False):
                yield _build_world(api)
        finally:
            call_command("flush", interactive=False, verbosity=0)


def _build_world(api) -> World:
    meter = MeterFactory(slug="tokens", event_type="tokens", value_property="$.tokens", group_by={"model": "$.model"})
    FeatureFactory(key="tokens", meter=meter)
    FeatureFactory(key="seats", meter=None, meter_slug=None)
    customer = CustomerFactory(key="acme", name="Acme", currency="USD", subjects=["acme"])
    sandbox = profile(autoAdvance=False).invoicing_app  # drafts wait for approval
    erp = custom_invoicing_app()
    custom_profile = billing_profile_create(
        name="ERP profile", supplier={"name": "Supplier"}, default=False, workflow=None,
        apps=ProfileApps(tax=erp.pk, invoicing=erp.pk, payment=erp.pk),
    )
    custom_customer = CustomerFactory(key="erp-customer", currency="USD", subjects=["erp-customer"])
    ok(api.put(f"/api/v1/billing/customers/{custom_customer.pk}", {"billingProfileId": custom_profile.pk},
               format="json"))
    # catalog: a published plan with two add-ons (one bought), a draft plan and a draft add-on to edit
    addon, storage = (ok(api.post("/api/v1/addons", addon_body(key), format="json")) for key in ("seats", "storage"))
    for published in (addon, storage):
        ok(api.post(f"/api/v1/addons/{published['id']}/publish"))
    draft_addon = ok(api.post("/api/v1/addons", addon_body("support"), format="json"))
    plan = ok(api.post("/api/v1/plans", plan_body("pro", phases=[{
        "key": "default", "name": "Default", "duration": None,
        "rateCards": [flat_fee_card(key="seat_fee"), usage_card("tokens")],
    }]), format="json"))
    for linked in (addon, storage):
        ok(api.post(f"/api/v1/plans/{plan['id']}/addons", {"addonId": linked["id"], "fromPlanPhase": "default"},
                    format="json"))
    ok(api.post(f"/api/v1/plans/{plan['id']}/publish"))
    draft_plan = ok(api.post("/api/v1/plans", plan_body("starter"), format="json"))
    plan_addon = ok(api.post(f"/api/v1/plans/{draft_plan['id']}/addons",
                             {"addonId": addon["id"], "fromPlanPhase": "default"}, format="json"))
    CustomerFactory(key="subscriber", currency="USD", subjects=["subscriber"])
    subscription = ok(api.post("/api/v1/subscriptions", {"plan": {"key": "pro"}, "customerKey": "subscriber"},
                               format="json"))
    subscription_addon = ok(api.post(f"/api/v1/subscriptions/{subscription['id']}/addons",
                                     {"addon": {"id": addon["id"]}, "name": "Seats", "quantity": 1,
                                      "timing": "immediate"}, format="json"))
    # a second version of the plan to migrate to
    next_version = ok(api.post("/api/v1/plans/pro/next"))
    ok(api.post(f"/api/v1/plans/{next_version['id']}/publish"))
    # billing: a second profile, a gathering line, a draft and an issued invoice, and custom-invoicing ones
    second_profile = billing_profile_create(
        name="Second", supplier={"name": "Supplier"}, default=False, workflow=None,
        apps=ProfileApps(tax=sandbox.pk, invoicing=sandbox.pk, payment=sandbox.pk),
    )
    draft, issued = (_invoice(api, customer.pk) for _ in range(2))
    # the sandbox leaves an invoice with this target in payment_processing.failed, where it can be voided
    Invoice.objects.filter(pk=issued["id"]).update(metadata={"openmeter.io/sandbox/target-payment-status": "failed"})
    ok(api.post(f"/api/v1/billing/invoices/{issued['id']}/approve"))
    ok(api.post(f"/api/v1/billing/customers/{customer.pk}/invoices/pending-lines",
                {"currency": "USD", "lines": [flat_line(amount="7")]}, format="json"))
    custom_draft, custom_issuing = (_invoice(api, custom_customer.pk) for _ in range(2))
    ok(api.post(f"/api/v1/apps/custom-invoicing/{custom_issuing['id']}/draft/synchronized", {}, format="json"))
    # entitlements and notifications
    entitlement = ok(api.post("/api/v2/customers/acme/entitlements", {
        "type": "metered", "featureKey": "tokens", "measureUsageFrom": "2026-03-01T00:00:00Z",
        "usagePeriod": {"interval": "MONTH", "anchor": "2026-03-01T00:00:00Z"},
    }, format="json"))
    channel = channel_create(name="hook", url="http://127.0.0.1:9/hook")
    rule = rule_create(type="invoice.created", name="invoices", channel_ids=[channel.id])
    event = event_create(rule=rule, data={"id": "01JAAAAAAAAAAAAAAAAAAAAAAA"}, about=EventSubject())
    portal_token = ok(api.post("/api/v1/portal/tokens", {"subject": "acme"}, format="json"))
    return World(
        customer=customer.pk, custom_customer=custom_customer.pk, plan=plan["id"], draft_plan=draft_plan["id"],
        plan_addon=plan_addon["id"], addon=addon["id"], other_addon=storage["id"], draft_addon=draft_addon["id"],
        subscription=subscription["id"],
        subscription_addon=subscription_addon["id"], profile=second_profile.pk, sandbox_app=sandbox.pk,
        draft_invoice=draft["id"], issued_invoice=issued["id"], custom_draft=custom_draft["id"],
        custom_draft_line=custom_draft["lines"][0]["id"], custom_issuing=custom_issuing["id"],
        entitlement=entitlement["id"], channel=channel.id, rule=rule.id, event=event.id,
        portal_token=portal_token["id"],
    )


def _invoice(api, customer_id: str) -> dict:
    ok(api.post(f"/api/v1/billing/customers/{customer_id}/invoices/pending-lines",
                {"currency": "USD", "lines": [flat_line(amount="10")]}, format="json"))
    return ok(api.post("/api/v1/billing/invoices/invoice", {"customerId": customer_id}, format="json"))[0]


def _rate_cards() -> list[dict]:
    return [
        flat_fee_card(key="base_fee", description="Base fee", metadata={"team": "core"}),
        usage_card("tokens", key="tokens", description="Tokens", entitlementTemplate={
            "type": "metered", "usagePeriod": "P1M", "metadata": {"team": "core"}}),
    ]


def _plan(key: str) -> dict:
    return plan_body(key, description="A plan", metadata={"tier": "gold"}, phases=[
        {"key": "default", "name": "Default", "description": "The phase", "metadata": {"p": "1"}, "duration": None,
         "rateCards": _rate_cards()},
    ])


def _channel() -> dict:
    return {"type": "WEBHOOK", "name": "hook", "url": "http://127.0.0.1:9/hook", "metadata": {"team": "ops"},
            "customHeaders": {"X-Tenant": "acme"}}


def _customer() -> dict:
    return {
        "name": "Globex", "key": "globex", "description": "A customer", "primaryEmail": "billing@globex.test",
        "currency": "USD", "usageAttribution": {"subjectKeys": ["globex"]}, "metadata": {"tier": "gold"},
        "billingAddress": {"country": "US", "postalCode": "10001", "state": "NY", "city": "New York",
                           "line1": "1 Main St", "line2": "Floor 2", "phoneNumber": "+1 555 0100"},
    }


def _profile() -> dict:
    return {
        "name": "EU entity", "description": "Europe", "metadata": {"region": "eu"}, "default": False,
        "supplier": {"name": "Acme GmbH", "key": "acme-gmbh", "taxId": {"code": "DE123"},
                     "addresses": [{"country": "DE", "city": "Berlin", "postalCode": "10115", "state": "BE",
                                    "line1": "Strasse 1", "line2": "Hof", "phoneNumber": "+49 30 0000"}]},
        "workflow": {"invoicing": {"autoAdvance": False, "dueAfter": "P14D"}, "collection": {"interval": "PT2H"}},
    }


def _pending_line() -> dict:
    line = flat_line(name="Setup", amount="10")
    return {**line, "description": "One-off setup", "metadata": {"order": "42"}}


def _subscription_create() -> dict:
    return {"plan": {"key": "pro"}, "customerKey": "erp-customer", "name": "Pro", "description": "Pro plan",
            "metadata": {"order": "1"}}


# Each write operation of the spec: (method, path, body) for the world, or the reason it has no string to test.
Body = Callable[[World], tuple[str, Any]]
WRITES: dict[tuple[str, str], Body | str] = {
    ("POST", "/api/v1/events"): lambda w: ("/api/v1/events", [{
        "specversion": "1.0", "id": "e-1", "source": "svc", "type": "tokens", "subject": "acme",
        "time": "2026-03-10T11:00:00Z", "data": {"tokens": 5, "model": "gpt"},
    }]),
    ("POST", "/api/v1/meters"): lambda w: ("/api/v1/meters", {
        "slug": "requests", "name": "Requests", "description": "API requests", "aggregation": "SUM",
        "eventType": "request", "valueProperty": "$.n", "groupBy": {"route": "$.route"},
        "eventFrom": "2026-01-01T00:00:00Z",
    }),
    ("PUT", "/api/v1/meters/{meterIdOrSlug}"): lambda w: ("/api/v1/meters/tokens", {
        "name": "Tokens", "description": "LLM tokens", "groupBy": {"model": "$.model", "region": "$.region"},
    }),
    ("POST", "/api/v1/meters/{meterIdOrSlug}/query"): lambda w: ("/api/v1/meters/tokens/query", {
        "from": "2026-03-01T00:00:00Z", "to": "2026-03-10T00:00:00Z", "subject": ["acme"], "groupBy": ["model"],
        "filterGroupBy": {"model": ["gpt"]}, "windowSize": "DAY", "windowTimeZone": "Europe/Berlin",
        "clientId": "client-1",
    }),
    ("POST", "/api/v1/subjects"): lambda w: ("/api/v1/subjects", [{
        "key": "subject-1", "displayName": "Subject one", "metadata": {"plan": "pro"}, "stripeCustomerId": "cus_1",
    }]),
    ("POST", "/api/v1/customers"): lambda w: ("/api/v1/customers", _customer()),
    ("PUT", "/api/v1/customers/{customerIdOrKey}"): lambda w: (f"/api/v1/customers/{w.customer}", _customer()),
    ("PUT", "/api/v1/customers/{customerIdOrKey}/apps"): lambda w: (f"/api/v1/customers/{w.customer}/apps", [
        {"type": "sandbox", "id": w.sandbox_app, "metadata": {"k": "v"}},
    ]),
    ("POST", "/api/v1/features"): lambda w: ("/api/v1/features", {
        "key": "calls", "name": "Calls", "meterSlug": "tokens", "metadata": {"team": "api"},
        "meterGroupByFilters": {"model": "gpt"},
    }),
    ("POST", "/api/v1/plans"): lambda w: ("/api/v1/plans", _plan("enterprise")),
    ("PUT", "/api/v1/plans/{planId}"): lambda w: (f"/api/v1/plans/{w.draft_plan}", {
        k: v for k, v in _plan("starter").items() if k not in ("key", "currency")
    }),
    ("POST", "/api/v1/plans/{planId}/addons"): lambda w: (f"/api/v1/plans/{w.draft_plan}/addons", {
        "addonId": w.other_addon, "fromPlanPhase": "default", "metadata": {"k": "v"},
    }),
    ("PUT", "/api/v1/plans/{planId}/addons/{planAddonId}"): lambda w: (
        f"/api/v1/plans/{w.draft_plan}/addons/{w.plan_addon}",
        {"fromPlanPhase": "default", "maxQuantity": 3, "metadata": {"k": "v"}},
    ),
    ("POST", "/api/v1/addons"): lambda w: ("/api/v1/addons", addon_body(
        "storage", description="Storage", metadata={"k": "v"}, cards=_rate_cards()[:1],
    )),
    ("PUT", "/api/v1/addons/{addonId}"): lambda w: (f"/api/v1/addons/{w.draft_addon}", {
        k: v for k, v in addon_body(description="Support", metadata={"k": "v"}).items() if k not in ("key", "currency")
    }),
    ("POST", "/api/v1/subscriptions"): lambda w: ("/api/v1/subscriptions", _subscription_create()),
    ("PATCH", "/api/v1/subscriptions/{subscriptionId}"): lambda w: (f"/api/v1/subscriptions/{w.subscription}", {
        "customizations": [{"op": "add_item", "phaseKey": "default",
                            "rateCard": flat_fee_card(key="support", description="Support")}],
    }),
    ("POST", "/api/v1/subscriptions/{subscriptionId}/addons"): lambda w: (
        f"/api/v1/subscriptions/{w.subscription}/addons",
        {"addon": {"id": w.other_addon}, "quantity": 2, "timing": "immediate", "name": "More seats",
         "description": "Two more", "metadata": {"k": "v"}},
    ),
    ("PATCH", "/api/v1/subscriptions/{subscriptionId}/addons/{subscriptionAddonId}"): lambda w: (
        f"/api/v1/subscriptions/{w.subscription}/addons/{w.subscription_addon}",
        {"quantity": 3, "timing": "immediate", "name": "Seats", "description": "Three", "metadata": {"k": "v"}},
    ),
    ("POST", "/api/v1/subscriptions/{subscriptionId}/cancel"): lambda w: (
        f"/api/v1/subscriptions/{w.subscription}/cancel", {"timing": "next_billing_cycle"},
    ),
    ("POST", "/api/v1/subscriptions/{subscriptionId}/change"): lambda w: (
        f"/api/v1/subscriptions/{w.subscription}/change",
        {"timing": "immediate", "customPlan": {k: v for k, v in plan_body("custom").items() if k != "key"},
         "name": "Custom", "description": "Changed", "metadata": {"k": "v"}},
    ),
    ("POST", "/api/v1/subscriptions/{subscriptionId}/migrate"): lambda w: (
        f"/api/v1/subscriptions/{w.subscription}/migrate", {"timing": "immediate", "startingPhase": "default"},
    ),
    ("POST", "/api/v1/billing/profiles"): lambda w: ("/api/v1/billing/profiles", {
        **_profile(), "apps": {"tax": w.sandbox_app, "invoicing": w.sandbox_app, "payment": w.sandbox_app},
    }),
    ("PUT", "/api/v1/billing/profiles/{id}"): lambda w: (f"/api/v1/billing/profiles/{w.profile}", _profile()),
    ("PUT", "/api/v1/billing/customers/{customerId}"): lambda w: (
        f"/api/v1/billing/customers/{w.customer}", {"billingProfileId": w.profile},
    ),
    ("POST", "/api/v1/billing/customers/{customerId}/invoices/pending-lines"): lambda w: (
        f"/api/v1/billing/customers/{w.customer}/invoices/pending-lines",
        {"currency": "USD", "lines": [_pending_line()]},
    ),
    ("POST", "/api/v1/billing/customers/{customerId}/invoices/simulate"): lambda w: (
        f"/api/v1/billing/customers/{w.customer}/invoices/simulate",
        {"currency": "USD", "number": "SIM-1", "lines": [{**_pending_line(), "quantity": "1"}]},
    ),
    ("POST", "/api/v1/billing/invoices/invoice"): lambda w: (
        "/api/v1/billing/invoices/invoice", {"customerId": w.customer},
    ),
    ("PUT", "/api/v1/billing/invoices/{invoiceId}"): lambda w: (f"/api/v1/billing/invoices/{w.draft_invoice}", {
        "description": "Edited", "metadata": {"k": "v"},
        "supplier": {"name": "Supplier Inc", "taxId": {"code": "US1"}, "addresses": [{"country": "US", "city": "NYC"}]},
        "customer": {"name": "Acme", "addresses": [{"country": "US", "line1": "2 Main St"}]},
        "workflow": {"workflow": {"invoicing": {"autoAdvance": False}}},
        "lines": [{**_pending_line(), "name": "Edited line"}],
    }),
    ("POST", "/api/v1/billing/invoices/{invoiceId}/void"): lambda w: (
        f"/api/v1/billing/invoices/{w.issued_invoice}/void",
        {"action": {"percentage": 100, "action": {"type": "discard"}}, "reason": "Sent by mistake",
         "overrides": None},
    ),
    ("POST", "/api/v1/apps/custom-invoicing/{invoiceId}/draft/synchronized"): lambda w: (
        f"/api/v1/apps/custom-invoicing/{w.custom_draft}/draft/synchronized",
        {"invoicing": {"invoiceNumber": "ERP-1", "externalId": "erp-1",
                       "lineExternalIds": [{"lineId": w.custom_draft_line, "externalId": "erp-line-1"}]}},
    ),
    ("POST", "/api/v1/apps/custom-invoicing/{invoiceId}/issuing/synchronized"): lambda w: (
        f"/api/v1/apps/custom-invoicing/{w.custom_issuing}/issuing/synchronized",
        {"invoicing": {"invoiceNumber": "ERP-2", "sentToCustomerAt": "2026-03-10T12:00:00Z"},
         "payment": {"externalId": "pay-1"}},
    ),
    ("POST", "/api/v1/apps/custom-invoicing/{invoiceId}/payment/status"): "the body is one enum (trigger)",
    ("PUT", "/api/v1/apps/{id}"): lambda w: (f"/api/v1/apps/{w.sandbox_app}", {
        "type": "sandbox", "name": "Sandbox", "description": "Test app", "metadata": {"k": "v"},
    }),
    ("POST", "/api/v1/notification/channels"): lambda w: ("/api/v1/notification/channels", _channel()),
    ("PUT", "/api/v1/notification/channels/{channelId}"): lambda w: (
        f"/api/v1/notification/channels/{w.channel}", _channel(),
    ),
    ("POST", "/api/v1/notification/rules"): lambda w: ("/api/v1/notification/rules", {
        "type": "invoice.created", "name": "Invoices", "channels": [w.channel], "metadata": {"k": "v"},
    }),
    ("PUT", "/api/v1/notification/rules/{ruleId}"): lambda w: (f"/api/v1/notification/rules/{w.rule}", {
        "type": "invoice.created", "name": "Invoices", "channels": [w.channel], "metadata": {"k": "v"},
    }),
    ("POST", "/api/v1/notification/events/{eventId}/resend"): lambda w: (
        f"/api/v1/notification/events/{w.event}/resend", {"channels": [w.channel]},
    ),
    ("POST", "/api/v1/portal/tokens"): lambda w: ("/api/v1/portal/tokens", {
        "subject": "acme", "allowedMeterSlugs": ["tokens"], "expiresAt": "2026-03-11T00:00:00Z",
    }),
    ("POST", "/api/v1/portal/tokens/invalidate"): lambda w: ("/api/v1/portal/tokens/invalidate", {
        "subject": "acme", "id": w.portal_token,
    }),
    ("POST", "/api/v1/subjects/{subjectIdOrKey}/entitlements"): lambda w: ("/api/v1/subjects/acme/entitlements", {
        "type": "boolean", "featureKey": "seats", "metadata": {"k": "v"},
    }),
    ("POST", "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants"): lambda w: (
        "/api/v1/subjects/acme/entitlements/tokens/grants",
        {"amount": 100, "effectiveAt": "2026-03-01T00:00:00Z", "metadata": {"k": "v"},
         "expiration": {"duration": "MONTH", "count": 1}, "recurrence": {"interval": "MONTH"}},
    ),
    ("PUT", "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override"): lambda w: (
        "/api/v1/subjects/acme/entitlements/tokens/override",
        {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "DAY"}, "metadata": {"k": "v"}},
    ),
    ("POST", "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/reset"): lambda w: (
        f"/api/v1/subjects/acme/entitlements/{w.entitlement}/reset", {"effectiveAt": "2026-03-10T12:00:00Z"},
    ),
    ("POST", "/api/v2/customers/{customerIdOrKey}/entitlements"): lambda w: ("/api/v2/customers/acme/entitlements", {
        "type": "static", "featureKey": "seats", "config": "{\"seats\": 3}", "metadata": {"k": "v"},
    }),
    ("POST", "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants"): lambda w: (
        "/api/v2/customers/acme/entitlements/tokens/grants",
        {"amount": 100, "effectiveAt": "2026-03-01T00:00:00Z", "metadata": {"k": "v"},
         "annotations": {"source": "sales"}},
    ),
    ("PUT", "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override"): lambda w: (
        "/api/v2/customers/acme/entitlements/tokens/override",
        {"type": "metered", "featureKey": "tokens", "usagePeriod": {"interval": "DAY"}, "metadata": {"k": "v"}},
    ),
    ("POST", "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/reset"): lambda w: (
        "/api/v2/customers/acme/entitlements/tokens/reset", {"effectiveAt": "2026-03-10T12:00:00Z"},
    ),
    ("POST", "/api/v1/marketplace/listings/{type}/install"): lambda w: (
        "/api/v1/marketplace/listings/custom_invoicing/install", {"name": "ERP", "createBillingProfile": False},
    ),
    # these call Stripe: tests/integrations/test_field_lengths.py walks them on localstripe
    ("PUT", "/api/v1/apps/{id}/stripe/api-key"): "Stripe",
    ("POST", "/api/v1/apps/{id}/stripe/webhook"): "Stripe",
    ("PUT", "/api/v1/customers/{customerIdOrKey}/stripe"): "Stripe",
    ("POST", "/api/v1/customers/{customerIdOrKey}/stripe/portal"): "Stripe",
    ("POST", "/api/v1/stripe/checkout/sessions"): "Stripe",
    ("POST", "/api/v1/marketplace/listings/{type}/install/apikey"): "Stripe",
}


def write_operations() -> list[tuple[str, str]]:
    """The spec's operations that take a request body."""
    from tests.contract.spec import spec

    paths = spec()["paths"]
    return [(m, p) for m, p in operations() if m in ("POST", "PUT", "PATCH")
            and "requestBody" in paths[p][m.lower()]]


def test_every_write_operation_of_the_spec_is_walked():
    assert sorted(WRITES) == sorted(write_operations())


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, kind) of every string in a JSON document, and of every key of its objects ("key")."""
    if isinstance(value, str):
        yield path, "value"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), "key"
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))


def replaced(body: Any, path: tuple, kind: str, new: str) -> Any:
    out = copy.deepcopy(body)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "value":
        parent[last] = new
    else:
        parent[new] = parent.pop(last)
    return out


def field_name(path: tuple, kind: str) -> str:
    """The name a problem uses for the leaf: its key (or for a map key, the map's name)."""
    named = [step for step in (path if kind == "value" else path[:-1]) if isinstance(step, str)]
    return named[-1] if named else ""


def rows_written() -> int:
    """Rows this transaction has inserted, updated or deleted so far (aborted savepoints included), other than
    an API key's last use (recorded once a minute)."""
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables "
                    "WHERE relname <> 'core_apikey'")
        return cur.fetchone()[0]


def digest() -> str:
    """Every row of every table of our apps, hashed: equal digests, nothing stored."""
    tables = sorted(m._meta.db_table for m in apps.get_models() if m._meta.managed and m._meta.db_table != "core_apikey")
    parts = " || ".join(f"(SELECT coalesce(md5(string_agg(t::text, '' ORDER BY t::text)), '') FROM {t} t)"
                        for t in tables)
    with connection.cursor() as cur:
        cur.execute(f"SELECT md5({parts})")
        return cur.fetchone()[0]


Sign = Callable[[bytes], dict[str, str]]  # extra request headers for a body (a webhook's signature)


def send(api, method: str, path: str, body: Any, sign: Sign | None = None) -> tuple[Any, bool]:
    """One request whose writes are undone afterwards (a savepoint), so every attempt starts from the world.
    Also whether it wrote anything (cheap: the transaction's row counters)."""
    before = rows_written()
    with transaction.atomic():
        response = _request(api, method, path, body, sign)
        transaction.set_rollback(True)
    return response, rows_written() != before


def stores_anything(api, method: str, path: str, body: Any, sign: Sign | None = None) -> bool:
    """Whether the request leaves any row changed once it has answered (its own rollbacks undone)."""
    with transaction.atomic():
        before = digest()
        _request(api, method, path, body, sign)
        changed = digest() != before
        transaction.set_rollback(True)
    return changed


def _request(api, method: str, path: str, body: Any, sign: Sign | None):
    data = json.dumps(body).encode()
    return api.generic(method, path, data=data, content_type="application/json", **(sign(data) if sign else {}))


@pytest.mark.parametrize(("method", "path"), [k for k, v in WRITES.items() if callable(v)], ids=lambda v: v)
def test_no_string_of_a_write_is_a_500_for_its_length(api, world, method, path):
    concrete, body = WRITES[(method, path)](world)  # type: ignore[operator]
    with time_machine.travel(NOW, tick=False):
        walk(api, method, concrete, body)


def walk(api, method: str, path: str, body: Any, sign: Sign | None = None) -> None:
    """The body is accepted as it is; then each of its strings and map keys, too long, is never a 500."""
    base, _ = send(api, method, path, body, sign)
    assert 200 <= base.status_code < 300, f"the base body must be accepted: {base.content[:500]!r}"
    failures = [failure for leaf, kind in leaves(body) for failure in check_leaf(api, method, path, body, leaf, kind,
                                                                                  sign)]
    if failures:
        pytest.fail("\n".join(failures))


def check_leaf(api, method: str, path: str, body: Any, leaf: tuple, kind: str, sign: Sign | None) -> list[str]:
    where = f"{'key of ' if kind == 'key' else ''}{'.'.join(map(str, leaf))}"
    too_long = replaced(body, leaf, kind, TOO_LONG)
    response, written = send(api, method, path, too_long, sign)
    if response.status_code >= 500:
        return [f"{where}: {len(TOO_LONG)} characters gave {response.status_code}"]
    if response.status_code != 400:
        return []
    detail = response.json()["detail"]
    if field_name(leaf, kind) not in detail and TOO_LONG not in detail:  # names the field, or quotes the value
        return [f"{where}: the 400 does not name the field: {re.sub('[xy]{20,}', '…', detail)[:200]}"]
    if written and stores_anything(api, method, path, too_long, sign):
        return [f"{where}: the 400 left rows written"]
    limit = MAX_LENGTH_RE.search(detail)
    if limit is None:
        return []
    response, _ = send(api, method, path, replaced(body, leaf, kind, "y" * int(limit[1])), sign)
    if response.status_code >= 500:
        return [f"{where}: {limit[1]} characters (the limit the 400 named) gave {response.status_code}"]
    return []
