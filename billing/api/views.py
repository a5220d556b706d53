"""Billing API: thin ViewSets and views (parse → service → render)."""

import re
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.api import render
from billing.api import serializers as s
from billing.api.filters import InvoiceFilter, OverrideFilter, ProfileFilter
from billing.models import BillingProfile, Invoice, InvoiceLine
from billing.services import actions, drafts, editing, gathering, profiles
from billing.services.gathering import LineInput
from billing.services.profiles import ProfileApps
from customers.models import Customer
from openmeter_site.api.params import get_bool, get_list
from openmeter_site.api.routers import ListMixin, ResourceViewSet
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

class ProfileViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/billing/profiles`: list, create, get, update (PUT), delete."""

    filterset_class = ProfileFilter
    order_by = {"createdAt": "created_at", "updatedAt": "updated_at", "default": "is_default", "name": "name"}
    default_order_by = "createdAt"
    lookup_url_kwarg = "profile_id"

    def get_queryset(self) -> QuerySet[BillingProfile]:
        return profiles.billing_profile_list_qs(include_archived=True)

    def render(self, profile: BillingProfile) -> dict[str, Any]:
        return render.profile_to_api(profile, expand_apps="apps" in get_list(self.request.query_params, "expand"))

    def create(self, request: Request) -> Response:
        data = self.validated(s.ProfileCreateSerializer).validated_data
        profile = profiles.billing_profile_create(
            name=data["name"], description=data.get("description"), metadata=data.get("metadata"),
            supplier=data["supplier"], default=data["default"], workflow=data["workflow"],
            apps=ProfileApps(**{k: v.upper() for k, v in data["apps"].items()}),
        )
        profile = profiles.billing_profile_get(profile_id=profile.pk)
        return Response(render.profile_to_api(profile), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, profile_id: str) -> Response:
        return Response(self.render(profiles.billing_profile_get(profile_id=_ulid(profile_id, "billing profile"))))

    def update(self, request: Request, profile_id: str) -> Response:
        data = self.validated(s.ProfileUpdateSerializer).validated_data
        profile = profiles.billing_profile_update(
            profile_id=_ulid(profile_id, "billing profile"), name=data["name"], description=data.get("description"),
            metadata=data.get("metadata"), supplier=data["supplier"], default=data["default"], workflow=data["workflow"],
        )
        return Response(render.profile_to_api(profile))

    def destroy(self, request: Request, profile_id: str) -> Response:
        profiles.billing_profile_delete(profile_id=_ulid(profile_id, "billing profile"))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- customer overrides -----------------------------------------------------------------------------------

class OverrideViewSet(ResourceViewSet):
    """`/api/v1/billing/customers`: each customer's billing profile; list, get, update (PUT: pin a profile or
    none), delete (the override)."""

    filterset_class = OverrideFilter
    order_by = {"customerId": "id", "customerName": "name", "customerKey": "key",
                "customerPrimaryEmail": "primary_email", "customerCreatedAt": "created_at"}
    default_order_by = "customerId"
    lookup_url_kwarg = "customer_id"

    def get_queryset(self) -> QuerySet[Customer]:
        return profiles.customer_override_list_qs()

    def list(self, request: Request) -> Response:
        qs = self.filter_queryset(self.get_queryset())  # makes the default profile if there is none yet
        self.profiles_by_id = {p.pk: p for p in profiles.live_profiles()}
        self.default_profile = next(p for p in self.profiles_by_id.values() if p.is_default)
        return self.rendered_page(qs)

    def render(self, customer: Customer) -> dict[str, Any]:
        override = getattr(customer, "billing_override", None)
        profile = self.default_profile
        if override is not None:
            profile = self.profiles_by_id.get(override.billing_profile_id, self.default_profile)
        details = profiles.OverrideDetails(customer, override, profile)
        return render.override_to_api(details, expand=get_list(self.request.query_params, "expand"))

    def retrieve(self, request: Request, customer_id: str) -> Response:
        details = profiles.customer_override_get(customer_id=_ulid(customer_id, "customer"))
        return Response(render.override_to_api(details, expand=get_list(request.query_params, "expand")))

    def update(self, request: Request, customer_id: str) -> Response:
        data = self.validated(s.OverrideCreateSerializer, request.data or {}).validated_data
        profile_id = data.get("billingProfileId")
        details = profiles.customer_override_upsert(
            customer_id=_ulid(customer_id, "customer"), billing_profile_id=profile_id.upper() if profile_id else None
        )
        return Response(render.override_to_api(details))

    def destroy(self, request: Request, customer_id: str) -> Response:
        profiles.customer_override_delete(customer_id=_ulid(customer_id, "customer"))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invoices ---------------------------------------------------------------------------------------------

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


class InvoiceViewSet(ResourceViewSet):
    """`/api/v1/billing/invoices`: list, get, update (PUT), delete, the actions `advance`, `approve`, `retry`,
    `snapshot-quantities`, `void` and `taxes/recalculate`, and `invoice` (POST: invoice a customer's pending lines
    now)."""

    filterset_class = InvoiceFilter
    order_by = {"customer.name": "customer__name", "issuedAt": "issued_at", "status": "status",
                "createdAt": "created_at", "updatedAt": "updated_at", "periodStart": "period_start"}
    default_order_by = "createdAt"
    lookup_url_kwarg = "invoice_id"

    def get_queryset(self) -> QuerySet[Invoice]:
        return Invoice.objects.all()

    def list(self, request: Request) -> Response:
        expand = _invoice_expand(request.query_params, [])
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        lines = selectors.lines_by_invoice([i.pk for i in page]) if "lines" in expand else {}
        return self.get_paginated_response([
            invoice_to_api(i, lines.get(i.pk) if "lines" in expand else None, expand_apps="workflow.apps" in expand)
            for i in page
        ])

    def retrieve(self, request: Request, invoice_id: str) -> Response:
        invoice = Invoice.objects.filter(pk=_ulid(invoice_id, "invoice")).first()
        if invoice is None:
            raise NotFound(f"invoice {invoice_id} not found")
        expand = _invoice_expand(request.query_params, ["lines"])
        lines = None
        if "lines" in expand:
            lines = selectors.invoice_lines(invoice, include_deleted=get_bool(request.query_params, "includeDeletedLines"))
        return Response(invoice_to_api(invoice, lines, expand_apps="workflow.apps" in expand))

    def update(self, request: Request, invoice_id: str) -> Response:
        data = self.validated(s.InvoiceUpdateSerializer).validated_data
        changes = editing.InvoiceChanges(
            supplier=data["supplier"], customer=data["customer"], lines=[line_input(line) for line in data["lines"]],
            workflow=(data["workflow"].get("workflow") or {}), metadata=data.get("metadata"),
            description=data.get("description"),
        )
        invoice = editing.invoice_update(invoice_id=_ulid(invoice_id, "invoice"), changes=changes)
        return invoice_response(invoice)

    def destroy(self, request: Request, invoice_id: str) -> Response:
        actions.invoice_delete(invoice_id=_ulid(invoice_id, "invoice"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=False, methods=["post"])
    def invoice(self, request: Request) -> Response:
        data = self.validated(s.InvoicePendingLinesInputSerializer).validated_data
        invoices = drafts.invoice_pending_lines(
            customer_id=data["customerId"].upper(), as_of=data.get("asOf"),
            line_ids=[i.upper() for i in (data.get("filters") or {}).get("lineIds") or []] or None,
            progressive_billing_override=data.get("progressiveBillingOverride"),
        )
        lines = selectors.lines_by_invoice([i.pk for i in invoices])
        fresh = Invoice.objects.in_bulk([i.pk for i in invoices])
        body = [render.invoice_to_api(fresh[i.pk], lines=lines[i.pk]) for i in invoices]
        return Response(body, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def advance(self, request: Request, invoice_id: str) -> Response:
        return invoice_response(actions.invoice_action(invoice_id=_ulid(invoice_id, "invoice"), action="advance"))

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, invoice_id: str) -> Response:
        return invoice_response(actions.invoice_action(invoice_id=_ulid(invoice_id, "invoice"), action="approve"))

    @action(detail=True, methods=["post"])
    def retry(self, request: Request, invoice_id: str) -> Response:
        return invoice_response(actions.invoice_action(invoice_id=_ulid(invoice_id, "invoice"), action="retry"))

    @action(detail=True, methods=["post"], url_path="snapshot-quantities")
    def snapshot_quantities(self, request: Request, invoice_id: str) -> Response:
        invoice = actions.invoice_action(invoice_id=_ulid(invoice_id, "invoice"), action="snapshotQuantities")
        return invoice_response(invoice)

    @action(detail=True, methods=["post"])
    def void(self, request: Request, invoice_id: str) -> Response:
        data = self.validated(s.VoidInputSerializer).validated_data
        return invoice_response(actions.invoice_void(invoice_id=_ulid(invoice_id, "invoice"), reason=data["reason"]))

    @action(detail=True, methods=["post"], url_path="taxes/recalculate")
    def recalculate_taxes(self, request: Request, invoice_id: str) -> Response:
        return invoice_response(actions.invoice_recalculate(invoice_id=_ulid(invoice_id, "invoice")))


# --- a customer's pending lines and simulations: posts under /billing/customers/{customerId}/invoices/ that create
# or compute invoices, not the customer override the ViewSet above is about


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
