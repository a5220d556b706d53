from django.urls import path

from integrations.api import custom_invoicing

CUSTOM_INVOICING = "api/v1/apps/custom-invoicing/<seg:invoice_id>"

custom_invoicing_urls = [
    path(f"{CUSTOM_INVOICING}/draft/synchronized", custom_invoicing.DraftSynchronizedView.as_view()),
    path(f"{CUSTOM_INVOICING}/issuing/synchronized", custom_invoicing.IssuingSynchronizedView.as_view()),
    path(f"{CUSTOM_INVOICING}/payment/status", custom_invoicing.PaymentStatusView.as_view()),
]

urlpatterns: list = [*custom_invoicing_urls]
