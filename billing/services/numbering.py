"""Invoice numbers: gap-free sequences per billing profile and kind, taken inside the caller's transaction.

Formats follow OpenMeter (`openmeter/billing/sequence/`): `GATHER-{CP}-{CUR}-{n}`, `DRAFT-{CP}-{n}`, and the
invoicing app's final number (sandbox `OM-SANDBOX-{CP}-{n}`, custom invoicing `INV-{CP}-{n}`). CP is the
customer prefix: first two letters of the first two words of the name, upper-cased (one word: its first four).
"""

import re

from django.db import connection

from billing.models import InvoiceSequence


def customer_prefix(name: str | None) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name or "")
    if not words:
        return "UNKN"
    if len(words) == 1:
        return words[0][:4].upper()
    return (words[0][:2] + words[1][:2]).upper()


def sequence_next(scope: str) -> int:
    """Next value of a counter. The row stays locked until the transaction ends, so a rollback leaves no gap."""
    if connection.vendor != "postgresql":
        seq, _ = InvoiceSequence.objects.select_for_update().get_or_create(scope=scope)
        seq.last_value += 1
        seq.save(update_fields=["last_value"])
        return seq.last_value
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {InvoiceSequence._meta.db_table} (scope, last_value) VALUES (%s, 1) "
            "ON CONFLICT (scope) DO UPDATE SET last_value = EXCLUDED.last_value + "
            f"{InvoiceSequence._meta.db_table}.last_value RETURNING last_value",
            [scope],
        )
        return cur.fetchone()[0]


def gathering_number(*, profile_id: str, customer_name: str, currency: str) -> str:
    return f"GATHER-{customer_prefix(customer_name)}-{currency}-{sequence_next(f'{profile_id}/gather')}"


def draft_number(*, profile_id: str, customer_name: str) -> str:
    return f"DRAFT-{customer_prefix(customer_name)}-{sequence_next(f'{profile_id}/draft')}"


def final_number(*, profile_id: str, customer_name: str, prefix: str) -> str:
    """The issued invoice's number, e.g. prefix `OM-SANDBOX` → `OM-SANDBOX-ACME-1`."""
    return f"{prefix}-{customer_prefix(customer_name)}-{sequence_next(f'{profile_id}/{prefix}')}"
