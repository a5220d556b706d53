from django.urls import path

from openmeter_site.api.routers import Router
from portal.api import views

router = Router()
router.register("api/v1/portal/tokens", views.PortalTokenViewSet, basename="portal-token")

urlpatterns = [
    path("api/v1/portal/meters/<seg:meter_slug>/query", views.PortalMeterQueryView.as_view()),
    *router.urls,
]
