"""Billing services (the write side). Other apps import from here."""

from billing.services.actions import (
    invoice_advance,
    invoice_approve,
    invoice_delete,
    invoice_retry,
    invoice_snapshot_quantities,
    invoice_trigger_payment,
    invoice_void,
)
from billing.services.drafts import invoice_pending_lines
from billing.services.gathering import pending_lines_create
from billing.services.profiles import (
    billing_profile_create,
    billing_profile_default_ensure,
    profile_for_customer,
)

__all__ = [
    "billing_profile_create",
    "billing_profile_default_ensure",
    "invoice_advance",
    "invoice_approve",
    "invoice_delete",
    "invoice_pending_lines",
    "invoice_retry",
    "invoice_snapshot_quantities",
    "invoice_trigger_payment",
    "invoice_void",
    "pending_lines_create",
    "profile_for_customer",
]
