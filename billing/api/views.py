"""Billing API: thin views (parse → service → render)."""

import re
from decimal import Decimal
from typing import Any

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.api import render
from billing.api import serializers as s
from billing.models import Invoice, InvoiceLine
from billing.services import actions, drafts, editing, gathering, profiles
from billing.services.gathering import LineInput
from billing.services.profiles import ProfileApps
from openmeter_site.api.pagination import order_queryset, paginate
from openmeter_site.api.params import get_bool, get_datetime, get_list
from openmeter_site.core.errors import InvalidInput, NotFound

ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")


def _ulid(value: str, what: str) -> str:
    if not ULID.match(value):
        raise NotFound(f"{what} {value} not found")
    return value.upper()


INVOICE_EXPAND = ("lines", "preceding", "workflow.apps")


def _invoice_expand(query: Any, default: list[str]) -> list[str]:
    """The spec's `InvoiceExpand` values. `preceding` is accepted; without credit notes no invoice has a preceding
    document, so it adds nothing."""
    expand = get_list(query, "expand")
    unknown = sorted(set(expand) - set(INVOICE_EXPAND))
    if unknown:
        raise InvalidInput(f"expand: unknown value {', '.join(unknown)} (allowed: {', '.join(INVOICE_EXPAND)})")
    return expand or default


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- profiles ---------------------------------------------------------------------------------------------

PROFILE_ORDER = {"createdAt": "created_at", "updatedAt": "updated_at", "default": "is_default", "name": "name"}


class ProfileListView(APIView):
    def get(self, request: Request) -> Response:
        expand = "apps" in get_list(request.query_params, "expand")
        qs = profiles.billing_profile_list_qs(include_archived=get_bool(request.query_params, "includeArchived"))
        qs = order_queryset(request.query_params, qs, PROFILE_ORDER, "createdAt")
        return Response(paginate(request.query_params, qs, lambda p: render.profile_to_api(p, expand_apps=expand)))

    def post(self, request: Request) -> Response:
        data = _valid(s.ProfileCreateSerializer, request.data)
        profile = profiles.billing_profile_create(
            name=data["name"], description=data.get("description"), metadata=data.get("metadata"),
            supplier=data["supplier"], default=data["default"], workflow=data["workflow"],
            apps=ProfileApps(**{k: v.upper() for k, v in data["apps"].items()}),
        )
        profile = profiles.billing_profile_get(profile_id=profile.pk)
        return Response(render.profile_to_api(profile), status=status.HTTP_201_CREATED)


class ProfileDetailView(APIView):
    def get(self, request: Request, profile_id: str) -> Response:
        profile = profiles.billing_profile_get(profile_id=_ulid(profile_id, "billing profile"))
        expand = "apps" in get_list(request.query_params, "expand")
        return Response(render.profile_to_api(profile, expand_apps=expand))

    def put(self, request: Request, profile_id: str) -> Response:
        data = _valid(s.ProfileUpdateSerializer, request.data)
        profile = profiles.billing_profile_update(
            profile_id=_ulid(profile_id, "billing profile"), name=data["name"], description=data.get("description"),
            metadata=data.get("metadata"), supplier=data["supplier"], default=data["default"], workflow=data["workflow"],
        )
        return Response(render.profile_to_api(profile))

    def delete(self, request: Request, profile_id: str) -> Response:
        profiles.billing_profile_delete(profile_id=_ulid(profile_id, "billing profile"))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- customer overrides -----------------------------------------------------------------------------------

OVERRIDE_ORDER = {"customerId": "id", "customerName": "name", "customerKey": "key",
                  "customerPrimaryEmail": "primary_email", "customerCreatedAt": "created_at"}


class OverrideListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        expand = get_list(q, "expand")
        qs = profiles.customer_override_list(
            billing_profile_ids=[i.upper() for i in get_list(q, "billingProfile")],
            customers_without_pinned_profile=get_bool(q, "customersWithoutPinnedProfile"),
            include_all_customers=get_bool(q, "includeAllCustomers", True),
            customer_ids=[i.upper() for i in get_list(q, "customerId")],
            customer_name=q.get("customerName"), customer_key=q.get("customerKey"),
            customer_primary_email=q.get("customerPrimaryEmail"),
        )
        qs = order_queryset(q, qs, OVERRIDE_ORDER, "customerId")
        profiles_by_id = {p.pk: p for p in profiles.live_profiles()}
        default = next(p for p in profiles_by_id.values() if p.is_default)

        def one(customer: Any) -> dict[str, Any]:
            override = getattr(customer, "billing_override", None)
            profile = profiles_by_id.get(override.billing_profile_id, default) if override else default
            return render.override_to_api(profiles.OverrideDetails(customer, override, profile), expand=expand)

        return Response(paginate(q, qs, one))


