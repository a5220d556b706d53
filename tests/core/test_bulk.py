"""copy_insert writes what bulk_create writes, through COPY."""

from decimal import Decimal

import pytest
from django.db import connection
from django.forms.models import model_to_dict

from billing.models import Invoice, InvoiceEvent
from billing.models import InvoiceStatus as S
from billing.services.gathering import new_invoice
from billing.services.profiles import billing_profile_default_ensure
from openmeter_site.core.bulk import copy_insert
from openmeter_site.core.errors import InvalidInput
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def draft(number: str, total: str) -> Invoice:
    invoice = new_invoice(CustomerFactory(), billing_profile_default_ensure(), currency="USD", status=S.DRAFT_CREATED,
                          number=number)
    invoice.total = invoice.amount = Decimal(total)
    invoice.validation_issues = [{"severity": "warning", "message": "n\u00e9e \t tab"}]
    return invoice


def stored(invoice: Invoice) -> dict:
    values = model_to_dict(Invoice.objects.get(pk=invoice.pk))
    return {k: v for k, v in values.items() if k not in {"id", "customer", "number"}}


def test_rows_copied_read_back_as_bulk_created_ones_and_save_updates_them():
    by_copy, by_bulk = draft("DRAFT-1", "12.3456"), draft("DRAFT-2", "12.3456")
    by_copy.customer_snapshot = by_bulk.customer_snapshot  # same text in both rows
    copy_insert([by_copy])
    Invoice.objects.bulk_create([by_bulk])
    assert stored(by_copy) == stored(by_bulk)
    assert Invoice.objects.get(pk=by_copy.pk).total == Decimal("12.3456")
    assert Invoice.objects.get(pk=by_copy.pk).validation_issues == [{"severity": "warning", "message": "n\u00e9e \t tab"}]
    # a later save() updates the copied row (no second INSERT with the same id)
    by_copy.number = "DRAFT-9"
    by_copy.save()
    assert Invoice.objects.get(pk=by_copy.pk).number == "DRAFT-9"


def test_serial_ids_and_auto_now_fields_are_the_databases_and_djangos():
    invoice = draft("DRAFT-1", "1")
    copy_insert([invoice])
    copy_insert([InvoiceEvent(invoice_id=invoice.pk, from_status="", to_status=invoice.status, trigger="create"),
                 InvoiceEvent(invoice_id=invoice.pk, from_status=invoice.status, to_status="x", trigger="next")])
    events = list(InvoiceEvent.objects.filter(invoice=invoice).order_by("id"))
    assert [(e.trigger, e.actor) for e in events] == [("create", "system"), ("next", "system")]
    assert events[0].id < events[1].id and all(e.created_at is not None for e in events)


def test_a_value_a_column_cannot_hold_is_refused_before_anything_is_written():
    good, bad = draft("DRAFT-1", "1"), draft("DRAFT-2", "1")
    bad.total = Decimal("1E+19")
    with pytest.raises(InvalidInput, match=r"total: 1\.000000E\+19 is out of range"):
        copy_insert([good, bad])
    assert not Invoice.objects.filter(pk__in=[good.pk, bad.pk]).exists()


def test_the_copy_passes_through_the_connections_execute_wrappers():
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append((sql, len(params)))
        return execute(sql, params, many, context)

    invoices = [draft("DRAFT-1", "1"), draft("DRAFT-2", "2")]
    with connection.execute_wrapper(wrapper):
        copy_insert(invoices)
    [(sql, rows)] = seen
    assert sql.startswith('COPY "billing_invoice" (') and rows == 2
    assert Invoice.objects.filter(pk__in=[i.pk for i in invoices]).count() == 2
