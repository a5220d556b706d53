from django.urls import path

from catalog.api import plans

plan_urls = [
    path("api/v1/plans", plans.PlanListView.as_view()),
    path("api/v1/plans/<seg:plan_id>", plans.PlanDetailView.as_view()),
    path("api/v1/plans/<seg:plan_id>/publish", plans.PlanPublishView.as_view()),
    path("api/v1/plans/<seg:plan_id>/archive", plans.PlanArchiveView.as_view()),
]

urlpatterns: list = []
urlpatterns = urlpatterns + plan_urls
