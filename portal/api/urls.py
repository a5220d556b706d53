from django.urls import path

from portal.api import views

urlpatterns = [
    path("api/v1/portal/tokens", views.PortalTokenListView.as_view()),
    path("api/v1/portal/tokens/invalidate", views.PortalTokenInvalidateView.as_view()),
    path("api/v1/portal/meters/<seg:meter_slug>/query", views.PortalMeterQueryView.as_view()),
]
