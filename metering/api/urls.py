from django.urls import path

from metering.api import views

urlpatterns = [
    path("api/v1/events", views.EventsView.as_view()),
    path("api/v2/events", views.EventsV2View.as_view()),
    path("api/v1/meters", views.MetersView.as_view()),
    path("api/v1/meters/<seg:meter_id_or_slug>", views.MeterDetailView.as_view()),
    path("api/v1/meters/<seg:meter_id_or_slug>/query", views.MeterQueryView.as_view()),
    path(
        "api/v1/meters/<seg:meter_id_or_slug>/group-by/<seg:group_by_key>/values",
        views.MeterGroupByValuesView.as_view(),
    ),
    path("api/v1/meters/<seg:meter_id_or_slug>/subjects", views.MeterSubjectsView.as_view()),
    path("api/v1/subjects", views.SubjectsView.as_view()),
    path("api/v1/subjects/<seg:subject_id_or_key>", views.SubjectDetailView.as_view()),
    path("api/v1/debug/metrics", views.DebugMetricsView.as_view()),
    path("api/v1/info/progress/<seg:progress_id>", views.ProgressView.as_view()),
]
