"""How the back office shows an invoice: each line with its price in words and its amounts as money, the detailed
lines under their parent line, and the invoice's totals (the printable invoice reads the same rows)."""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from billing import plugins, selectors
from billing.models import DetailedLineCategory, Invoice, InvoiceLine
from billing.services import editing
from openmeter_site.admin_ui.display import EMPTY, duration_text, money_text, period, quantity_text, when
from openmeter_site.core.fields import normalized
from openmeter_site.core.money import round_money

# the invoice's totals as an operator reads them, in the order of the spec's `Totals`
TOTAL_ROWS = (
    ("amount", "Amount"),
    ("charges_total", "Charges (minimum spend)"),
    ("discounts_total", "Discounts"),
    ("credits_total", "Credits"),
    ("taxes_total", "Taxes"),
    ("total", "Total"),
)


def _amount(value: Any, currency: str) -> str:
    return money_text(Decimal(str(value)), currency, exact=True)


def price_text(price: dict[str, Any] | None, currency: str) -> str:
    """A rate card's price in words: "$0.10 per unit", "$99.00 flat fee, in advance", "graduated tiers"."""
    if not price:
        return "no price"
    kind = price.get("type")
    if kind == "flat":
        term = "in advance" if price.get("paymentTerm", "in_advance") == "in_advance" else "in arrears"
        text = f"{_amount(price['amount'], currency)} flat fee, {term}"
    elif kind == "unit":
        text = f"{_amount(price['amount'], currency)} per unit"
    elif kind == "package":
        text = f"{_amount(price['amount'], currency)} per {quantity_text(price['quantityPerPackage'])} units"
    elif kind == "tiered":
        text = f"{price.get('mode', '')} tiers".strip()
    elif kind == "dynamic":
        text = f"cost × {quantity_text(price.get('multiplier') or 1)}"
    else:
        text = str(kind)
    limits = [f"{word} {money_text(Decimal(str(price[key])), currency)}"
              for key, word in (("minimumAmount", "minimum"), ("maximumAmount", "maximum")) if price.get(key)]
    return ", ".join([text, *limits])


def discounts_text(discounts: dict[str, Any] | None) -> str:
    """A rate card's discounts: "10% off", "first 5 free"."""
    parts = []
    if discounts and discounts.get("percentage"):
        parts.append(f"{quantity_text(discounts['percentage']['percentage'])}% off")
    if discounts and discounts.get("usage"):
        parts.append(f"first {quantity_text(discounts['usage']['quantity'])} free")
    return ", ".join(parts)


@dataclass(frozen=True)
class LineRow:
    line: InvoiceLine
    detail: bool  # a detailed line, shown under its parent
    name: str
    period: SafeString
    terms: str  # price and discounts in words (top-level lines)
    quantity: str
    unit_price: str  # detailed lines: the per-unit amount, exact
    amount: str
    discounts: str
    charges: str
    total: str


def _money_or_blank(value: Decimal | None, currency: str) -> str:
    return money_text(value, currency) if value else ""


def _quantity(line: InvoiceLine) -> str:
    """Usage lines: the billed quantity, with the metered one when a usage discount made them differ."""
    if line.quantity is None:
        return ""
    shown = quantity_text(line.quantity)
    if line.metered_quantity is not None and line.metered_quantity != line.quantity:
        shown += f" (metered {quantity_text(line.metered_quantity)})"
    return shown


def _row(line: InvoiceLine, currency: str, *, detail: bool) -> LineRow:
    if detail:
        commitment = line.category == DetailedLineCategory.COMMITMENT and "minimum spend" not in line.name
        name = f"{line.name} (minimum spend)" if commitment else line.name
        terms, unit = "", money_text(line.per_unit_amount, currency, exact=True) if line.per_unit_amount else ""
    else:
        name = line.name
        terms = ", ".join(t for t in (price_text(line.price, currency), discounts_text(line.rate_card_discounts)) if t)
        unit = ""
    return LineRow(
        line=line, detail=detail, name=name, period=period(line.period_start, line.period_end), terms=terms,
        quantity=_quantity(line), unit_price=unit, amount=money_text(line.amount, currency),
        discounts=_money_or_blank(line.discounts_total, currency),
        charges=_money_or_blank(line.charges_total, currency), total=money_text(line.total, currency),
    )


def nest_lines(invoice: Invoice, lines: Sequence[InvoiceLine]) -> list[LineRow]:
    """Top-level lines in order, each followed by its detailed lines."""
    children: dict[str, list[InvoiceLine]] = {}
    for line in lines:
        if line.parent_id:
            children.setdefault(line.parent_id, []).append(line)
    rows = []
    for line in lines:
        if line.parent_id is None:
            rows.append(_row(line, invoice.currency, detail=False))
            rows += [_row(child, invoice.currency, detail=True) for child in children.get(line.pk, [])]
    return rows


def invoice_rows(invoice: Invoice) -> list[LineRow]:
    """The invoice's lines as shown; a gathering invoice is calculated with the usage to date (as the API shows it;
    nothing is saved), so its totals on `invoice` are updated in memory."""
    lines = selectors.invoice_lines(invoice)
    if invoice.is_gathering:
        lines = editing.gathering_preview(invoice, lines)
    return nest_lines(invoice, lines)


