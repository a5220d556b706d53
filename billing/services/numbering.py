"""Invoice numbers: gap-free sequences per billing profile and kind, taken inside the caller's transaction.

Formats follow OpenMeter (`openmeter/billing/sequence/`): `GATHER-{CP}-{CUR}-{n}`, `DRAFT-{CP}-{n}`, and the
invoicing app's final number (sandbox `OM-SANDBOX-{CP}-{n}`, custom invoicing `INV-{CP}-{n}`). CP is the
customer prefix: first two letters of the first two words of the name, upper-cased (one word: its first four).
"""

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

from django.db import connection

from billing.models import InvoiceSequence


def customer_prefix(name: str | None) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name or "")
    if not words:
        return "UNKN"
    if len(words) == 1:
        return words[0][:4].upper()
    return (words[0][:2] + words[1][:2]).upper()


def sequence_take(counts: Mapping[str, int]) -> dict[str, Iterator[int]]:
    """The next `n` values of several counters in one statement. The rows stay locked until the transaction ends,
    so a rollback leaves no gap; they are taken in scope order, so two workers never deadlock on them."""
    scopes = sorted(counts)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {InvoiceSequence._meta.db_table} AS s (scope, last_value) "
            "SELECT * FROM unnest(%s::varchar[], %s::bigint[]) ORDER BY 1 "
            "ON CONFLICT (scope) DO UPDATE SET last_value = s.last_value + EXCLUDED.last_value "
            "RETURNING scope, last_value",
            [scopes, [counts[scope] for scope in scopes]],
        )
        last = dict(cur.fetchall())
    return {scope: iter(range(last[scope] - counts[scope] + 1, last[scope] + 1)) for scope in scopes}


def sequence_next(scope: str) -> int:
    """Next value of a counter, gap-free (see `sequence_take`)."""
    return next(sequence_take({scope: 1})[scope])


def gathering_number(*, profile_id: str, customer_name: str, currency: str) -> str:
    return f"GATHER-{customer_prefix(customer_name)}-{currency}-{sequence_next(f'{profile_id}/gather')}"


def draft_numbers(invoices: Sequence[tuple[str, str]]) -> list[str]:
    """Numbers of new drafts, (profile id, customer name) each, in that order: one statement for all."""
    taken = sequence_take(Counter(f"{profile_id}/draft" for profile_id, _ in invoices))
    return [f"DRAFT-{customer_prefix(name)}-{next(taken[f'{profile_id}/draft'])}" for profile_id, name in invoices]


def final_number(*, profile_id: str, customer_name: str, prefix: str) -> str:
    """The issued invoice's number, e.g. prefix `OM-SANDBOX` → `OM-SANDBOX-ACME-1`."""
    return f"{prefix}-{customer_prefix(customer_name)}-{sequence_next(f'{profile_id}/{prefix}')}"
