from django.urls import path

from billing.api import views

INVOICE = "api/v1/billing/invoices/<seg:invoice_id>"

urlpatterns = [
    path("api/v1/billing/profiles", views.ProfileListView.as_view()),
    path("api/v1/billing/profiles/<seg:profile_id>", views.ProfileDetailView.as_view()),
    path("api/v1/billing/customers", views.OverrideListView.as_view()),
    path("api/v1/billing/customers/<seg:customer_id>", views.OverrideDetailView.as_view()),
    path("api/v1/billing/customers/<seg:customer_id>/invoices/pending-lines", views.PendingLinesCreateView.as_view()),
    path("api/v1/billing/customers/<seg:customer_id>/invoices/simulate", views.InvoiceSimulateView.as_view()),
    path("api/v1/billing/invoices", views.InvoiceListView.as_view()),
    path("api/v1/billing/invoices/invoice", views.InvoicePendingLinesActionView.as_view()),
    path(INVOICE, views.InvoiceDetailView.as_view()),
    path(f"{INVOICE}/advance", views.InvoiceActionView.as_view(action_name="advance")),
    path(f"{INVOICE}/approve", views.InvoiceActionView.as_view(action_name="approve")),
    path(f"{INVOICE}/retry", views.InvoiceActionView.as_view(action_name="retry")),
    path(f"{INVOICE}/snapshot-quantities", views.InvoiceActionView.as_view(action_name="snapshotQuantities")),
    path(f"{INVOICE}/void", views.InvoiceVoidView.as_view()),
    path(f"{INVOICE}/taxes/recalculate", views.InvoiceRecalculateTaxView.as_view()),
]
