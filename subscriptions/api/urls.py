from openmeter_site.api.routers import Router
from subscriptions.api import views

router = Router()
router.register("api/v1/subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("api/v1/subscriptions/<seg:subscription_id>/addons", views.SubscriptionAddonViewSet,
                basename="subscription-addon")
router.register("api/v1/customers/<seg:customer_id_or_key>/subscriptions", views.CustomerSubscriptionViewSet,
                basename="customer-subscription")

urlpatterns = router.urls
