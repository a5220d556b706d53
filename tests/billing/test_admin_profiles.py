"""Billing profiles and customer overrides in the back office: typed forms (supplier address fields, workflow
durations as a number and a unit, switches, metadata rows) saved through the services behind the API; a refusal
is a form error on the field it names and changes nothing; profiles are archived, never deleted."""

import datetime as dt

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from billing.models import BillingProfile, CustomerOverride
from billing.services.profiles import billing_profile_default_ensure, customer_override_upsert
from tests.billing.helpers import customer, profile
from tests.billing.test_admin import text_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def form_data(**overrides) -> dict:
    """The profile form as an operator fills it in (durations: number and unit)."""
    data = {
        "name": "EU entity", "description": "", "supplier_name": "ACME GmbH", "supplier_key": "", "tax_id": "DE123",
        "line1": "Hauptstr. 1", "line2": "", "postal_code": "10115", "city": "Berlin", "state": "", "country": "DE",
        "phone_number": "", "alignment": "subscription", "anchor_interval": "MONTH", "anchor": "",
        "collection_interval_0": "2", "collection_interval_1": "PT{}H", "auto_advance": "on",
        "draft_period_0": "1", "draft_period_1": "P{}D", "due_after_0": "14", "due_after_1": "P{}D",
        "progressive_billing": "on", "end_proration": "bill_actual_period", "collection_method": "send_invoice",
        "tax_enabled": "on", "metadata__key": ["region", ""], "metadata__value": ["eu", ""],
    }
    return {**data, **overrides}


def test_operator_creates_a_profile_on_the_typed_form(staff):
    app = billing_profile_default_ensure().invoicing_app
    data = form_data(tax_app=app.pk, invoicing_app=app.pk, payment_app=app.pk)
    response = staff.post("/admin/billing/billingprofile/add/", data)
    assert response.status_code == 302, text_of(response.content)[-1500:]
    created = BillingProfile.objects.get(name="EU entity")
    assert created.supplier == {"name": "ACME GmbH", "taxId": {"code": "DE123"}, "addresses": [
        {"line1": "Hauptstr. 1", "postalCode": "10115", "city": "Berlin", "country": "DE"}]}
    assert created.workflow["collection"] == {"alignment": {"type": "subscription"}, "interval": "PT2H"}
    assert created.workflow["invoicing"] == {"autoAdvance": True, "draftPeriod": "P1D", "dueAfter": "P14D",
                                             "progressiveBilling": True,
                                             "subscriptionEndProrationMode": "bill_actual_period"}
    assert created.workflow["payment"] == {"collectionMethod": "send_invoice"}
    assert created.workflow["tax"] == {"enabled": True, "enforced": False}
    assert created.metadata == {"region": "eu"} and not created.is_default
    assert created.invoicing_app_id == app.pk


def test_the_change_page_shows_the_settings_on_their_fields(staff):
    existing = profile(dueAfter="P2W")
    html = staff.get(f"/admin/billing/billingprofile/{existing.pk}/change/").content.decode()
    assert 'name="due_after_0" value="2"' in html
    assert '<option value="P{}W" selected>weeks</option>' in html
    assert 'name="supplier_name" value="Supplier Inc"' in html
    assert "<textarea" not in html.split('id="billingprofile_form"')[1].split("description")[0]


def test_operator_changes_the_payment_term_through_the_service(staff):
    existing = profile()
    response = staff.post(f"/admin/billing/billingprofile/{existing.pk}/change/",
                          form_data(name="Test profile", due_after_0="45", auto_advance=""))
    assert response.status_code == 302
    existing.refresh_from_db()
    assert existing.workflow["invoicing"]["dueAfter"] == "P45D"
    assert existing.workflow["invoicing"]["autoAdvance"] is False
    assert existing.is_default  # the default stays the default


@pytest.mark.parametrize(
    ("case", "overrides", "field", "message"),
    [
        ("anchored_without_anchor", {"alignment": "anchored"}, "anchor", "An anchored cycle needs the date it starts."),
        ("no_due_after", {"due_after_0": ""}, "due_after", "This field is required."),
        ("negative_draft_period", {"draft_period_0": "-1"}, "draft_period", "greater than or equal to 0"),
        ("no_supplier_name", {"supplier_name": ""}, "supplier_name", "This field is required."),
    ],
)
def test_a_refused_setting_is_an_error_on_its_field_and_changes_nothing(staff, case, overrides, field, message):
    existing = profile()
    before = (existing.workflow, existing.supplier)
    response = staff.post(f"/admin/billing/billingprofile/{existing.pk}/change/", form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field])
    existing.refresh_from_db()
    assert (existing.workflow, existing.supplier) == before


