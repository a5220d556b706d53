"""Custom invoicing callbacks: the external invoicing system reports that it synchronized a draft, issued an
invoice, or learned about a payment. All answer 204."""

import re
from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Invoice
from billing.plugins import SyncResult
from integrations.custom_invoicing import custom_invoicing_payment_status, custom_invoicing_synchronized
from openmeter_site.api.fields import RFC3339Field
from openmeter_site.core.errors import NotFound
from openmeter_site.core.lengths import column_length

ULID_RE = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"


class LineExternalIdSerializer(serializers.Serializer):
    lineId = serializers.RegexField(ULID_RE)
    externalId = serializers.CharField()


class DraftSyncResultSerializer(serializers.Serializer):
    invoiceNumber = serializers.CharField(required=False, max_length=column_length(Invoice, "number"))
    externalId = serializers.CharField(required=False)
    lineExternalIds = LineExternalIdSerializer(many=True, required=False)
    lineDiscountExternalIds = serializers.ListField(child=serializers.DictField(), required=False)


class DraftSynchronizedSerializer(serializers.Serializer):
    invoicing = DraftSyncResultSerializer(required=False)


class FinalizedInvoicingSerializer(serializers.Serializer):
    invoiceNumber = serializers.CharField(required=False, max_length=column_length(Invoice, "number"))
    sentToCustomerAt = RFC3339Field(required=False)


class FinalizedPaymentSerializer(serializers.Serializer):
    externalId = serializers.CharField(required=False)


class IssuingSynchronizedSerializer(serializers.Serializer):
    invoicing = FinalizedInvoicingSerializer(required=False)
    payment = FinalizedPaymentSerializer(required=False)


class PaymentStatusSerializer(serializers.Serializer):
    trigger = serializers.ChoiceField(
        ["paid", "payment_failed", "payment_uncollectible", "payment_overdue", "action_required", "void"]
    )


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data or {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _invoice_id(value: str) -> str:
    if not re.match(ULID_RE, value):
        raise NotFound(f"invoice {value} not found")
    return value.upper()


class DraftSynchronizedView(APIView):
    def post(self, request: Request, invoice_id: str) -> Response:
        data = _valid(DraftSynchronizedSerializer, request.data).get("invoicing") or {}
        result = SyncResult(
            done=True,
            invoice_number=data.get("invoiceNumber"),
            external_id=data.get("externalId"),
            line_external_ids={m["lineId"].upper(): m["externalId"] for m in data.get("lineExternalIds") or []},
        )
        custom_invoicing_synchronized(invoice_id=_invoice_id(invoice_id), step="draft", result=result)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IssuingSynchronizedView(APIView):
    def post(self, request: Request, invoice_id: str) -> Response:
        data = _valid(IssuingSynchronizedSerializer, request.data)
        invoicing = data.get("invoicing") or {}
        custom_invoicing_synchronized(
            invoice_id=_invoice_id(invoice_id),
            step="issuing",
            result=SyncResult(done=True, invoice_number=invoicing.get("invoiceNumber")),
            sent_to_customer_at=invoicing.get("sentToCustomerAt"),
            payment_external_id=(data.get("payment") or {}).get("externalId"),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PaymentStatusView(APIView):
    def post(self, request: Request, invoice_id: str) -> Response:
        data = _valid(PaymentStatusSerializer, request.data)
        custom_invoicing_payment_status(invoice_id=_invoice_id(invoice_id), trigger=data["trigger"])
        return Response(status=status.HTTP_204_NO_CONTENT)
