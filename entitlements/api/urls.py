from django.urls import path

from entitlements.api import views as v
from openmeter_site.api.routers import Router

V2 = "api/v2/customers/<seg:owner>/entitlements"
V1 = "api/v1/subjects/<seg:owner>/entitlements"

router = Router()
router.register(V2, v.OwnedEntitlementViewSet, basename="customer-entitlement")
router.register(f"{V2}/<seg:entitlement>/grants", v.EntitlementGrantViewSet, basename="customer-entitlement-grant")
router.register(V1, v.SubjectEntitlementViewSet, basename="subject-entitlement")
router.register(f"{V1}/<seg:entitlement>/grants", v.SubjectEntitlementGrantViewSet, basename="subject-entitlement-grant")
router.register("api/v2/entitlements", v.EntitlementViewSet, basename="entitlement")
router.register("api/v1/entitlements", v.EntitlementV1ViewSet, basename="entitlement-v1")
router.register("api/v2/grants", v.GrantViewSet, basename="grant")
router.register("api/v1/grants", v.GrantV1ViewSet, basename="grant-v1")

urlpatterns = [
    path(f"{V2}/<seg:entitlement>/value", v.EntitlementValueView.as_view(v2=True)),
    path(f"{V1}/<seg:entitlement>/value", v.EntitlementValueView.as_view(v2=False)),
    path("api/v1/customers/<seg:owner>/access", v.CustomerAccessView.as_view()),
    path("api/v1/customers/<seg:owner>/entitlements/<seg:feature_key>/value", v.CustomerFeatureValueView.as_view()),
    *router.urls,
]
