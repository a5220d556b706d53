"""The transitions table: every unguarded edge fires, writes an audit row, and availableActions match it."""

import datetime as dt

import pytest

from billing.models import Invoice, InvoiceEvent
from billing.models import InvoiceStatus as S
from billing.services import actions, issuing, state
from billing.services.state import TRANSITIONS, Trigger, always
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

UNGUARDED = [
    (source, trigger, edge.to)
    for source, edges in TRANSITIONS.items()
    for trigger, targets in edges.items()
    for edge in targets[:1]
    if edge.guard is always and source not in {S.DRAFT_SYNCING, S.ISSUING_SYNCING}
]


def _invoice(status: S) -> Invoice:
    from billing.services.profiles import billing_profile_default_ensure

    profile = billing_profile_default_ensure()
    cust = CustomerFactory()
    return Invoice.objects.create(
        customer=cust, billing_profile=profile, status=status, number=f"T-{cust.pk}", currency="USD",
        workflow=profile.workflow, customer_snapshot={"name": cust.name}, tax_app=profile.tax_app,
        invoicing_app=profile.invoicing_app, payment_app=profile.payment_app,
    )


def test_every_status_is_in_the_table_and_every_target_is_a_status():
    assert set(TRANSITIONS) == set(S) - {S.GATHERING}
    for edges in TRANSITIONS.values():
        for targets in edges.values():
            assert all(edge.to in set(S) for edge in targets)


@pytest.mark.parametrize(("source", "trigger", "target"), UNGUARDED, ids=lambda v: str(v))
def test_edge_fires_and_is_audited(source, trigger, target):
    invoice = _invoice(source)
    assert issuing.fire(invoice, trigger, at=AT, actor="test") is True
    invoice.refresh_from_db()
    event = InvoiceEvent.objects.filter(invoice=invoice).first()
    assert (event.from_status, event.to_status, event.trigger) == (source, target, trigger)
    # a step may move on along `failed` (e.g. validating an invoice without lines); otherwise we are at the target
    assert invoice.status == target or InvoiceEvent.objects.filter(invoice=invoice, trigger=Trigger.FAILED).exists()


@pytest.mark.parametrize("source", [s for s in TRANSITIONS if s not in {S.DRAFT_READY_TO_ISSUE}])
def test_available_actions_come_from_the_table(source):
    invoice = _invoice(source)
    actions = state.available_actions(invoice, AT)
    for name, trigger in state.ACTIONS.items():
        assert (name in actions) == (state.edge_for(invoice, trigger, AT) is not None)
    assert state.is_immutable(invoice) == (Trigger.UPDATED not in TRANSITIONS[source])
    assert state.is_failed(invoice) == (source.endswith("failed") or source == S.DRAFT_INVALID)


def test_compare_and_set_refuses_a_stale_status():
    invoice = _invoice(S.ISSUED)
    stale = Invoice.objects.get(pk=invoice.pk)
    state.move(invoice, S.PAYMENT_PENDING, Trigger.NEXT, actor="a")
    with pytest.raises(state.InvoiceConcurrentlyModified):
        state.move(stale, S.VOIDED, Trigger.VOID, actor="b")
    assert Invoice.objects.get(pk=invoice.pk).status == S.PAYMENT_PENDING
    assert InvoiceEvent.objects.filter(invoice=invoice).count() == 1


def test_payment_news_from_issued_goes_through_pending(api):
    invoice = _invoice(S.ISSUED)
    actions.invoice_trigger_payment(invoice_id=invoice.pk, trigger="action_required", at=AT)
    invoice.refresh_from_db()
    assert invoice.status == S.PAYMENT_ACTION_REQUIRED
    actions.invoice_trigger_payment(invoice_id=invoice.pk, trigger="authorized", at=AT)
    actions.invoice_trigger_payment(invoice_id=invoice.pk, trigger="paid", at=AT)
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    trail = list(InvoiceEvent.objects.filter(invoice=invoice).values_list("to_status", flat=True))
    assert trail == [
        "payment_processing.pending", "payment_processing.action_required", "payment_processing.booking_authorized",
        "payment_processing.authorized", "payment_processing.booking_settled", "paid",
    ]
