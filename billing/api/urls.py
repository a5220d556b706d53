from django.urls import path

from billing.api import views
from openmeter_site.api.routers import Router

router = Router()
router.register("api/v1/billing/profiles", views.ProfileViewSet, basename="billing-profile")
router.register("api/v1/billing/customers", views.OverrideViewSet, basename="billing-customer-override")
router.register("api/v1/billing/invoices", views.InvoiceViewSet, basename="invoice")

urlpatterns = [
    path("api/v1/billing/customers/<seg:customer_id>/invoices/pending-lines", views.PendingLinesCreateView.as_view()),
    path("api/v1/billing/customers/<seg:customer_id>/invoices/simulate", views.InvoiceSimulateView.as_view()),
    *router.urls,
]
