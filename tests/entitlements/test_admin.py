"""Back-office smoke and action tests (admin changelists, change pages, actions call the services)."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from entitlements.models import Entitlement, Grant, UsageReset
from entitlements.services import GrantInput, UsagePeriodInput, entitlement_create, grant_create
from tests.factories import CustomerFactory, FeatureFactory, MeterFactory, ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def entitled():
    customer = CustomerFactory(key="acme", subjects=["acme-api"])
    feature = FeatureFactory(key="tokens", meter=MeterFactory(slug="tokens"))
    FeatureFactory(key="images", meter=MeterFactory(slug="images", event_type="image", value_property="$.count"))
    entitlement = entitlement_create(customer=customer, feature=feature, type="metered",
                                     usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
    grant = grant_create(entitlement=entitlement, data=GrantInput(amount=Decimal(100), effective_at=T0), at=T0)
    ingest([{"subject": "acme-api", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 42}}])
    ingest([{"subject": "acme", "time": T0 + dt.timedelta(days=2), "data": {"count": 3}}], type="image")
    return customer, entitlement, grant


@pytest.mark.parametrize(
    "url",
    ["/admin/customers/customer/", "/admin/entitlements/entitlement/", "/admin/entitlements/grant/",
     "/admin/entitlements/usagereset/", "/admin/entitlements/balancesnapshot/", "/admin/catalog/feature/"],
)
def test_changelists_render(admin_client, entitled, url):
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_entitlement_page_shows_current_balance(admin_client, entitled):
    _, entitlement, _ = entitled
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        html = admin_client.get(f"/admin/entitlements/entitlement/{entitlement.pk}/change/").content.decode()
        listing = admin_client.get("/admin/entitlements/entitlement/").content.decode()
    assert "58" in html and "42" in html
    assert '<td class="field-current_balance"><span class="om-num">58</span></td>' in listing


def test_grant_void_action_calls_the_service(admin_client, entitled):
    _, _, grant = entitled
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        response = admin_client.post("/admin/entitlements/grant/",
                                     {"action": "void_now", "_selected_action": [grant.pk], "confirmed": "yes"}, follow=True)
    assert response.status_code == 200
    grant.refresh_from_db()
    assert grant.voided_at == T0 + dt.timedelta(days=3)
    assert Grant.objects.filter(voided_at__isnull=True).count() == 0


def test_entitlement_reset_and_end_actions(admin_client, entitled):
    _, entitlement, _ = entitled
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        admin_client.post("/admin/entitlements/entitlement/", {"action": "reset_now", "_selected_action": [entitlement.pk]})
        admin_client.post("/admin/entitlements/entitlement/",
                          {"action": "end_now", "_selected_action": [entitlement.pk], "confirmed": "yes"})
    assert UsageReset.objects.get().reset_at == T0 + dt.timedelta(days=3)
    assert Entitlement.objects.get().deleted_at is not None


def test_customer_soft_delete_action_ends_entitlements(admin_client, entitled, django_capture_on_commit_callbacks):
    customer, _, _ = entitled
    # the commit relays the customers.customer_deleted event to entitlements' handler
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/customers/customer/",
                          {"action": "soft_delete", "_selected_action": [customer.pk], "confirmed": "yes"})
    assert Customer.objects.get().deleted_at is not None
    assert Entitlement.objects.get().deleted_at is not None
    assert Entitlement.objects.get().active_to <= timezone.now()


def _entitled_customers(first: int, count: int) -> None:
    """Customer i (i = first…) on a feature of its own meter, granted 100 tokens, having used 10 x i."""
    for i in range(first, first + count):
        customer = CustomerFactory(key=f"c{i}", subjects=[f"s{i}"])
        feature = FeatureFactory(key=f"f{i}", meter=MeterFactory(slug=f"m{i}", event_type=f"e{i}"))
        entitlement = entitlement_create(customer=customer, feature=feature, type="metered",
                                         usage_period=UsagePeriodInput("MONTH", T0), measure_usage_from=T0, at=T0)
        grant_create(entitlement=entitlement, data=GrantInput(amount=Decimal(100), effective_at=T0), at=T0)
        ingest([{"subject": f"s{i}", "time": T0 + dt.timedelta(days=1), "data": {"tokens": 10 * i}}], type=f"e{i}")


def test_entitlement_list_reads_the_live_values_in_a_number_of_queries_that_does_not_grow_with_rows(admin_client):
    def listing() -> tuple[int, str]:
        with time_machine.travel(T0 + dt.timedelta(days=3), tick=False), \
                CaptureQueriesContext(connection) as queries:
            html = admin_client.get("/admin/entitlements/entitlement/").content.decode()
        return len(queries), html

    _entitled_customers(1, 2)
    few, html = listing()
    assert '<td class="field-current_balance"><span class="om-num">90</span></td>' in html  # 100 - 10
    _entitled_customers(3, 8)
    many, html = listing()
    assert many == few
    for i in range(1, 11):  # balance 100 - 10 x i, usage 10 x i: the last one has used it all, and has no access
        assert (f'<td class="field-current_balance"><span class="om-num">{100 - 10 * i}</span></td>'
                f'<td class="field-current_usage"><span class="om-num">{10 * i}</span></td>') in html
    assert html.count('alt="False"') == 1
