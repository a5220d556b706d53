from django.urls import path

from notifications.api import views

urlpatterns = [
    path("api/v1/notification/channels", views.ChannelListView.as_view()),
    path("api/v1/notification/channels/<seg:channel_id>", views.ChannelDetailView.as_view()),
    path("api/v1/notification/rules", views.RuleListView.as_view()),
    path("api/v1/notification/rules/<seg:rule_id>", views.RuleDetailView.as_view()),
    path("api/v1/notification/rules/<seg:rule_id>/test", views.RuleTestView.as_view()),
    path("api/v1/notification/events", views.EventListView.as_view()),
    path("api/v1/notification/events/<seg:event_id>", views.EventDetailView.as_view()),
    path("api/v1/notification/events/<seg:event_id>/resend", views.EventResendView.as_view()),
]
