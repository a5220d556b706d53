"""A billing person's everyday tasks in a real headless Chromium against the live server: what the page shows after
each step. Set OM_SCREENSHOTS to a folder to keep a screenshot of each step (docs/backoffice-customer.png is one)."""

import datetime as dt
import os
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import Invoice, InvoiceStatus
from customers.models import Customer
from entitlements.models import Entitlement, Grant
from entitlements.services import GrantInput, grant_create
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import subscription_create
from tests.backoffice.conftest import pro_plan, publish_plan_with_seats
from tests.billing.helpers import custom_invoicing_app, profile
from tests.factories import CustomerFactory, ingest
from tests.subscriptions.test_lifecycle import publish_plan

browser_test = pytest.mark.django_db(transaction=True)


def snap(page: Page, name: str) -> None:
    folder = os.environ.get("OM_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def hub_url(customer: Customer) -> str:
    return f"/admin/customers/customer/{customer.pk}/change/"


@pytest.fixture
def plans(api, tokens):
    publish_plan_with_seats(api, pro_plan())
    publish_plan(api, pro_plan(key="max", fee="99"))


@pytest.fixture
def subscribed(plans) -> Customer:
    """ACME on Pro since three days ago (the test process moves its own clock; the server's runs on), 1,200 tokens
    used since: 200, 400 and 600 a day."""
    customer = CustomerFactory(key="acme", name="ACME Inc.", subjects=["acme-api"], primary_email="billing@acme.test",
                               billing_address={"line1": "1 Main St", "city": "Springfield", "country": "US"})
    start = timezone.now() - dt.timedelta(days=3)
    with time_machine.travel(start, tick=False):
        subscription_create(customer="acme", plan_key="pro")
    ingest([{"subject": "acme-api", "time": start + dt.timedelta(days=day, hours=1), "data": {"tokens": tokens}}
            for day, tokens in ((0, 200), (1, 400), (2, 600))])
    return customer


@browser_test
def test_operator_creates_a_customer_and_sees_a_taken_subject_key_on_the_form(operator_page):
    CustomerFactory(key="globex", name="Globex", subjects=["shared-api"])
    page = operator_page
    page.goto("/admin/customers/customer/add/")
    page.fill("#id_name", "ACME Inc.")
    page.fill("#id_key", "acme")
    page.fill("#id_subject_keys", "acme-api\nshared-api")
    page.select_option("#id_currency", "EUR")
    page.fill("#id_address_line1", "Hauptstraße 1")
    page.fill("#id_address_city", "Berlin")
    page.select_option("#id_address_country", "DE")
    page.locator("input[name=metadata__key]").first.fill("tier")
    page.locator("input[name=metadata__value]").first.fill("gold")
    page.click("input[name=_save]")
    expect(page.locator(".field-subject_keys .errorlist")).to_contain_text("already belongs to customer")
    assert not Customer.objects.filter(key="acme").exists()
    page.fill("#id_subject_keys", "acme-api")
    page.click("input[name=_save]")
    expect(page.locator("#content h1")).to_have_text("ACME Inc.")
    expect(page.locator(".om-hub-header")).to_contain_text("acme-api")
    snap(page, "customer-created")
    customer = Customer.objects.get(key="acme")
    assert customer.billing_address == {"line1": "Hauptstraße 1", "city": "Berlin", "country": "DE"}
    assert customer.metadata == {"tier": "gold"} and customer.currency == "EUR"


@browser_test
def test_operator_manages_a_subscription_from_the_customer_page(operator_page, subscribed):
    page = operator_page
    page.goto(hub_url(subscribed))
    subscriptions = page.locator("#om-subscriptions")
    expect(subscriptions).to_contain_text("Pro v1")
    snap(page, "hub")
    # buy 3 seats
    subscriptions.get_by_role("link", name="Buy or change add-on").click()
    page.fill("#id_quantity", "3")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("quantity 3")
    # cancel at the end of the billing period: the row says when it ends; then continue
    subscriptions.get_by_role("link", name="Cancel").click()
    expect(page.locator(".om-confirm")).to_contain_text("Until it ends, “Continue” undoes this")
    snap(page, "cancel-form")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("will end on")
    expect(subscriptions).to_contain_text("canceled")
    subscriptions.get_by_role("link", name="Continue (undo the cancellation)").click()
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("continues")
    expect(subscriptions.locator(".om-status")).to_have_text("active")
    # change to Max at the end of the period: a scheduled Max subscription follows
    subscriptions.get_by_role("link", name="Change plan").click()
    page.select_option("#id_plan", label="Max (max v1) · USD · billed every 1 month")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("moves to Max")
    expect(subscriptions).to_contain_text("Max v1")
    expect(subscriptions.locator(".om-status-scheduled")).to_have_text("scheduled")
    snap(page, "hub-plan-changed")
    subscriptions.get_by_role("link", name="Pro", exact=True).click()
    expect(page.locator("#content h1")).to_have_text("Pro: ACME Inc.")
    snap(page, "subscription-page")
    current, following = Subscription.objects.filter(customer=subscribed).order_by("active_from")
    assert current.active_to == following.active_from and following.plan.key == "max"


@browser_test
def test_operator_grants_credit_resets_usage_and_overrides_an_entitlement(operator_page, subscribed):
    page = operator_page
    page.goto(hub_url(subscribed))
    entitlements = page.locator("#om-entitlements")
    # soft limit, no grant yet: 1,200 used, balance 0, overage 1,200
    expect(entitlements.locator("tbody tr").first).to_contain_text("1,200")
    entitlements.get_by_role("link", name="Grant credit").click()
    page.fill("#id_amount", "5000")
    page.fill("#id_expires_after_0", "30")
    snap(page, "grant-credit-form")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("the balance is now 3,800")
    expect(entitlements.locator("tbody tr").first).to_contain_text("3,800")
    expect(page.locator("#om-grants")).to_contain_text("5,000")
    snap(page, "backoffice-customer")
    # reset: usage counts from zero again
    entitlements.get_by_role("link", name="Reset usage").click()
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("starts again from")
    # override with a hard limit: the new entitlement no longer grants access beyond its balance
    entitlements.get_by_role("link", name="Override").click()
    page.uncheck("#id_is_soft_limit")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("is replaced by a new metered entitlement")
    page.locator("#om-entitlements").get_by_role("link", name="tokens").click()
    snap(page, "entitlement-page")
    live = Entitlement.objects.get(customer=subscribed, deleted_at__isnull=True)
    assert live.is_soft_limit is False
    assert Grant.objects.get().amount == Decimal(5000)


@browser_test
def test_operator_cannot_delete_a_subscribed_customer(operator_page, subscribed):
    page = operator_page
    page.goto(hub_url(subscribed))
    page.click("text=Delete customer")
    expect(page.locator(".om-confirm")).to_contain_text("cancel the subscription first")
    page.click("input[name=_confirm]")
    expect(page.locator(".errornote")).to_contain_text("still has active subscriptions")
    assert Customer.objects.get(pk=subscribed.pk).deleted_at is None


@browser_test
def test_billing_person_subscribes_grants_credit_invoices_approves_and_voids(operator_page, plans):
    """The central scenario of issue 14, on an invoicing app where payments are recorded by hand (so an approved
    invoice waits for its payment and can be voided) and drafts wait for approval."""
    profile(app=custom_invoicing_app(draft_hook=False, issuing_hook=False), autoAdvance=False)
    customer = CustomerFactory(key="acme", name="ACME Inc.", subjects=["acme-api"])
    page = operator_page
    page.goto(hub_url(customer))
    invoices, entitlements = page.locator("#om-invoices"), page.locator("#om-entitlements")

    # subscribe: the $49 monthly fee, billed in advance, waits on the gathering invoice
    page.get_by_role("link", name="Subscribe", exact=True).click()
    page.select_option("#id_plan", label="Pro (pro v1) · USD · billed every 1 month")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("ACME Inc. is subscribed to Pro (pro v1)")
    expect(page.locator("#om-subscriptions .om-status")).to_have_text("active")
    expect(invoices.locator("tbody tr")).to_have_count(1)
    expect(invoices).to_contain_text("gathering")
    expect(invoices).to_contain_text("$49.00")
    snap(page, "scenario-1-subscribed")

    # 1,200 tokens are used: no credit yet (soft limit), so the balance is 0 and the invoice grows by $120
    ingest([{"subject": "acme-api", "time": timezone.now(), "data": {"tokens": 1200, "model": "gpt"}}])
    page.reload()
    expect(entitlements.locator("tbody tr").first).to_contain_text("1,200")
    expect(invoices).to_contain_text("$169.00")

    # grant 5,000 tokens: the balance becomes 3,800
    entitlements.get_by_role("link", name="Grant credit").click()
    page.fill("#id_amount", "5000")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("the balance is now 3,800")
    balance = entitlements.locator("tbody tr").first.locator("td").nth(2)
    expect(balance).to_have_text("3,800")
    snap(page, "scenario-2-credit-granted")

    # invoice now, with the usage so far: one draft of $169.00, waiting for late events until collected
    page.get_by_role("link", name="Invoice now").click()
    page.select_option("#id_progressive", "yes")
    page.click("input[name=_confirm]")
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("draft: waiting for collection")
    expect(page.locator(".om-total-value")).to_have_text("$169.00")
    page.get_by_role("link", name="Collect now").click()
    page.locator("input[type=submit][value='Collect now']").click()
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("draft: manual approval needed")
    expect(page.locator(".om-total-value")).to_have_text("$169.00")
    snap(page, "scenario-3-draft")

    # approve: issued, waiting for its payment
    page.get_by_role("link", name="Approve").click()
    page.locator("input[type=submit][value='Approve']").click()
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("payment processing: pending")

    # void, after confirming
    page.get_by_role("link", name="Void").click()
    expect(page.locator(".om-confirm")).to_contain_text("Voiding cannot be undone")
    page.fill("textarea[name=reason]", "billed by mistake")
    page.locator("input[type=submit][value='Void']").click()
    expect(page.locator(".om-invoice-head .om-status")).to_have_text("voided")
    # its history reads each step in words, as the status does
    history = page.locator("#events-group")
    history.locator("summary").click()
    expect(history).to_contain_text("draft: manual approval needed")
    expect(history.locator("tr", has_text="billed by mistake")).to_contain_text("payment processing: pending")
    expect(history).not_to_contain_text("draft.manual_approval_needed")
    expect(history.locator("td.original p").first).to_be_hidden()

    # the customer's page tells the story
    page.goto(hub_url(customer))
    expect(invoices.locator(".om-invoice-voided")).to_be_visible()
    expect(page.locator("#om-history")).to_contain_text("voided")
    snap(page, "scenario-4-voided")
    invoice = Invoice.objects.get(customer=customer, status=InvoiceStatus.VOIDED)
    assert invoice.total == Decimal("169.00")


@browser_test
def test_operator_voids_a_grant_after_confirming_and_the_balance_drops(operator_page, subscribed):
    page = operator_page
    entitlement = Entitlement.objects.get(customer=subscribed)
    grant_create(entitlement=entitlement, data=GrantInput(amount=Decimal(5000), effective_at=entitlement.active_from))
    page.goto(hub_url(subscribed))
    entitlements, grants = page.locator("#om-entitlements"), page.locator("#om-grants")
    # 5,000 granted - 1,200 used = 3,800
    expect(entitlements.locator("tbody tr").first).to_contain_text("3,800")
    grants.get_by_role("link", name="Void grant").click()
    expect(page.locator(".om-confirm")).to_contain_text("cannot be undone")
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("is void: it no longer adds to the balance")
    # back on the customer's page: the 3,800 left are gone; the 1,200 used were covered while the grant counted, so
    # they are no overage (soft limit: access stays)
    row = entitlements.locator("tbody tr").first
    expect(row.locator("td").nth(2)).to_have_text("0")
    expect(row.locator("td").nth(3)).to_have_text("1,200")
    expect(row.locator("td").nth(4)).to_have_text("0")
    expect(row.locator("td").nth(5)).to_have_text("yes")
    expect(grants.locator(".om-status")).to_have_text("void")
    expect(grants).not_to_contain_text("Void grant")
    # "all" lists this customer's entitlements only
    other = CustomerFactory(key="globex", name="Globex", subjects=["globex-api"])
    with time_machine.travel(timezone.now() - dt.timedelta(days=1), tick=False):
        subscription_create(customer=other.key, plan_key="pro")
    entitlements.get_by_role("link", name="all").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("ACME Inc.")
    assert Grant.objects.get().voided_at is not None
