import pytest
from django.contrib.messages import get_messages

from openmeter_site.core.models import hash_secret
from portal.models import PortalToken
from portal.services import portal_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("staff", "s@example.com", "pw"))
    return client


def test_admin_issues_a_token_shown_once(staff):
    response = staff.post("/admin/portal/portaltoken/add/", {"subject": "customer-a", "allowed_meter_slugs": "null"})
    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request) if "shown once" in str(m)]
    raw = message.rsplit(" ", 1)[1]
    assert PortalToken.objects.get().token_hash == hash_secret(raw)


def test_admin_invalidate_action(staff):
    token, _ = portal_token_create(subject="customer-a")
    staff.post("/admin/portal/portaltoken/", {"action": "invalidate", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.invalidated_at is not None
    assert staff.get(f"/admin/portal/portaltoken/{token.pk}/change/").status_code == 200