class OverrideDetailView(APIView):
    def get(self, request: Request, customer_id: str) -> Response:
        details = profiles.customer_override_get(customer_id=_ulid(customer_id, "customer"))
        return Response(render.override_to_api(details, expand=get_list(request.query_params, "expand")))

    def put(self, request: Request, customer_id: str) -> Response:
        data = _valid(s.OverrideCreateSerializer, request.data or {})
        profile_id = data.get("billingProfileId")
        details = profiles.customer_override_upsert(
            customer_id=_ulid(customer_id, "customer"), billing_profile_id=profile_id.upper() if profile_id else None
        )
        return Response(render.override_to_api(details))

    def delete(self, request: Request, customer_id: str) -> Response:
        profiles.customer_override_delete(customer_id=_ulid(customer_id, "customer"))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invoices ---------------------------------------------------------------------------------------------

INVOICE_ORDER = {"customer.name": "customer__name", "issuedAt": "issued_at", "status": "status",
                 "createdAt": "created_at", "updatedAt": "updated_at", "periodStart": "period_start"}


def line_input(data: dict[str, Any]) -> LineInput:
    resolved = data["resolved"]
    return LineInput(
        name=data["name"], description=data.get("description"), metadata=data.get("metadata") or {},
        period_start=data["period"]["from"], period_end=data["period"]["to"], invoice_at=data["invoiceAt"],
        price=resolved["price"], feature_key=resolved["feature_key"], tax_config=resolved["tax_config"],
        discounts=resolved["discounts"], line_id=data.get("id"),
    )


def invoice_to_api(invoice: Invoice, lines: list[InvoiceLine] | None, *, expand_apps: bool = False) -> dict[str, Any]:
    """A gathering invoice is calculated with the usage to date on every read, whether its lines are shown or not
    (upstream's `calculateGatheringInvoiceWithLiveData` on get and list), so its totals are the same everywhere."""
    if invoice.is_gathering:
        preview = editing.gathering_preview(invoice, lines if lines is not None else selectors.invoice_lines(invoice))
        lines = preview if lines is not None else None
    return render.invoice_to_api(invoice, lines=lines, expand_apps=expand_apps)


def invoice_response(invoice: Invoice, *, code: int = status.HTTP_200_OK, expand_apps: bool = False) -> Response:
    invoice = Invoice.objects.get(pk=invoice.pk)
    return Response(invoice_to_api(invoice, selectors.invoice_lines(invoice), expand_apps=expand_apps), status=code)


class InvoiceListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = selectors.invoice_list_qs(
            statuses=get_list(q, "statuses"), extended_statuses=get_list(q, "extendedStatuses"),
            customer_ids=[c.upper() for c in get_list(q, "customers")], include_deleted=get_bool(q, "includeDeleted"),
            issued_after=get_datetime(q, "issuedAfter"), issued_before=get_datetime(q, "issuedBefore"),
            period_start_after=get_datetime(q, "periodStartAfter"), period_start_before=get_datetime(q, "periodStartBefore"),
            created_after=get_datetime(q, "createdAfter"), created_before=get_datetime(q, "createdBefore"),
        )
        qs = order_queryset(q, qs, INVOICE_ORDER, "createdAt")
        expand = _invoice_expand(q, [])
        page = paginate(q, qs, lambda i: i)
        lines = selectors.lines_by_invoice([i.pk for i in page["items"]]) if "lines" in expand else {}
        page["items"] = [
            invoice_to_api(i, lines.get(i.pk) if "lines" in expand else None, expand_apps="workflow.apps" in expand)
            for i in page["items"]
        ]
        return Response(page)


