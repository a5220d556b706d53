"""Customers API: a ViewSet doing HTTP only; rules live in customers.services."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.filters import CustomerFilter
from customers.api.serializers import CustomerWriteSerializer, customer_to_api
from customers.models import Customer
from customers.services import customer_create, customer_delete, customer_get, customer_list_qs, customer_update
from openmeter_site.api.routers import ListMixin, ResourceViewSet


class CustomerViewSet(ListMixin, ResourceViewSet):
    """`/api/v1/customers`: list, create, get, update (PUT), delete."""

    filterset_class = CustomerFilter
    order_by = {"id": "id", "name": "name", "createdAt": "created_at"}
    default_order_by = "name"
    lookup_url_kwarg = "customer_id_or_key"

    def get_queryset(self) -> QuerySet[Customer]:
        return customer_list_qs()

    def render(self, customer: Customer) -> dict[str, Any]:
        return customer_to_api(customer)

    def create(self, request: Request) -> Response:
        body = self.validated(CustomerWriteSerializer)
        return Response(self.render(customer_create(data=body.to_input())), status=201)

    def retrieve(self, request: Request, customer_id_or_key: str) -> Response:
        return Response(self.render(customer_get(id_or_key=customer_id_or_key, include_deleted=True)))

    def update(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        body = self.validated(CustomerWriteSerializer)
        return Response(self.render(customer_update(customer=customer, data=body.to_input())))

    def destroy(self, request: Request, customer_id_or_key: str) -> Response:
        customer_delete(customer=customer_get(id_or_key=customer_id_or_key))
        return Response(status=204)
