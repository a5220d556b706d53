from django.urls import path

from catalog.api import features

urlpatterns = [
    path("api/v1/features", features.FeatureListView.as_view()),
    path("api/v1/features/<seg:feature_id>", features.FeatureDetailView.as_view()),
]
