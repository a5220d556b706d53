"""One of everything the back office shows, built the way clients build it: through the HTTP API (and a beat job), so
that every admin page has rows to render. Used by the crawl test (tests/admin/test_crawl.py) and by
bench/admin_pages.py (beside its bulk data).

Rows that need an outside party (a Stripe account, a webhook receiver) are written as the integration leaves them,
directly in their tables."""

import datetime as dt
from typing import Any

from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import App, Invoice
from integrations.models import AppType, CustomerAppData, StripeInvoiceSync, StripeWebhookEvent
from notifications.services.evaluation import emit_invoice_event

DAY = dt.timedelta(days=1)


def z(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class RichData:
    """`RichData(api, prefix).build()`; keys, slugs and subjects start with `prefix`, so a database can hold it
    next to other data."""

    def __init__(self, api: APIClient, prefix: str = "rich") -> None:
        self.api, self.p, self.now = api, prefix, timezone.now()
        self.ids: dict[str, str] = {}

    def call(self, method: str, url: str, body: Any = None, status: tuple[int, ...] = (200, 201, 204)) -> Any:
        response = getattr(self.api, method)(url, body, format="json")
        assert response.status_code in status, (method, url, response.status_code, response.content[:500])
        return response.json() if response.content else None

    def post(self, url: str, body: Any = None) -> Any:
        return self.call("post", url, body if body is not None else {})

    def build(self) -> dict[str, str]:
        for step in (self.metering, self.customers, self.catalog, self.subscriptions, self.entitlements,
                     self.billing, self.integrations, self.notifications, self.operations):
            step()
        return self.ids

    def metering(self) -> None:
        p = self.p
        self.post("/api/v1/meters", {"slug": f"{p}_tokens", "name": "LLM tokens", "aggregation": "SUM",
                                     "eventType": f"{p}.prompt", "valueProperty": "$.tokens",
                                     "groupBy": {"model": "$.model"}})
        self.post("/api/v1/meters", {"slug": f"{p}_calls", "name": "API calls", "aggregation": "COUNT",
                                     "eventType": f"{p}.call"})
        self.post("/api/v1/meters", {"slug": f"{p}_users", "name": "Active users", "aggregation": "UNIQUE_COUNT",
                                     "eventType": f"{p}.login", "valueProperty": "$.user"})
        events = []
        for i in range(30):
            base = {"specversion": "1.0", "source": "rich", "time": z(self.now - (i % 10) * DAY),
                    "subject": [f"{p}-acme-app", f"{p}-acme-batch", f"{p}-globex"][i % 3]}
            events += [
                {**base, "id": f"{p}-prompt-{i}", "type": f"{p}.prompt",
                 "data": {"tokens": 100 + i, "model": ["gpt-4o", "claude"][i % 2]}},
                {**base, "id": f"{p}-call-{i}", "type": f"{p}.call", "data": {}},
                {**base, "id": f"{p}-login-{i}", "type": f"{p}.login", "data": {"user": f"u{i % 4}"}},
            ]
        events.append({"specversion": "1.0", "id": f"{p}-unknown", "source": "rich", "type": f"{p}.unknown",
                       "subject": f"{p}-acme-app", "time": z(self.now), "data": {"x": 1}})
        self.call("post", "/api/v1/events", events, status=(204,))
        self.post("/api/v1/subjects", [{"key": f"{p}-globex", "displayName": "Globex app"}])

    def customers(self) -> None:
        p = self.p
        self.ids["acme"] = self.post("/api/v1/customers", {
            "key": f"{p}-acme", "name": "Acme Inc", "currency": "USD", "primaryEmail": "billing@acme.test",
            "usageAttribution": {"subjectKeys": [f"{p}-acme-app", f"{p}-acme-batch"]},
            "billingAddress": {"country": "DE", "city": "Berlin", "line1": "Main st 1"},
            "metadata": {"segment": "enterprise"}})["id"]
        self.ids["globex"] = self.post("/api/v1/customers", {
            "key": f"{p}-globex", "name": "Globex", "currency": "USD",
            "usageAttribution": {"subjectKeys": [f"{p}-globex"]}})["id"]
        self.post("/api/v1/customers", {"key": f"{p}-initech", "name": "Initech",
                                        "usageAttribution": {"subjectKeys": []}})

    def catalog(self) -> None:
        p = self.p
        self.post("/api/v1/features", {"key": f"{p}_tokens", "name": "LLM tokens", "meterSlug": f"{p}_tokens",
                                       "meterGroupByFilters": {"model": "gpt-4o"}})
        self.post("/api/v1/features", {"key": f"{p}_calls", "name": "API calls", "meterSlug": f"{p}_calls"})
        self.ids["sso"] = self.post("/api/v1/features", {"key": f"{p}_sso", "name": "Single sign-on"})["id"]
        retired = self.post("/api/v1/features", {"key": f"{p}_retired", "name": "Retired"})
        self.call("delete", f"/api/v1/features/{retired['id']}")
        tiered = {"type": "tiered", "mode": "graduated", "minimumAmount": "10", "tiers": [
            {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "0"}, "flatPrice": None},
            {"upToAmount": None, "unitPrice": {"type": "unit", "amount": "0.002"}, "flatPrice": None}]}
        fee = {"type": "flat_fee", "key": "platform", "name": "Platform fee", "billingCadence": "P1M",
               "price": {"type": "flat", "amount": "49", "paymentTerm": "in_advance"},
               "discounts": {"percentage": {"percentage": 10}}}
        cards = [
            fee,
            {"type": "usage_based", "key": "tokens", "name": "LLM tokens", "featureKey": f"{p}_tokens",
             "billingCadence": "P1M", "price": tiered, "discounts": {"usage": {"quantity": "100"}},
             "entitlementTemplate": {"type": "metered", "issueAfterReset": "10000", "isSoftLimit": True}},
            {"type": "usage_based", "key": "calls", "name": "API calls", "featureKey": f"{p}_calls",
             "billingCadence": "P1M", "price": {"type": "package", "amount": "5", "quantityPerPackage": "1000"}},
            {"type": "flat_fee", "key": "sso", "name": "SSO", "featureKey": f"{p}_sso", "billingCadence": None,
             "price": None, "entitlementTemplate": {"type": "boolean"}},
        ]
        phases = [{"key": "trial", "name": "Trial", "duration": "P1M",
                   "rateCards": [fee | {"price": {"type": "flat", "amount": "0", "paymentTerm": "in_advance"}}]},
                  {"key": "default", "name": "Default", "duration": None, "rateCards": cards}]
        plan = self.post("/api/v1/plans", {"key": f"{p}_pro", "name": "Pro", "currency": "USD", "billingCadence": "P1M",
                                           "phases": phases})
        addon = self.post("/api/v1/addons", {"key": f"{p}_seats", "name": "Extra seats", "currency": "USD",
                                             "instanceType": "multiple", "rateCards": [
                                                 fee | {"key": "seat", "name": "Seat", "discounts": None,
                                                        "price": {"type": "flat", "amount": "5"}}]})
        self.post(f"/api/v1/addons/{addon['id']}/publish")
        self.post(f"/api/v1/plans/{plan['id']}/addons", {"addonId": addon["id"], "fromPlanPhase": "trial",
                                                         "maxQuantity": 10})
        self.post(f"/api/v1/plans/{plan['id']}/publish")
        self.post(f"/api/v1/plans/{plan['id']}/next")  # a draft v2
        legacy = self.post("/api/v1/plans", {"key": f"{p}_legacy", "name": "Legacy", "currency": "USD",
                                             "billingCadence": "P1M", "phases": [phases[1] | {"rateCards": [fee]}]})
        self.post(f"/api/v1/plans/{legacy['id']}/publish")
        self.post(f"/api/v1/plans/{legacy['id']}/archive")
        self.ids |= {"plan": plan["id"], "addon": addon["id"]}

    def subscriptions(self) -> None:
        """Entitlements are provisioned from the plan's templates."""
        sub = self.post("/api/v1/subscriptions", {"plan": {"key": f"{self.p}_pro"}, "customerId": self.ids["acme"]})
        self.post(f"/api/v1/subscriptions/{sub['id']}/addons", {"name": "Seats", "addon": {"id": self.ids["addon"]},
                                                                "quantity": 2, "timing": "immediate"})
        self.post("/api/v1/subscriptions", {"plan": {"key": f"{self.p}_pro"}, "customerId": self.ids["globex"]})

    def entitlements(self) -> None:
        """A metered entitlement with grants (one voided), a reset and snapshots of past periods; a static one."""
        base = f"/api/v2/customers/{self.ids['globex']}/entitlements"
        start = z(self.now - 12 * DAY)
        metered = self.post(base, {"type": "metered", "featureKey": f"{self.p}_calls", "isSoftLimit": False,
                                   "usagePeriod": {"interval": "DAY", "anchor": start}, "measureUsageFrom": start})
        grants = f"{base}/{metered['id']}/grants"
        self.post(grants, {"amount": 1000, "priority": 1, "effectiveAt": z(self.now),
                           "expiration": {"duration": "MONTH", "count": 1}})
        voided = self.post(grants, {"amount": 50, "effectiveAt": z(self.now),
                                    "expiration": {"duration": "DAY", "count": 30}})
        self.call("delete", f"/api/v1/grants/{voided['id']}")
        self.post(f"{base}/{metered['id']}/reset", {})
        self.call("get", f"{base}/{metered['id']}/value")  # saves the balance snapshots of past periods
        self.post(base, {"type": "static", "featureId": self.ids["sso"], "config": '{"seats": 5}'})

    def _invoice_now(self, customer: str, amount: str) -> dict[str, Any]:
        """A one-off charge, invoiced at once."""
        self.post(f"/api/v1/billing/customers/{self.ids[customer]}/invoices/pending-lines", {"currency": "USD", "lines": [
            {"name": "Onboarding", "period": {"from": z(self.now - 2 * DAY), "to": z(self.now - DAY)},
             "invoiceAt": z(self.now - DAY), "rateCard": {"price": {"type": "flat", "amount": amount,
                                                                    "paymentTerm": "in_advance"}}}]})
        [invoice] = self.post("/api/v1/billing/invoices/invoice", {"customerId": self.ids[customer]})
        return invoice

    def billing(self) -> None:
        """The default profile, a second one that globex is pinned to (an override); invoices paid, voided,
        waiting as a draft, gathering."""
        default = next(pr for pr in self.call("get", "/api/v1/billing/profiles")["items"] if pr["default"])
        apps = {role: default["apps"][role]["id"] for role in ("tax", "invoicing", "payment")}
        eu = self.post("/api/v1/billing/profiles", {"name": f"{self.p} EU entity", "apps": apps, "default": False,
                                               "supplier": {"name": "Supplier GmbH", "addresses": [{"country": "DE"}]},
                                               "workflow": {"invoicing": {"autoAdvance": False}}})
        self.call("put", f"/api/v1/billing/customers/{self.ids['globex']}", {"billingProfileId": eu["id"]})
        self._invoice_now("acme", "120")  # the default profile advances it at once: issued and paid (sandbox)
        failed = self._invoice_now("globex", "15.5")  # the EU profile does not auto-advance: a draft
        Invoice.objects.filter(pk=failed["id"]).update(metadata={"openmeter.io/sandbox/target-payment-status": "failed"})
        self.post(f"/api/v1/billing/invoices/{failed['id']}/approve")
        self.post(f"/api/v1/billing/invoices/{failed['id']}/void",
                  {"action": {"percentage": 100, "action": {"type": "discard"}}, "reason": "customer left"})
        self._invoice_now("globex", "99")  # waits for approval

    def integrations(self) -> None:
        App.objects.create(type=AppType.CUSTOM_INVOICING, name=f"{self.p} ERP", enable_draft_sync_hook=True)
        stripe = App.objects.create(type=AppType.STRIPE, name=f"{self.p} Stripe", stripe_account_id="acct_rich",
                                    masked_api_key="sk_test_***abc", livemode=False)
        CustomerAppData.objects.create(customer_id=self.ids["acme"], app=stripe, stripe_customer_id="cus_rich")
        StripeInvoiceSync.objects.create(invoice_id=Invoice.objects.filter(customer_id=self.ids["acme"]).first().pk,
                                         app=stripe, stripe_customer_id="cus_rich", stripe_invoice_id="in_rich",
                                         draft_state="done", finalize_state="failed")
        StripeWebhookEvent.objects.create(app=stripe, event_id=f"evt_{self.p}", type="invoice.paid",
                                          stripe_object_id="in_rich", outcome="marked paid")

    def notifications(self) -> None:
        channel = self.post("/api/v1/notification/channels", {"type": "WEBHOOK", "name": f"{self.p} ops",
                                                              "url": "http://127.0.0.1:9/hook"})
        self.post("/api/v1/notification/rules", {"type": "invoice.created", "name": "New invoices",
                                                 "channels": [channel["id"]]})
        self.post("/api/v1/notification/rules", {"type": "entitlements.balance.threshold", "name": "80 % used",
                                                 "channels": [channel["id"]], "features": [f"{self.p}_calls"],
                                                 "thresholds": [{"type": "PERCENT", "value": 80}]})
        invoice = Invoice.objects.filter(customer_id=self.ids["acme"]).first()
        emit_invoice_event(invoice_payload={"id": invoice.pk, "type": "standard", "status": "issued"},
                           event_type="invoice.created")

    def operations(self) -> None:
        """A portal token, a user group, the beat schedules and a recorded job run."""
        from billing.tasks import mark_overdue_invoices_task

        self.post("/api/v1/portal/tokens", {"subject": f"{self.p}-acme-app", "allowedMeterSlugs": [f"{self.p}_tokens"]})
        Group.objects.get_or_create(name="Billing team")
        call_command("install_schedules", verbosity=0)
        mark_overdue_invoices_task.apply()
