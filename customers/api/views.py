"""Customers API: HTTP only; rules live in customers.services."""

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.api.serializers import CustomerWriteSerializer, customer_to_api
from customers.services import customer_create, customer_delete, customer_get, customer_list_qs, customer_update
from openmeter_site.api.pagination import order_queryset, paginate
from openmeter_site.api.params import get_bool, get_str

CUSTOMER_ORDER_BY = {"id": "id", "name": "name", "createdAt": "created_at"}


class CustomerListView(APIView):
    def get(self, request: Request) -> Response:
        q = request.query_params
        qs = customer_list_qs(
            include_deleted=get_bool(q, "includeDeleted"),
            key=get_str(q, "key"),
            name=get_str(q, "name"),
            primary_email=get_str(q, "primaryEmail"),
            subject=get_str(q, "subject"),
        )
        qs = order_queryset(q, qs, CUSTOMER_ORDER_BY, "name")
        return Response(paginate(q, qs, customer_to_api))

    def post(self, request: Request) -> Response:
        body = CustomerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(customer_to_api(customer_create(data=body.to_input())), status=201)


class CustomerDetailView(APIView):
    def get(self, request: Request, customer_id_or_key: str) -> Response:
        return Response(customer_to_api(customer_get(id_or_key=customer_id_or_key, include_deleted=True)))

    def put(self, request: Request, customer_id_or_key: str) -> Response:
        customer = customer_get(id_or_key=customer_id_or_key)
        body = CustomerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(customer_to_api(customer_update(customer=customer, data=body.to_input())))

    def delete(self, request: Request, customer_id_or_key: str) -> Response:
        customer_delete(customer=customer_get(id_or_key=customer_id_or_key))
        return Response(status=204)

