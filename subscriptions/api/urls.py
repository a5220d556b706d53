from django.urls import path

from subscriptions.api import views

urlpatterns = [
    path("api/v1/subscriptions", views.SubscriptionListCreateView.as_view()),
    path("api/v1/subscriptions/<seg:subscription_id>", views.SubscriptionDetailView.as_view()),
    path("api/v1/subscriptions/<seg:subscription_id>/cancel", views.SubscriptionCancelView.as_view()),
    path(
        "api/v1/subscriptions/<seg:subscription_id>/unschedule-cancelation",
        views.SubscriptionUnscheduleCancelationView.as_view(),
    ),
    path("api/v1/subscriptions/<seg:subscription_id>/restore", views.SubscriptionRestoreView.as_view()),
    path("api/v1/subscriptions/<seg:subscription_id>/change", views.SubscriptionChangeView.as_view()),
    path("api/v1/subscriptions/<seg:subscription_id>/migrate", views.SubscriptionMigrateView.as_view()),
    path("api/v1/subscriptions/<seg:subscription_id>/addons", views.SubscriptionAddonListView.as_view()),
    path(
        "api/v1/subscriptions/<seg:subscription_id>/addons/<seg:subscription_addon_id>",
        views.SubscriptionAddonDetailView.as_view(),
    ),
    path("api/v1/customers/<seg:customer_id_or_key>/subscriptions", views.CustomerSubscriptionListView.as_view()),
]