def test_invalid_stored_settings_open_for_correction_instead_of_a_500(staff):
    existing = profile()
    BillingProfile.objects.filter(pk=existing.pk).update(
        workflow={**existing.workflow, "invoicing": {**existing.workflow["invoicing"], "dueAfter": "thirty days"}})
    page = staff.get(f"/admin/billing/billingprofile/{existing.pk}/change/")
    assert page.status_code == 200
    assert 'name="due_after_0" value=""' in page.content.decode() or 'name="due_after_0"' in page.content.decode()
    response = staff.post(f"/admin/billing/billingprofile/{existing.pk}/change/", form_data(name="Test profile"))
    assert response.status_code == 302
    existing.refresh_from_db()
    assert existing.workflow["invoicing"]["dueAfter"] == "P14D"


def test_the_default_profile_stays_the_default(staff):
    existing = profile()
    # the switch is disabled: a posted "off" is ignored, the service keeps one default
    staff.post(f"/admin/billing/billingprofile/{existing.pk}/change/", form_data(name="Test profile", default=""))
    existing.refresh_from_db()
    assert existing.is_default


def test_archive_asks_first_and_follows_the_service_rules(staff):
    billing_profile_default_ensure()
    other = profile(default=False)
    cust = customer()
    customer_override_upsert(customer_id=cust.pk, billing_profile_id=other.pk)
    page = staff.get(f"/admin/billing/billingprofile/{other.pk}/do/archive/").content.decode()
    assert "An archived profile bills no one" in page
    refused = staff.post(f"/admin/billing/billingprofile/{other.pk}/do/archive/", {})
    assert "pinned by customer overrides" in refused.content.decode()
    other.refresh_from_db()
    assert other.deleted_at is None
    CustomerOverride.objects.all().delete()
    staff.post(f"/admin/billing/billingprofile/{other.pk}/do/archive/", {})
    other.refresh_from_db()
    assert other.deleted_at is not None
    # the default profile is never offered for archiving
    default = BillingProfile.objects.get(is_default=True)
    assert "do/archive/" not in staff.get(f"/admin/billing/billingprofile/{default.pk}/change/").content.decode()


def test_profile_list_reads_the_workflow_in_words(staff):
    profile(dueAfter="P14D", autoAdvance=False)
    text = text_of(staff.get("/admin/billing/billingprofile/").content)
    assert "drafts wait for approval; due 14 days after issue" in text


def test_customer_override_pins_a_customer_through_the_service(staff):
    billing_profile_default_ensure()
    eu = profile(default=False)
    cust = customer()
    response = staff.post("/admin/billing/customeroverride/add/", {"customer": cust.pk, "billing_profile": eu.pk})
    assert response.status_code == 302
    assert CustomerOverride.objects.get(customer=cust).billing_profile_id == eu.pk
    # back to the default profile, then removed
    override = CustomerOverride.objects.get(customer=cust)
    staff.post(f"/admin/billing/customeroverride/{override.pk}/change/", {"billing_profile": ""})
    override.refresh_from_db()
    assert override.billing_profile_id is None
    staff.post(f"/admin/billing/customeroverride/{override.pk}/delete/", {"post": "yes"})
    assert not CustomerOverride.objects.exists()


def test_customer_override_of_a_deleted_customer_is_a_form_error(staff):
    cust = customer()
    cust.deleted_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cust.save()
    response = staff.post("/admin/billing/customeroverride/add/", {"customer": cust.pk, "billing_profile": ""})
    assert response.status_code == 200
    assert "This customer is deleted." in response.content.decode()
    assert not CustomerOverride.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_operator_sets_a_two_week_payment_term(operator_page):
    page = operator_page
    existing = profile()
    page.goto(f"/admin/billing/billingprofile/{existing.pk}/change/")
    page.fill("input[name=due_after_0]", "2")
    page.select_option("select[name=due_after_1]", "P{}W")
    page.uncheck("input[name=auto_advance]")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator("#result_list")).to_contain_text("drafts wait for approval; due 2 weeks after issue")
    existing.refresh_from_db()
    assert existing.workflow["invoicing"]["dueAfter"] == "P2W"


def test_an_anchored_collection_cycle_is_stored_as_the_api_takes_it(staff):
    existing = profile()
    response = staff.post(f"/admin/billing/billingprofile/{existing.pk}/change/", form_data(
        name="Test profile", alignment="anchored", anchor_interval="MONTH", anchor="2026-01-01 00:00:00"))
    assert response.status_code == 302
    existing.refresh_from_db()
    assert existing.workflow["collection"]["alignment"] == {
        "type": "anchored", "recurringPeriod": {"interval": "MONTH", "anchor": "2026-01-01T00:00:00Z"}}
