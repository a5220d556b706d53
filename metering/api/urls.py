from django.urls import path

from metering.api import views
from openmeter_site.api.routers import Router

router = Router()
router.register("api/v1/meters", views.MeterViewSet, basename="meter")
router.register("api/v1/subjects", views.SubjectViewSet, basename="subject")

urlpatterns = [
    path("api/v1/events", views.EventsView.as_view()),
    path("api/v2/events", views.EventsV2View.as_view()),
    path("api/v1/meters/<seg:meter_id_or_slug>/query", views.MeterQueryView.as_view()),
    path(
        "api/v1/meters/<seg:meter_id_or_slug>/group-by/<seg:group_by_key>/values",
        views.MeterGroupByValuesView.as_view(),
    ),
    path("api/v1/meters/<seg:meter_id_or_slug>/subjects", views.MeterSubjectsView.as_view()),
    path("api/v1/debug/metrics", views.DebugMetricsView.as_view()),
    path("api/v1/info/progress/<seg:progress_id>", views.ProgressView.as_view()),
    *router.urls,
]
