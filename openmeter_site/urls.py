from django.contrib import admin
from django.urls import include, path, register_converter

from openmeter_site.api import docs
from openmeter_site.api.converters import SegmentConverter
from openmeter_site.api.info_views import CurrencyListView

register_converter(SegmentConverter, "seg")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/openapi.json", docs.openapi_json, name="openapi-schema"),
    path("api/docs", docs.api_docs, name="api-docs"),
    path("api/v1/info/currencies", CurrencyListView.as_view()),
    path("", include("metering.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("entitlements.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("portal.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("subscriptions.api.urls")),
]

handler400 = "openmeter_site.api.problems.bad_request_view"
handler403 = "openmeter_site.api.problems.permission_denied_view"
handler404 = "openmeter_site.api.problems.not_found_view"
handler500 = "openmeter_site.api.problems.server_error_view"
