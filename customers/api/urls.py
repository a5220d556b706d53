from customers.api import views
from openmeter_site.api.routers import Router

router = Router()
router.register("api/v1/customers", views.CustomerViewSet, basename="customer")

urlpatterns = router.urls