def total_rows(invoice: Invoice) -> list[tuple[str, str]]:
    """(label, amount) of the totals an operator checks; empty charges, discounts, credits and taxes are left out."""
    return [(label, money_text(getattr(invoice, field), invoice.currency)) for field, label in TOTAL_ROWS
            if field in ("amount", "total") or getattr(invoice, field)]


def invoice_dates(invoice: Invoice) -> list[tuple[str, SafeString]]:
    """The dates that matter for the invoice's state, in the operator's zone."""
    draft = invoice.status_prefix in ("gathering", "draft")
    dates = [("Service period", invoice.period_start and period(invoice.period_start, invoice.period_end)),
             ("Collection", draft and invoice.collection_at and when(invoice.collection_at)),
             ("Draft until", invoice.status_prefix == "draft" and invoice.draft_until and when(invoice.draft_until)),
             ("Issued", invoice.issued_at and when(invoice.issued_at)),
             ("Due", invoice.due_at and when(invoice.due_at)),
             ("Voided", invoice.voided_at and when(invoice.voided_at))]
    return [(label, value) for label, value in dates if value]


def party_text(party: dict[str, Any] | None, *, with_key: bool = True) -> SafeString:
    """A `BillingParty` snapshot (supplier, customer) as an address block; `with_key`: our key of it too (the back
    office; not on the printed invoice)."""
    if not party:
        return EMPTY
    lines = [party.get("name") or ""]
    if with_key and party.get("key"):
        lines.append(f"key {party['key']}")
    if (party.get("taxId") or {}).get("code"):
        lines.append(f"tax ID {party['taxId']['code']}")
    for address in party.get("addresses") or ():
        lines += [address.get("line1"), address.get("line2"),
                  " ".join(p for p in (address.get("postalCode"), address.get("city"), address.get("state")) if p),
                  address.get("country"), address.get("phoneNumber")]
    return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines if line))


def workflow_text(workflow: dict[str, Any] | None) -> str:
    """A billing workflow in one sentence, e.g. "collected 1 hour after the period; auto-advanced after a draft
    period of 0 days; due 30 days after issue; progressive billing; charged automatically; tax enabled"."""
    if not workflow:
        return "—"
    collection, invoicing = workflow.get("collection", {}), workflow.get("invoicing", {})
    parts = [f"collected {duration_text(collection.get('interval'))} after the period"]
    if (collection.get("alignment") or {}).get("type") == "anchored":
        recurring = collection["alignment"].get("recurringPeriod") or {}
        parts[0] += f", on a {duration_text(recurring.get('interval'))} cycle from {recurring.get('anchor', '?')}"
    if invoicing.get("autoAdvance"):
        parts.append(f"auto-advanced after a draft period of {duration_text(invoicing.get('draftPeriod'))}")
    else:
        parts.append("drafts wait for approval")
    parts.append(f"due {duration_text(invoicing.get('dueAfter'))} after issue")
    if invoicing.get("progressiveBilling"):
        parts.append("progressive billing")
    method = (workflow.get("payment") or {}).get("collectionMethod")
    parts.append("charged automatically" if method == "charge_automatically" else "invoice sent for payment")
    tax = workflow.get("tax") or {}
    parts.append("tax enforced" if tax.get("enforced") else "tax enabled" if tax.get("enabled") else "no tax")
    return "; ".join(parts)


CSV_COLUMNS = ["line", "detail of", "service from", "service to", "quantity", "unit price", "amount", "discounts",
               "charges", "credits", "taxes", "total", "currency"]
CSV_AMOUNTS = ("amount", "discounts_total", "charges_total", "credits_total", "taxes_total", "total")


def write_lines_csv(out: Any, invoice: Invoice, rows: Sequence[LineRow]) -> None:
    """The invoice's lines as CSV rows (a detailed line names its parent line), then the invoice's totals: amounts
    as plain decimals in the currency's precision, times in UTC."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    parents = {row.line.pk: row.line.name for row in rows if not row.detail}
    currency = invoice.currency
    for row in rows:
        line = row.line
        writer.writerow([
            line.name, parents.get(line.parent_id or "", ""), line.period_start.isoformat(), line.period_end.isoformat(),
            "" if line.quantity is None else format(normalized(line.quantity), "f"),
            "" if line.per_unit_amount is None else format(normalized(line.per_unit_amount), "f"),
            *(format(round_money(getattr(line, f), currency), "f") for f in CSV_AMOUNTS), currency,
        ])
    writer.writerow(["Total", "", "", "", "", "", *(format(round_money(getattr(invoice, f), currency), "f")
                                                    for f in CSV_AMOUNTS), currency])


def external_ids_html(invoice: Invoice) -> SafeString:
    """The invoice's ids in other systems; the invoicing app's id links to the app where it has a page (Stripe)."""
    ids = invoice.external_ids or {}
    if not ids:
        return EMPTY
    url = plugins.invoice_url(invoice.invoicing_app, ids["invoicing"]) if ids.get("invoicing") else None
    return format_html_join(", ", "{}: {}", (
        (role, format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, value)
         if role == "invoicing" and url else value)
        for role, value in ids.items()))
