from django.urls import path

from customers.api import views

urlpatterns = [
    path("api/v1/customers", views.CustomerListView.as_view()),
    path("api/v1/customers/<seg:customer_id_or_key>", views.CustomerDetailView.as_view()),
]
