"""The invoice state machine: ONE table of edges, applied by compare-and-set with an `InvoiceEvent` audit row in
the same transaction (OpenMeter `openmeter/billing/service/stdinvoicestate.go`).

Edges fire on a trigger when their guard holds; `advance` fires `next` until no automatic edge remains. Entering a
state may run a step (snapshot quantities, validate, sync with the invoicing app, ...); a step that fails moves the
invoice along the `failed` edge with a validation issue. Callers hold the customer lock and the invoice row lock.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, models
from django.utils import timezone

from billing.models import Invoice, InvoiceEvent
from billing.models import InvoiceStatus as S
from billing.services.workflow import auto_advance
from openmeter_site.core.errors import Conflict, InvalidInput


class Trigger(models.TextChoices):
    NEXT = "next"
    APPROVE = "approve"
    RETRY = "retry"
    FAILED = "failed"
    UPDATED = "updated"
    FORCE_COLLECT = "force_collect"
    DELETE = "delete"
    PAID = "paid"
    AUTHORIZED = "authorized"
    ACTION_REQUIRED = "action_required"
    PAYMENT_UNCOLLECTIBLE = "payment_uncollectible"
    PAYMENT_OVERDUE = "payment_overdue"
    VOID = "void"


Guard = Callable[[Invoice, dt.datetime], bool]


def collection_due(inv: Invoice, at: dt.datetime) -> bool:
    return inv.collection_at is None or at >= inv.collection_at


def no_critical_issues(inv: Invoice, at: dt.datetime) -> bool:
    return not any(i.get("severity") == "critical" for i in inv.validation_issues or ())


def app_synced(inv: Invoice, at: dt.datetime) -> bool:
    return inv.app_sync_done


def synced_for_manual_approval(inv: Invoice, at: dt.datetime) -> bool:
    return no_critical_issues(inv, at) and inv.app_sync_done and not auto_advance(inv.workflow)


def synced_for_auto_approval(inv: Invoice, at: dt.datetime) -> bool:
    return no_critical_issues(inv, at) and inv.app_sync_done and auto_advance(inv.workflow)


def draft_period_passed(inv: Invoice, at: dt.datetime) -> bool:
    return inv.draft_until is not None and at >= inv.draft_until


def has_lines(inv: Invoice, at: dt.datetime) -> bool:
    return inv.all_lines.filter(parent__isnull=True, deleted_at__isnull=True).exists()


def has_no_lines(inv: Invoice, at: dt.datetime) -> bool:
    return not has_lines(inv, at)


def always(inv: Invoice, at: dt.datetime) -> bool:
    return True


@dataclass(frozen=True)
class Edge:
    to: S
    guard: Guard = always


def _draft_common(updated: bool = True) -> dict[Trigger, list[Edge]]:
    out = {Trigger.DELETE: [Edge(S.DELETE_IN_PROGRESS)]}
    if updated:
        out[Trigger.UPDATED] = [Edge(S.DRAFT_UPDATING)]
    return out


def _payment_news(*, void: bool = True) -> dict[Trigger, list[Edge]]:
    out = {
        Trigger.AUTHORIZED: [Edge(S.PAYMENT_BOOKING_AUTHORIZED)],
        Trigger.PAID: [Edge(S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED)],
        Trigger.FAILED: [Edge(S.PAYMENT_FAILED)],
        Trigger.PAYMENT_UNCOLLECTIBLE: [Edge(S.UNCOLLECTIBLE)],
        Trigger.PAYMENT_OVERDUE: [Edge(S.OVERDUE)],
        Trigger.ACTION_REQUIRED: [Edge(S.PAYMENT_ACTION_REQUIRED)],
    }
    if void:
        out[Trigger.VOID] = [Edge(S.VOIDED)]
    return out


def _booking(next_to: S, failed_to: S) -> dict[Trigger, list[Edge]]:
    return {Trigger.NEXT: [Edge(next_to)], Trigger.FAILED: [Edge(failed_to)], Trigger.VOID: [Edge(S.VOIDED)]}


TRANSITIONS: dict[S, dict[Trigger, list[Edge]]] = {
    S.DRAFT_CREATED: {
        Trigger.NEXT: [Edge(S.DRAFT_WAITING_FOR_COLLECTION)], Trigger.FAILED: [Edge(S.DRAFT_INVALID)], **_draft_common(),
    },
    S.DRAFT_WAITING_FOR_COLLECTION: {
        Trigger.NEXT: [Edge(S.DRAFT_COLLECTING, collection_due)],
        Trigger.FORCE_COLLECT: [Edge(S.DRAFT_COLLECTING)],
        **_draft_common(),
    },
    S.DRAFT_COLLECTING: {
        Trigger.NEXT: [Edge(S.DRAFT_VALIDATING)], Trigger.FAILED: [Edge(S.DRAFT_INVALID)], **_draft_common(),
    },
    S.DRAFT_UPDATING: {
        Trigger.NEXT: [Edge(S.DRAFT_WAITING_FOR_COLLECTION)], Trigger.FAILED: [Edge(S.DRAFT_INVALID)],
        **_draft_common(updated=False),
    },
    S.DRAFT_VALIDATING: {
        Trigger.NEXT: [Edge(S.DRAFT_SYNCING, no_critical_issues)], Trigger.FAILED: [Edge(S.DRAFT_INVALID)],
        **_draft_common(),
    },
    S.DRAFT_INVALID: {Trigger.RETRY: [Edge(S.DRAFT_VALIDATING)], **_draft_common()},
    S.DRAFT_SYNCING: {
        Trigger.NEXT: [
            Edge(S.DRAFT_MANUAL_APPROVAL_NEEDED, synced_for_manual_approval),
            Edge(S.DRAFT_WAITING_AUTO_APPROVAL, synced_for_auto_approval),
        ],
        Trigger.FAILED: [Edge(S.DRAFT_SYNC_FAILED)],
        **_draft_common(updated=False),
    },
    S.DRAFT_SYNC_FAILED: {Trigger.RETRY: [Edge(S.DRAFT_VALIDATING)], **_draft_common()},
    S.DRAFT_WAITING_AUTO_APPROVAL: {
        Trigger.NEXT: [Edge(S.DRAFT_READY_TO_ISSUE, draft_period_passed)],
        Trigger.APPROVE: [Edge(S.DRAFT_READY_TO_ISSUE)],
        **_draft_common(),
    },
    S.DRAFT_MANUAL_APPROVAL_NEEDED: {
        Trigger.APPROVE: [Edge(S.DRAFT_READY_TO_ISSUE, no_critical_issues)], **_draft_common(),
    },
    S.DRAFT_READY_TO_ISSUE: {
        Trigger.NEXT: [Edge(S.ISSUING_LINE_FINALIZATION, has_lines), Edge(S.DELETE_SYNCING, has_no_lines)],
        **_draft_common(),
    },
    S.ISSUING_LINE_FINALIZATION: {
        Trigger.NEXT: [Edge(S.ISSUING_SYNCING)], Trigger.FAILED: [Edge(S.ISSUING_LINE_FINALIZATION_FAILED)],
    },
    S.ISSUING_LINE_FINALIZATION_FAILED: {Trigger.RETRY: [Edge(S.ISSUING_LINE_FINALIZATION)]},
    S.ISSUING_SYNCING: {
        Trigger.NEXT: [Edge(S.ISSUING_CHARGE_BOOKING, app_synced)], Trigger.FAILED: [Edge(S.ISSUING_FAILED)],
    },
    S.ISSUING_FAILED: {Trigger.RETRY: [Edge(S.ISSUING_SYNCING)]},
    S.ISSUING_CHARGE_BOOKING: {
        Trigger.NEXT: [Edge(S.ISSUED)], Trigger.FAILED: [Edge(S.ISSUING_CHARGE_BOOKING_FAILED)],
    },
    S.ISSUING_CHARGE_BOOKING_FAILED: {Trigger.RETRY: [Edge(S.ISSUING_CHARGE_BOOKING)]},
    S.ISSUED: {Trigger.NEXT: [Edge(S.PAYMENT_PENDING)], Trigger.VOID: [Edge(S.VOIDED)]},
    S.PAYMENT_PENDING: _payment_news(),
    S.PAYMENT_BOOKING_AUTHORIZED: _booking(S.PAYMENT_AUTHORIZED, S.PAYMENT_BOOKING_AUTHORIZED_FAILED),
    S.PAYMENT_BOOKING_AUTHORIZED_FAILED: {
        Trigger.RETRY: [Edge(S.PAYMENT_BOOKING_AUTHORIZED)], Trigger.VOID: [Edge(S.VOIDED)],
    },
    S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED: _booking(S.PAID, S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED),
    S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED: {
        Trigger.RETRY: [Edge(S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED)], Trigger.VOID: [Edge(S.VOIDED)],
    },
    S.PAYMENT_AUTHORIZED: {
        **_payment_news(), Trigger.PAID: [Edge(S.PAYMENT_BOOKING_SETTLED)], Trigger.AUTHORIZED: [],
    },
    S.PAYMENT_BOOKING_SETTLED: _booking(S.PAID, S.PAYMENT_BOOKING_SETTLED_FAILED),
    S.PAYMENT_BOOKING_SETTLED_FAILED: {
        Trigger.RETRY: [Edge(S.PAYMENT_BOOKING_SETTLED)], Trigger.VOID: [Edge(S.VOIDED)],
    },
    S.PAYMENT_FAILED: {**_payment_news(), Trigger.FAILED: [], Trigger.RETRY: [Edge(S.PAYMENT_PENDING)]},
    S.PAYMENT_ACTION_REQUIRED: {
        **_payment_news(), Trigger.ACTION_REQUIRED: [], Trigger.RETRY: [Edge(S.PAYMENT_PENDING)],
    },
    S.OVERDUE: {
        **_payment_news(void=False), Trigger.PAYMENT_OVERDUE: [], Trigger.RETRY: [Edge(S.PAYMENT_PENDING)],
    },
    S.UNCOLLECTIBLE: {
        Trigger.VOID: [Edge(S.VOIDED)],
        Trigger.AUTHORIZED: [Edge(S.PAYMENT_BOOKING_AUTHORIZED)],
        Trigger.PAID: [Edge(S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED)],
    },
    S.DELETE_IN_PROGRESS: {Trigger.NEXT: [Edge(S.DELETE_SYNCING)], Trigger.FAILED: [Edge(S.DELETE_FAILED)]},
    S.DELETE_SYNCING: {Trigger.NEXT: [Edge(S.DELETED, app_synced)], Trigger.FAILED: [Edge(S.DELETE_FAILED)]},
    S.DELETE_FAILED: {Trigger.DELETE: [Edge(S.DELETE_IN_PROGRESS)]},
    S.PAID: {},
    S.VOIDED: {},
    S.DELETED: {},
}

FAILED_STATUSES = frozenset({
    S.DRAFT_INVALID, S.DRAFT_SYNC_FAILED, S.ISSUING_LINE_FINALIZATION_FAILED, S.ISSUING_FAILED,
    S.ISSUING_CHARGE_BOOKING_FAILED, S.PAYMENT_BOOKING_AUTHORIZED_FAILED,
    S.PAYMENT_BOOKING_AUTHORIZED_AND_SETTLED_FAILED, S.PAYMENT_BOOKING_SETTLED_FAILED, S.PAYMENT_FAILED, S.DELETE_FAILED,
})

# API action name → trigger (`statusDetails.availableActions`)
ACTIONS: dict[str, Trigger] = {
    "advance": Trigger.NEXT,
    "approve": Trigger.APPROVE,
    "delete": Trigger.DELETE,
    "retry": Trigger.RETRY,
    "snapshotQuantities": Trigger.FORCE_COLLECT,
    "void": Trigger.VOID,
}


class InvoiceConcurrentlyModified(Conflict):
    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"invoice {invoice_id} was modified concurrently; reload it and try again")


def edge_for(invoice: Invoice, trigger: Trigger, at: dt.datetime) -> Edge | None:
    """The edge `trigger` would take now, or None."""
    if invoice.status == S.GATHERING:
        return None
    for edge in TRANSITIONS.get(S(invoice.status), {}).get(trigger, []):
        if edge.guard(invoice, at):
            return edge
    return None


def available_actions(invoice: Invoice, at: dt.datetime | None = None) -> dict[str, dict[str, str]]:
    if invoice.status == S.GATHERING:
        return {"invoice": {}}
    at = at or timezone.now()
    out: dict[str, dict[str, str]] = {}
    for action, trigger in ACTIONS.items():
        edge = edge_for(invoice, trigger, at)
        if edge is not None:
            out[action] = {"resultingState": edge.to.value}
    return out


def is_immutable(invoice: Invoice) -> bool:
    if invoice.status == S.GATHERING:
        return False
    return Trigger.UPDATED not in TRANSITIONS.get(S(invoice.status), {})


def is_failed(invoice: Invoice) -> bool:
    return invoice.status in FAILED_STATUSES


def action_not_available(invoice: Invoice, action: str) -> InvalidInput:
    allowed = sorted(available_actions(invoice))
    return InvalidInput(
        f"invoice {invoice.id}: action {action} is not available in status {invoice.status}"
        f" (available: {', '.join(allowed) or 'none'})",
        extensions={"status": invoice.status, "availableActions": allowed},
    )


MOVE_SQL = f"""
WITH moved AS (
    UPDATE {Invoice._meta.db_table} SET status = %(to)s, updated_at = %(now)s
    WHERE id = %(id)s AND status = %(from)s RETURNING id
)
INSERT INTO {InvoiceEvent._meta.db_table} (invoice_id, from_status, to_status, trigger, actor, note, created_at)
SELECT id, %(from)s, %(to)s, %(trigger)s, %(actor)s, %(note)s, %(now)s FROM moved
"""


def move(invoice: Invoice, to: S, trigger: Trigger, *, actor: str, note: str = "") -> None:
    """Compare-and-set the status and write the audit row, in one statement (the audit row exists exactly when
    the status moved)."""
    params: dict[str, str | dt.datetime] = {
        "id": invoice.pk, "from": invoice.status, "to": to.value, "trigger": trigger.value, "actor": actor, "note": note,
        "now": timezone.now(),
    }
    with connection.cursor() as cur:
        cur.execute(MOVE_SQL, params)
        moved = cur.rowcount
    if not moved:
        raise InvoiceConcurrentlyModified(invoice.pk)
    invoice.status = to
