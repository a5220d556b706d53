from notifications.api import views
from openmeter_site.api.routers import Router

router = Router()
router.register("api/v1/notification/channels", views.ChannelViewSet, basename="notification-channel")
router.register("api/v1/notification/rules", views.RuleViewSet, basename="notification-rule")
router.register("api/v1/notification/events", views.EventViewSet, basename="notification-event")

urlpatterns = router.urls
