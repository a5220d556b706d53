"""The customer's typed form and its delete action go through customers.services: what the API refuses, the form
refuses on the field, and nothing is written."""

import datetime as dt

import pytest
import time_machine

from customers.models import Customer, CustomerSubject
from subscriptions.services.lifecycle import subscription_cancel
from tests.backoffice.conftest import T0
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/customers/customer/add/"


def form(**fields) -> dict:
    data = {"name": "ACME Inc.", "key": "", "primary_email": "", "currency": "", "subject_keys": "",
            "description": "", "metadata__key": [], "metadata__value": [],
            **{f"address_{k}": "" for k in ("line1", "line2", "city", "postal_code", "state", "country",
                                            "phone_number")}}
    data.update(fields)
    return data


def test_add_customer_with_address_metadata_rows_and_subject_keys(admin_client):
    response = admin_client.post(ADD, form(
        key="acme", currency="EUR", primary_email="billing@acme.test", subject_keys="acme-api\n acme-batch \n\n",
        address_line1="Main 1", address_city="Berlin", address_postal_code="10115", address_country="DE",
        metadata__key=["tier", "", "region"], metadata__value=["gold", "", "eu"],
    ))
    customer = Customer.objects.get(key="acme")
    assert response.status_code == 302 and response["Location"].endswith(f"/customers/customer/{customer.pk}/change/")
    assert customer.currency == "EUR" and customer.primary_email == "billing@acme.test"
    assert customer.billing_address == {"line1": "Main 1", "city": "Berlin", "postalCode": "10115", "country": "DE"}
    assert customer.metadata == {"tier": "gold", "region": "eu"}
    assert sorted(customer.subject_keys()) == ["acme", "acme-api", "acme-batch"]


def test_a_subject_key_of_another_customer_is_a_form_error_and_nothing_is_written(admin_client):
    CustomerFactory(key="globex", subjects=["shared-api"])
    response = admin_client.post(ADD, form(key="acme", subject_keys="shared-api"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "already belongs to customer" in errors["subject_keys"][0]
    assert not Customer.objects.filter(key="acme").exists()


def test_a_key_taken_by_another_customer_is_a_form_error(admin_client):
    CustomerFactory(key="acme")
    response = admin_client.post(ADD, form(key="acme"))
    assert "a customer with key 'acme' already exists" in response.context["adminform"].form.errors["key"][0]
    assert Customer.objects.filter(key="acme").count() == 1


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"key": "acme", "currency": "usd"}, "currency", "Select a valid choice"),
    ({"key": "acme", "address_country": "Germany"}, "address_country", "Select a valid choice"),
    ({"key": "acme", "metadata__key": ["tier", "tier"], "metadata__value": ["a", "b"]}, "metadata", "given twice"),
    ({}, "__all__", "a key or at least one subject key"),
], ids=["lower-case-currency", "country-name", "duplicate-metadata-key", "no-key-no-subject"])
def test_bad_customer_input_is_refused_on_the_form(admin_client, fields, field, message):
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert not Customer.objects.exists()


def test_edit_replaces_subject_keys_through_the_service(admin_client):
    customer = CustomerFactory(key="acme", name="ACME", subjects=["old-api"], billing_address={"country": "FR"})
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert 'value="FR" selected' in page and "old-api" in page
    response = admin_client.post(f"/admin/customers/customer/{customer.pk}/change/",
                                 form(name="ACME Corp", key="acme", currency="USD", subject_keys="new-api",
                                      address_country="FR"))
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.name == "ACME Corp" and customer.billing_address == {"country": "FR"}
    assert list(CustomerSubject.objects.filter(customer=customer).values_list("subject_key", flat=True)) == ["new-api"]


def test_deleting_a_subscribed_customer_is_refused_on_the_page_until_the_subscription_ends(admin_client, story):
    url = f"/admin/customers/customer/{story.customer.pk}/do/delete/"
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        confirm = admin_client.get(url).content.decode()
        assert "cancel the subscription first" in confirm
        refused = admin_client.post(url)
        assert refused.status_code == 200 and "still has active subscriptions" in refused.content.decode()
        assert Customer.objects.get(pk=story.customer.pk).deleted_at is None
        subscription_cancel(subscription_id=story.subscription.pk)
        done = admin_client.post(url, follow=True)
    assert "is deleted" in done.content.decode()
    assert Customer.objects.get(pk=story.customer.pk).deleted_at == T0 + dt.timedelta(days=3)


def test_bulk_delete_confirms_then_keeps_subscribed_customers(admin_client, story):
    idle = CustomerFactory(key="idle")
    data = {"action": "soft_delete", "_selected_action": [story.customer.pk, idle.pk]}
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        assert "Customers with an active subscription are kept" in admin_client.post(
            "/admin/customers/customer/", data).content.decode()
        done = admin_client.post("/admin/customers/customer/", {**data, "confirmed": "yes"}, follow=True)
    html = done.content.decode()
    assert "still has active subscriptions" in html and "Deleted 1 customer." in html
    assert Customer.objects.get(pk=idle.pk).deleted_at is not None
    assert Customer.objects.get(pk=story.customer.pk).deleted_at is None
