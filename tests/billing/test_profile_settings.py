"""Billing-profile settings go through one service (`workflow_validate`, `supplier_validate`) from the API and the
back office, and settings stored invalid (before that, or by hand) make an action a 400 naming them, never a 500."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import User

from billing.models import BillingProfile, Invoice
from billing.models import InvoiceStatus as S
from billing.services import drafts, gathering, jobs
from billing.services.gathering import LineInput
from billing.services.workflow import WorkflowInvalid, workflow_validate
from tests.billing.helpers import FEB, T0, customer, profile
from tests.billing.test_admin_profiles import form_data as admin_form_data

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
AT = FEB + dt.timedelta(hours=2)


def _profile_body(**workflow) -> dict:
    return {"name": "EU entity", "supplier": {"name": "Acme GmbH"}, "default": True, "workflow": workflow}


def _draft() -> Invoice:
    """A draft waiting for manual approval on a fresh profile."""
    profile(autoAdvance=False)
    cust = customer()
    gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[
        LineInput(name="Support", period_start=T0, period_end=FEB, invoice_at=T0,
                  price={"type": "flat", "amount": "99", "paymentTerm": "in_advance"})])
    with time_machine.travel(AT, tick=False):
        [invoice] = drafts.invoice_pending_lines(customer_id=cust.pk)
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED
    return invoice


def test_the_service_names_every_bad_setting_and_fills_the_defaults():
    with pytest.raises(WorkflowInvalid) as caught:
        workflow_validate({"invoicing": {"dueAfter": "thirty days", "autoAdvance": "yes"},
                           "collection": {"alignment": {"type": "anchored"}}})
    fields = sorted(e["field"] for e in caught.value.extensions["validationErrors"])
    assert fields == ["workflow.collection.alignment", "workflow.invoicing.autoAdvance", "workflow.invoicing.dueAfter"]
    assert workflow_validate({"invoicing": {"dueAfter": "P14D"}})["invoicing"] == {
        "autoAdvance": True, "draftPeriod": "P0D", "dueAfter": "P14D", "progressiveBilling": True,
        "subscriptionEndProrationMode": "bill_actual_period"}


@pytest.mark.parametrize(("workflow", "field"), [
    ({"invoicing": {"dueAfter": "thirty days"}}, "workflow.invoicing.dueAfter"),
    ({"invoicing": {"draftPeriod": "-P1D"}}, "workflow.invoicing.draftPeriod"),
    ({"collection": {"interval": 3600}}, "workflow.collection.interval"),
    ({"payment": {"collectionMethod": "cash"}}, "workflow.payment.collectionMethod"),
    ({"collection": {"alignment": {"type": "anchored", "recurringPeriod": {"interval": "P0D",
                                                                          "anchor": "2026-01-01T00:00:00Z"}}}},
     "workflow.collection.alignment"),
])
def test_invalid_workflow_settings_through_the_api_are_a_400_naming_the_field(api, workflow, field):
    before = list(BillingProfile.objects.values_list("pk", "workflow"))
    r = api.post("/api/v1/billing/profiles", {**_profile_body(**workflow), "apps": _apps(api)}, format="json")
    assert r.status_code == 400
    assert r["Content-Type"] == PROBLEM
    assert [e["field"] for e in r.json()["extensions"]["validationErrors"]] == [field]
    default_id = before[0][0] if before else BillingProfile.objects.get().pk
    r = api.put(f"/api/v1/billing/profiles/{default_id}", _profile_body(**workflow), format="json")
    assert r.status_code == 400
    assert field in r.json()["detail"]
    assert list(BillingProfile.objects.values_list("pk", "workflow")) == (before or [(default_id, _stored(default_id))])


def _apps(api) -> dict:
    default = next(p for p in api.get("/api/v1/billing/profiles").json()["items"] if p["default"])
    return {role: default["apps"][role]["id"] for role in ("tax", "invoicing", "payment")}


def _stored(profile_id: str) -> dict:
    return BillingProfile.objects.get(pk=profile_id).workflow


def test_the_admin_form_refuses_what_the_service_refuses(client):
    """The admin's typed form (tests/billing/test_admin_profiles.py) cannot even send "thirty days": a duration is a
    number and a unit; what it sends is checked by the same validators and saved through the service."""
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    billing_profile = profile(autoAdvance=False)
    before = billing_profile.workflow
    url = f"/admin/billing/billingprofile/{billing_profile.pk}/change/"
    form = {**admin_form_data(name="Renamed"), "due_after_0": "thirty", "due_after_1": "P{}D"}
    response = client.post(url, form)
    assert response.status_code == 200  # the form again, with the message on the field
    assert "due_after" in response.context["adminform"].form.errors
    billing_profile.refresh_from_db()
    assert (billing_profile.name, billing_profile.workflow) == ("Test profile", before)
    # a valid edit goes through the service: defaults are filled in
    response = client.post(url, {**form, "due_after_0": "14", "auto_advance": ""})
    assert response.status_code == 302
    billing_profile.refresh_from_db()
    assert billing_profile.name == "Renamed"
    assert billing_profile.workflow["invoicing"]["dueAfter"] == "P14D"
    assert billing_profile.workflow["collection"] == {"alignment": {"type": "subscription"}, "interval": "PT2H"}


def test_invalid_stored_settings_make_approve_a_400_not_a_500(api, client):
    invoice = _draft()
    broken = {**invoice.workflow, "invoicing": {**invoice.workflow["invoicing"], "dueAfter": "thirty days"}}
    Invoice.objects.filter(pk=invoice.pk).update(workflow=broken)  # as an unvalidated form once stored it
    with time_machine.travel(AT, tick=False):
        r = api.post(f"/api/v1/billing/invoices/{invoice.pk}/approve")
        assert r.status_code == 400
        assert r["Content-Type"] == PROBLEM
        assert "workflow.invoicing.dueAfter" in r.json()["detail"]
        assert api.get(f"/api/v1/billing/invoices/{invoice.pk}").status_code == 200
        # the back office's approve action reports it too
        client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
        page = client.post("/admin/billing/invoice/", {"action": "approve", "_selected_action": [invoice.pk]},
                           follow=True)
    assert page.status_code == 200
    assert "workflow.invoicing.dueAfter" in page.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == S.DRAFT_MANUAL_APPROVAL_NEEDED
    # an invoice edit corrects it, then approve goes through (the sandbox pays at once)
    r = api.put(f"/api/v1/billing/invoices/{invoice.pk}", {
        "supplier": {}, "customer": {}, "lines": [], "workflow": {"workflow": {"invoicing": {"dueAfter": "P7D"}}}},
        format="json")
    assert r.status_code == 200, r.json()
    with time_machine.travel(AT, tick=False):
        r = api.post(f"/api/v1/billing/invoices/{invoice.pk}/approve")
    assert r.status_code == 200, r.json()


def test_an_invoice_edit_with_an_invalid_setting_is_a_400(api):
    invoice = _draft()
    r = api.put(f"/api/v1/billing/invoices/{invoice.pk}", {
        "supplier": {}, "customer": {}, "lines": [], "workflow": {"workflow": {"invoicing": {"dueAfter": "soon"}}}},
        format="json")
    assert r.status_code == 400
    assert "workflow.workflow.invoicing.dueAfter" in r.json()["detail"]


def test_a_profile_with_invalid_stored_settings_blocks_only_its_own_customers(api):
    # the period close invoices the other customers; the customer of the broken profile waits (logged)
    fine, stuck = customer(name="Fine Corp", subjects=("fine",)), customer(name="Stuck Corp", subjects=("stuck",))
    for cust in (fine, stuck):
        gathering.pending_lines_create(customer_id=cust.pk, currency="USD", lines=[
            LineInput(name="Fee", period_start=T0, period_end=FEB, invoice_at=T0,
                      price={"type": "flat", "amount": "5", "paymentTerm": "in_advance"})])
    broken = profile(default=False)
    BillingProfile.objects.filter(pk=broken.pk).update(workflow={"invoicing": {"dueAfter": "thirty days"}})
    r = api.put(f"/api/v1/billing/customers/{stuck.pk}", {"billingProfileId": broken.pk}, format="json")
    assert r.status_code == 200, r.json()
    r = api.post("/api/v1/billing/invoices/invoice", {"customerId": stuck.pk}, format="json")
    assert r.status_code == 400
    assert "workflow.invoicing.dueAfter" in r.json()["detail"]
    jobs.collect_gathering_invoices(at=AT)
    assert set(Invoice.objects.exclude(status=S.GATHERING).values_list("customer_id", flat=True)) == {fine.pk}
