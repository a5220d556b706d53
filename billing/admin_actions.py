"""Billing actions on a customer, for the customer's page in the back office (`backoffice`): add a one-off charge (a
pending line on the gathering invoice, optionally invoiced at once) and invoice now (the customer's pending lines
become invoices). Each calls the service behind the API (`createLineItems`, `invoicePendingLines`)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.models import Invoice, status_words
from billing.services import drafts, gathering
from billing.services.gathering import LineInput
from customers.models import Customer
from openmeter_site.admin_ui.actions import ActionForm, ObjectAction, actor
from openmeter_site.admin_ui.display import money_text
from openmeter_site.admin_ui.forms import CurrencyField, DescriptionField


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of `day` in the operator's zone (the back office activates it per request)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


class OneOffChargeForm(ActionForm):
    name = forms.CharField(max_length=256, label="Charge", help_text="As the customer reads it on the invoice, "
                                                                     "e.g. “Onboarding workshop”.")
    amount = forms.DecimalField(min_value=Decimal(0), max_digits=38, decimal_places=19)
    currency = CurrencyField()
    service_from = forms.DateField(label="Service from", widget=forms.DateInput(attrs={"type": "date"}))
    service_to = forms.DateField(label="Service to", widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="The last day of the service, included.")
    description = DescriptionField()
    invoice_now = forms.BooleanField(required=False, label="Invoice it now",
                                     help_text="Make an invoice of this charge right away; otherwise it waits on the "
                                               "customer's next invoice.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("service_from"), data.get("service_to")
        if start and end and end < start:
            self.add_error("service_to", "The service cannot end before it starts.")
        return data


def _charge_initial(customer: Customer) -> dict[str, Any]:
    today = timezone.localdate()
    return {"currency": customer.currency or "USD", "service_from": today, "service_to": today}


def invoice_link(invoice: Invoice) -> SafeString:
    url = reverse("admin:billing_invoice_change", args=[invoice.pk])
    return format_html('<a href="{}">{}</a> ({}, {})', url, invoice.number, money_text(invoice.total, invoice.currency),
                       status_words(invoice.status))


def invoiced_message(request: HttpRequest, invoices: list[Invoice], lead: SafeString) -> HttpResponse | SafeString:
    """The message after invoicing; with one invoice, the operator goes on to it (to approve or send it)."""
    fresh = list(Invoice.objects.filter(pk__in=[i.pk for i in invoices]).order_by("currency"))
    text = format_html("{} {}", lead, format_html_join(", ", "{}", ((invoice_link(i),) for i in fresh)))
    if len(fresh) != 1:
        return text
    messages.success(request, text)
    return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[fresh[0].pk]))


def add_one_off_charge(request: HttpRequest, customer: Customer, data: dict[str, Any]) -> HttpResponse | SafeString:
    start = _day_start(data["service_from"])
    end = _day_start(data["service_to"] + dt.timedelta(days=1))
    line = LineInput(
        name=data["name"], description=data["description"] or None, period_start=start, period_end=end,
        invoice_at=start, price={"type": "flat", "amount": str(data["amount"]), "paymentTerm": "in_advance"},
    )
    with transaction.atomic():  # with "invoice it now", a refused invoice leaves no line behind either
        added = gathering.pending_lines_create(customer_id=customer.pk, currency=data["currency"], lines=[line])
        charge = money_text(data["amount"], data["currency"], exact=True)
        if data["invoice_now"]:
            invoices = drafts.invoice_pending_lines(customer_id=customer.pk, line_ids=[added.lines[0].pk],
                                                       actor=actor(request))
            return invoiced_message(request, invoices, format_html("{} ({}) invoiced:", data["name"], charge))
    url = reverse("admin:billing_invoice_change", args=[added.invoice.pk])
    return format_html('{} ({}) added to the pending lines of <a href="{}">{}</a>; it is invoiced with the next '
                       "invoice, or now with “Invoice now”.", data["name"], charge, url, added.invoice.number)


PROGRESSIVE_CHOICES = [
    ("", "As the billing profile says"),
    ("yes", "Invoice the usage so far of periods still running"),
    ("no", "Only lines whose service period has ended"),
]


class InvoiceNowForm(ActionForm):
    progressive = forms.ChoiceField(
        choices=PROGRESSIVE_CHOICES, required=False, label="Usage of running periods",
        help_text="Fees billed in advance and lines whose period has ended are always invoiced.",
    )


def invoice_now(request: HttpRequest, customer: Customer, data: dict[str, Any]) -> HttpResponse | SafeString:
    override = {"": None, "yes": True, "no": False}[data["progressive"]]
    invoices = drafts.invoice_pending_lines(customer_id=customer.pk, progressive_billing_override=override,
                                               actor=actor(request))
    return invoiced_message(request, invoices, format_html("Invoiced {}:", customer.name))


def _live(customer: Customer) -> bool:
    return customer.deleted_at is None


CUSTOMER_BILLING_ACTIONS = (
    ObjectAction("add_charge", "Add one-off charge", run=add_one_off_charge, form=OneOffChargeForm,
                 initial=_charge_initial, available=_live,
                 description="A flat charge billed in advance (setup, workshop, hardware). It waits with the "
                             "customer's other pending lines for their next invoice (or “Invoice now”)."),
    ObjectAction("invoice_now", "Invoice now", run=invoice_now, form=InvoiceNowForm, available=_live,
                 description="Make invoices now of the customer's pending lines that are due (one per currency), "
                             "instead of waiting for the period close. Drafts then follow the billing profile's "
                             "workflow (approval, auto-advance)."),
)
