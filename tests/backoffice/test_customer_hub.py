"""The customer's page: the whole story of one customer, each number worked out by hand."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import App, InvoiceEvent
from billing.services import invoice_approve, invoice_pending_lines, invoice_snapshot_quantities, pending_lines_create
from billing.services.gathering import LineInput
from entitlements.services import GrantInput, grant_create
from integrations.models import AppType, CustomerAppData
from tests.backoffice.conftest import T0
from tests.factories import CustomerFactory, ingest

pytestmark = pytest.mark.django_db

NOW = T0 + dt.timedelta(days=3)


def hub(admin_client, customer) -> str:
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, name: str) -> str:
    start = html.index(f'id="om-{name}"')
    return html[start:html.index("</section>", start)]


def test_hub_shows_the_customer_header(admin_client, story):
    story.customer.billing_address = {"line1": "Main 1", "postalCode": "10115", "city": "Berlin", "country": "DE"}
    story.customer.save()
    html = hub(admin_client, story.customer)
    assert "<h1>ACME Inc.</h1>" in html  # the page's title is the customer
    header = html[html.index("om-hub-header"):html.index('id="om-subscriptions"')]
    assert "<code>acme</code>" in header and "<dd>USD</dd>" in header
    assert '<code class="om-chip">acme-api</code>' in header
    assert "Default Billing Profile</a> (the default)" in header
    assert "<dd>Main 1, 10115 Berlin, DE</dd>" in header


def test_hub_links_the_stripe_customer_to_stripe(admin_client, story):
    app = App.objects.create(type=AppType.STRIPE, name="Stripe", livemode=False)
    CustomerAppData.objects.create(customer=story.customer, app=app, stripe_customer_id="cus_123")
    header = hub(admin_client, story.customer)
    link = '<a href="https://dashboard.stripe.com/test/customers/cus_123" target="_blank" rel="noopener">cus_123</a>'
    assert link in header


def test_hub_shows_subscription_with_plan_phase_and_next_billing(admin_client, story):
    rows = section(hub(admin_client, story.customer), "subscriptions")
    assert "Pro v1" in rows and "om-status-active" in rows and "<td>Main</td>" in rows
    # monthly from Mar 1: the next billing date is Apr 1
    assert 'datetime="2026-04-01T00:00:00Z"' in rows
    # the subscription's own actions, returning to this page
    assert f"/admin/subscriptions/subscription/{story.subscription.pk}/do/cancel/?next=" in rows
    assert "Change plan" in rows and "Buy or change add-on" in rows


def test_hub_shows_entitlement_balance_and_grants(admin_client, story):
    html = hub(admin_client, story.customer)
    entitlements = section(html, "entitlements")
    # 100 granted, 42 used → balance 58, no overage
    assert '<td><span class="om-num">58</span></td>\n          <td><span class="om-num">42</span></td>' in entitlements
    assert "Grant credit" in entitlements and "Reset usage" in entitlements
    grants = section(html, "grants")
    assert '<span class="om-num">100</span>' in grants and '<span class="om-num">58</span>' in grants
    assert "never" in grants and "om-status-active" in grants
    assert f"/admin/entitlements/grant/{story.grant.pk}/do/void/?next=" in grants


def test_hub_shows_the_gathering_invoice_with_its_total_so_far(admin_client, story):
    invoices = section(hub(admin_client, story.customer), "invoices")
    # $49 fee in advance + 42 tokens x $0.10 = $53.20 so far
    assert "$53.20" in invoices and "so far" in invoices and "gathering" in invoices


def test_hub_shows_this_periods_usage_per_feature_with_a_daily_chart(admin_client, story):
    usage = section(hub(admin_client, story.customer), "usage")
    assert "Tokens" in usage and '<span class="om-num">42</span>' in usage
    # the chart: one bar per day of March up to today (Mar 1, 2, 3 and the started Mar 4); 42 on Mar 2
    assert usage.count("<rect") == 4
    assert "<title>Mar 2: 42</title>" in usage and "<title>Mar 1: 0</title>" in usage


def test_hub_is_scoped_to_the_customer(admin_client, story):
    other = CustomerFactory(key="globex", name="Globex", subjects=["globex-api"])
    ingest([{"subject": "globex-api", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 7}}])
    html = hub(admin_client, other)
    assert "No subscriptions" in html and "No active entitlements" in html and "No invoices yet" in html
    assert "No metered features" in html and "acme" not in section(html, "history")


def test_hub_history_tells_what_happened(admin_client, story):
    history = section(hub(admin_client, story.customer), "history")
    assert "Subscribed to Pro v1 (“Pro”) from 2026-03-01" in history
    assert "Granted 100 credit on tokens from 2026-03-01" in history


def test_hub_history_keeps_an_invoices_milestones_not_its_internal_steps(admin_client, story):
    with time_machine.travel(NOW, tick=False):
        [invoice] = invoice_pending_lines(customer_id=story.customer.pk, actor="admin:boss")
        invoice_snapshot_quantities(invoice_id=invoice.pk, actor="admin:boss")
        invoice = invoice_approve(invoice_id=invoice.pk, actor="admin:boss")
    walked = list(InvoiceEvent.objects.filter(invoice=invoice).values_list("to_status", flat=True))
    assert "draft.validating" in walked and walked[-1] == "paid"  # the sandbox app issues and settles at once
    history = section(hub(admin_client, story.customer), "history")
    assert f"Invoice {invoice.number} created (draft: created)" in history
    assert f"Invoice {invoice.number}: draft: collecting (force collect)" in history  # what the operator did
    assert f"Invoice {invoice.number}: draft: ready to issue (approve)" in history
    assert f"Invoice {invoice.number}: issued (next)" in history and f"Invoice {invoice.number}: paid" in history
    assert "draft: validating" not in history and "issuing: syncing" not in history


def test_hub_queries_do_not_grow_with_grants_and_invoices(admin_client, story):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            hub(admin_client, story.customer)
        return len(queries)

    before = count()
    with time_machine.travel(NOW, tick=False):
        for amount in (10, 20, 30, 40, 50):
            grant_create(entitlement=story.entitlement, data=GrantInput(amount=Decimal(amount), effective_at=NOW))
        pending_lines_create(customer_id=story.customer.pk, currency="EUR", lines=[LineInput(
            name="Setup", period_start=T0, period_end=NOW, invoice_at=T0,
            price={"type": "flat", "amount": "100", "paymentTerm": "in_advance"})])
    # one more gathering invoice (EUR) is previewed: its lines and their usage
    assert count() <= before + 4
