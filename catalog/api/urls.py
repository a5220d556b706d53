from catalog.api import addons, features, plans
from openmeter_site.api.routers import Router

router = Router()
router.register("api/v1/features", features.FeatureViewSet, basename="feature")
router.register("api/v1/plans", plans.PlanViewSet, basename="plan")
router.register("api/v1/plans/<seg:plan_id>/addons", addons.PlanAddonViewSet, basename="plan-addon")
router.register("api/v1/addons", addons.AddonViewSet, basename="addon")

urlpatterns = router.urls
