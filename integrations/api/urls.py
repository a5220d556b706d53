from django.urls import path

from integrations.api import custom_invoicing, views
from openmeter_site.api.routers import Router

CUSTOM_INVOICING = "api/v1/apps/custom-invoicing/<seg:invoice_id>"

custom_invoicing_urls = [
    path(f"{CUSTOM_INVOICING}/draft/synchronized", custom_invoicing.DraftSynchronizedView.as_view()),
    path(f"{CUSTOM_INVOICING}/issuing/synchronized", custom_invoicing.IssuingSynchronizedView.as_view()),
    path(f"{CUSTOM_INVOICING}/payment/status", custom_invoicing.PaymentStatusView.as_view()),
]

router = Router()
router.register("api/v1/apps", views.AppViewSet, basename="app")

apps_urls = [
    *router.urls,
    path("api/v1/apps/<seg:app_id>/stripe/api-key", views.StripeApiKeyView.as_view()),
    path("api/v1/apps/<seg:app_id>/stripe/webhook", views.StripeWebhookView.as_view()),
    path("api/v1/marketplace/listings", views.MarketplaceListView.as_view()),
    path("api/v1/marketplace/listings/<seg:app_type>", views.MarketplaceDetailView.as_view()),
    path("api/v1/marketplace/listings/<seg:app_type>/install", views.MarketplaceInstallView.as_view()),
    path("api/v1/marketplace/listings/<seg:app_type>/install/apikey", views.MarketplaceApiKeyInstallView.as_view()),
    path("api/v1/marketplace/listings/<seg:app_type>/install/oauth2", views.MarketplaceOAuth2InstallUrlView.as_view()),
    path(
        "api/v1/marketplace/listings/<seg:app_type>/install/oauth2/authorize",
        views.MarketplaceOAuth2AuthorizeView.as_view(),
    ),
    path("api/v1/customers/<seg:customer_id_or_key>/apps", views.CustomerAppsView.as_view()),
    path("api/v1/customers/<seg:customer_id_or_key>/apps/<seg:app_id>", views.CustomerAppDetailView.as_view()),
    path("api/v1/customers/<seg:customer_id_or_key>/stripe", views.CustomerStripeView.as_view()),
    path("api/v1/customers/<seg:customer_id_or_key>/stripe/portal", views.CustomerStripePortalView.as_view()),
    path("api/v1/stripe/checkout/sessions", views.CheckoutSessionView.as_view()),
]

urlpatterns: list = [*apps_urls, *custom_invoicing_urls]