class InvoicePendingLinesActionView(APIView):
    def post(self, request: Request) -> Response:
        data = _valid(s.InvoicePendingLinesInputSerializer, request.data)
        invoices = drafts.invoice_pending_lines(
            customer_id=data["customerId"].upper(), as_of=data.get("asOf"),
            line_ids=[i.upper() for i in (data.get("filters") or {}).get("lineIds") or []] or None,
            progressive_billing_override=data.get("progressiveBillingOverride"),
        )
        lines = selectors.lines_by_invoice([i.pk for i in invoices])
        fresh = Invoice.objects.in_bulk([i.pk for i in invoices])
        body = [render.invoice_to_api(fresh[i.pk], lines=lines[i.pk]) for i in invoices]
        return Response(body, status=status.HTTP_201_CREATED)


class PendingLinesCreateView(APIView):
    def post(self, request: Request, customer_id: str) -> Response:
        data = _valid(s.PendingLineCreateInputSerializer, request.data)
        result = gathering.pending_lines_create(
            customer_id=_ulid(customer_id, "customer"), currency=data["currency"],
            lines=[line_input(line) for line in data["lines"]],
        )
        invoice = Invoice.objects.get(pk=result.invoice.pk)
        all_lines = editing.gathering_preview(invoice, selectors.invoice_lines(invoice))
        created = {line.pk for line in result.lines}
        body = {
            "lines": [line for line in render.lines_to_api(invoice, all_lines) if line["id"] in created],
            "invoice": render.invoice_to_api(invoice, lines=all_lines),
            "isInvoiceNew": result.is_invoice_new,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class InvoiceSimulateView(APIView):
    def post(self, request: Request, customer_id: str) -> Response:
        data = _valid(s.SimulationInputSerializer, request.data)
        lines = [
            editing.SimulatedLine(line_input(line), line["quantity"], line.get("preLinePeriodQuantity") or Decimal(0))
            for line in data["lines"]
        ]
        simulation = editing.invoice_simulate(
            customer_id=_ulid(customer_id, "customer"), currency=data["currency"], lines=lines, number=data.get("number")
        )
        return Response(render.invoice_to_api(simulation.invoice, lines=simulation.lines))


class InvoiceDetailView(APIView):
    def get(self, request: Request, invoice_id: str) -> Response:
        invoice = Invoice.objects.filter(pk=_ulid(invoice_id, "invoice")).first()
        if invoice is None:
            raise NotFound(f"invoice {invoice_id} not found")
        expand = _invoice_expand(request.query_params, ["lines"])
        lines = None
        if "lines" in expand:
            lines = selectors.invoice_lines(invoice, include_deleted=get_bool(request.query_params, "includeDeletedLines"))
        return Response(invoice_to_api(invoice, lines, expand_apps="workflow.apps" in expand))

    def put(self, request: Request, invoice_id: str) -> Response:
        data = _valid(s.InvoiceUpdateSerializer, request.data)
        changes = editing.InvoiceChanges(
            supplier=data["supplier"], customer=data["customer"], lines=[line_input(line) for line in data["lines"]],
            workflow=(data["workflow"].get("workflow") or {}), metadata=data.get("metadata"),
            description=data.get("description"),
        )
        invoice = editing.invoice_update(invoice_id=_ulid(invoice_id, "invoice"), changes=changes)
        return invoice_response(invoice)

    def delete(self, request: Request, invoice_id: str) -> Response:
        actions.invoice_delete(invoice_id=_ulid(invoice_id, "invoice"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvoiceActionView(APIView):
    action_name = "advance"

    def post(self, request: Request, invoice_id: str) -> Response:
        invoice = actions.invoice_action(invoice_id=_ulid(invoice_id, "invoice"), action=self.action_name)
        return invoice_response(invoice)


class InvoiceVoidView(APIView):
    def post(self, request: Request, invoice_id: str) -> Response:
        data = _valid(s.VoidInputSerializer, request.data)
        invoice = actions.invoice_void(invoice_id=_ulid(invoice_id, "invoice"), reason=data["reason"])
        return invoice_response(invoice)


class InvoiceRecalculateTaxView(APIView):
    def post(self, request: Request, invoice_id: str) -> Response:
        return invoice_response(actions.invoice_recalculate(invoice_id=_ulid(invoice_id, "invoice")))
