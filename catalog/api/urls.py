from django.urls import path

from catalog.api import addons, features, plans

urlpatterns = [
    path("api/v1/features", features.FeatureListView.as_view()),
    path("api/v1/features/<seg:feature_id>", features.FeatureDetailView.as_view()),
]

plan_urls = [
    path("api/v1/plans", plans.PlanListView.as_view()),
    path("api/v1/plans/<seg:plan_id>", plans.PlanDetailView.as_view()),
    path("api/v1/plans/<seg:plan_id>/publish", plans.PlanPublishView.as_view()),
    path("api/v1/plans/<seg:plan_id>/archive", plans.PlanArchiveView.as_view()),
    path("api/v1/plans/<seg:plan_id>/next", plans.PlanNextView.as_view()),
    path("api/v1/plans/<seg:plan_id>/addons", addons.PlanAddonListView.as_view()),
    path("api/v1/plans/<seg:plan_id>/addons/<seg:plan_addon_id>", addons.PlanAddonDetailView.as_view()),
]

addon_urls = [
    path("api/v1/addons", addons.AddonListView.as_view()),
    path("api/v1/addons/<seg:addon_id>", addons.AddonDetailView.as_view()),
    path("api/v1/addons/<seg:addon_id>/publish", addons.AddonPublishView.as_view()),
    path("api/v1/addons/<seg:addon_id>/archive", addons.AddonArchiveView.as_view()),
]

urlpatterns = urlpatterns + plan_urls + addon_urls
