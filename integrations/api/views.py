"""Apps, marketplace, customer app data and Stripe endpoints: HTTP only, the rules are in the services."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import App
from customers.services import customer_get
from integrations import services
from integrations.api import serializers as s
from integrations.marketplace import LISTINGS, listing_get, listing_to_api
from integrations.models import AppType
from integrations.selectors import app_get, app_list_qs
from integrations.stripe import services as stripe_services
from openmeter_site.api.pagination import page_envelope, page_params
from openmeter_site.api.params import get_choice
from openmeter_site.api.routers import ListMixin, ResourceViewSet
from openmeter_site.core.errors import InvalidInput, NotImplementedOffline


def _valid(serializer_class: type, data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _install_response(result: services.InstallResult) -> Response:
    return Response(
        {"app": s.app_to_api(result.app), "defaultForCapabilityTypes": result.default_for_capability_types}
    )


# --- apps -------------------------------------------------------------------------------------------------------


class AppViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/apps`: list (AppPaginatedResponse), get, update (PUT), delete (uninstall). Stripe's own endpoints
    under an app stay views below: they belong to one app type, and its webhook has no API key."""

    lookup_url_kwarg = "app_id"

    def get_queryset(self) -> QuerySet[App]:
        return app_list_qs()

    def render(self, app: App) -> dict[str, Any]:
        return s.app_to_api(app)

    def retrieve(self, request: Request, app_id: str) -> Response:
        return Response(s.app_to_api(app_get(app_id=app_id)))

    def update(self, request: Request, app_id: str) -> Response:
        data = self.validated(s.AppReplaceUpdateSerializer).validated_data
        app = services.app_update(
            app_id=app_id,
            data=services.AppUpdateInput(
                type=data["type"],
                name=data["name"],
                description=data.get("description"),
                metadata=data.get("metadata"),
                secret_api_key=data.get("secretAPIKey"),
                enable_draft_sync_hook=data.get("enableDraftSyncHook"),
                enable_issuing_sync_hook=data.get("enableIssuingSyncHook"),
            ),
        )
        return Response(s.app_to_api(app))

    def destroy(self, request: Request, app_id: str) -> Response:
        services.app_uninstall(app_id=app_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StripeApiKeyView(APIView):
    """`PUT /api/v1/apps/{id}/stripe/api-key` → 204 (deprecated upstream in favour of `PUT /api/v1/apps/{id}`)."""

    def put(self, request: Request, app_id: str) -> Response:
        data = _valid(s.StripeAPIKeyInputSerializer, request.data)
        stripe_services.stripe_app_update_api_key(app_id=app_id, api_key=data["secretAPIKey"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class StripeWebhookView(APIView):
    """`POST /api/v1/apps/{id}/stripe/webhook`: no API key (`security: [{}]`); the Stripe signature authenticates."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request: Request, app_id: str) -> Response:
        outcome = stripe_services.stripe_webhook_receive(
            app_id=app_id, payload=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE")
        )
        body: dict[str, Any] = {"namespaceId": "default", "appId": outcome.app_id}
        if outcome.customer_id:
            body["customerId"] = outcome.customer_id
        if outcome.message:
            body["message"] = outcome.message
        return Response(body)


# --- marketplace ------------------------------------------------------------------------------------------------


class MarketplaceListView(APIView):
    """`GET /api/v1/marketplace/listings` → MarketplaceListingPaginatedResponse."""

    def get(self, request: Request) -> Response:
        page = page_params(request.query_params)
        listings = list(LISTINGS.values())
        items = [listing_to_api(item) for item in listings[page.offset : page.offset + page.page_size]]
        return Response(page_envelope(items, len(listings), page))


class MarketplaceDetailView(APIView):
    def get(self, request: Request, app_type: str) -> Response:
        return Response(listing_to_api(listing_get(app_type)))


class MarketplaceInstallView(APIView):
    """`POST /api/v1/marketplace/listings/{type}/install`: apps without credentials (sandbox, custom_invoicing)."""

    def post(self, request: Request, app_type: str) -> Response:
        data = _valid(s.InstallSerializer, request.data)
        return _install_response(services.app_install(app_type=listing_get(app_type).type, name=data.get("name")))


class MarketplaceApiKeyInstallView(APIView):
    """`POST /api/v1/marketplace/listings/{type}/install/apikey` → 200 MarketplaceInstallResponse."""

    def post(self, request: Request, app_type: str) -> Response:
        listing = listing_get(app_type)
        data = _valid(s.ApiKeyInstallSerializer, request.data)
        if listing.type != AppType.STRIPE:
            raise InvalidInput(f"the {app_type} app does not install with an API key")
        result = stripe_services.stripe_app_install(
            api_key=data["apiKey"], name=data.get("name"), create_billing_profile=data["createBillingProfile"]
        )
        return _install_response(result)


OAUTH2_OFFLINE = (
    "OAuth2 installation is not available: it needs an OAuth client registered with the provider and a public "
    "redirect URL, which this self-hosted server does not have (OpenMeter's open-source server answers 501 too). "
    "Install the {type} app with an API key: POST /api/v1/marketplace/listings/{type}/install/apikey"
)


class MarketplaceOAuth2InstallUrlView(APIView):
    def get(self, request: Request, app_type: str) -> Response:
        listing = listing_get(app_type)
        raise NotImplementedOffline(OAUTH2_OFFLINE.format(type=listing.type))


class MarketplaceOAuth2AuthorizeView(APIView):
    def get(self, request: Request, app_type: str) -> Response:
        listing = listing_get(app_type)
        raise NotImplementedOffline(OAUTH2_OFFLINE.format(type=listing.type))


# --- customer app data ------------------------------------------------------------------------------------------


class CustomerAppsView(APIView):
    """`GET|PUT /api/v1/customers/{customerIdOrKey}/apps`."""

    def get(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        app_type = get_choice(request.query_params, "type", s.APP_TYPES)
        views = services.customer_app_data_list(customer=customer, app_type=app_type)
        page = page_params(request.query_params)
        items = [s.customer_app_data_to_api(v) for v in views[page.offset : page.offset + page.page_size]]
        return Response(page_envelope(items, len(views), page))

    def put(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        if not isinstance(request.data, list):
            raise InvalidInput("body: expected an array of customer app data")
        items = _valid(s.CustomerAppDataItemSerializer, request.data, many=True)
        views = services.customer_app_data_upsert(
            customer=customer,
            items=[
                services.CustomerAppDataInput(
                    type=item["type"],
                    app_id=item.get("id"),
                    stripe_customer_id=item.get("stripeCustomerId"),
                    stripe_default_payment_method_id=item.get("stripeDefaultPaymentMethodId"),
                    metadata=item.get("metadata"),
                )
                for item in items
            ],
        )
        return Response([s.customer_app_data_to_api(v) for v in views])


class CustomerAppDetailView(APIView):
    def delete(self, request: Request, customer_id_or_key: str, app_id: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        services.customer_app_data_delete(customer=customer, app_id=app_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerStripeView(APIView):
    """`GET|PUT /api/v1/customers/{customerIdOrKey}/stripe` → StripeCustomerAppData."""

    def get(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        return Response(s.stripe_customer_data_to_api(stripe_services.customer_stripe_get(customer=customer)))

    def put(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        data = _valid(s.StripeCustomerAppDataBaseSerializer, request.data)
        row = stripe_services.customer_stripe_upsert(
            customer=customer,
            stripe_customer_id=data["stripeCustomerId"],
            payment_method_id=data.get("stripeDefaultPaymentMethodId"),
        )
        return Response(s.stripe_customer_data_to_api(row))


class CustomerStripePortalView(APIView):
    """`POST /api/v1/customers/{customerIdOrKey}/stripe/portal` → 201 StripeCustomerPortalSession."""

    def post(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        data = _valid(s.PortalSessionParamsSerializer, request.data or {})
        session = stripe_services.stripe_portal_session_create(
            customer=customer,
            data=stripe_services.PortalSessionInput(
                configuration_id=data.get("configurationId"), locale=data.get("locale"), return_url=data.get("returnUrl")
            ),
        )
        return Response(s.portal_session_to_api(session), status=status.HTTP_201_CREATED)


class CheckoutSessionView(APIView):
    """`POST /api/v1/stripe/checkout/sessions` → 201 CreateStripeCheckoutSessionResult."""

    def post(self, request: Request) -> Response:
        data = _valid(s.CheckoutSessionRequestSerializer, request.data)
        customer = stripe_services.checkout_customer(data["customer"])
        result = stripe_services.stripe_checkout_session_create(
            data=stripe_services.CheckoutSessionInput(
                customer=customer,
                options=data["options"],
                app_id=data.get("appId"),
                stripe_customer_id=data.get("stripeCustomerId"),
            )
        )
        body = s.checkout_session_to_api(result.customer.id, result.stripe_customer_id, result.session)
        return Response(body, status=status.HTTP_201_CREATED)
